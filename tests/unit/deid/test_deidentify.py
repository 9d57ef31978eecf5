"""De-identification: PS3.15 basic profile, UID remapping, burned-in text, validity kept."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from typer.testing import CliRunner

from cli.main import app
from deid.files import deidentify_file, deidentify_tree
from deid.options import DeidOptions
from deid.profile import ProfileTable, UidMap
from phantom.us_dicom import make_us_dataset, write_us_study
from tests.support.paths import shared_data

TABLE = ProfileTable.load()
SECRET = "test-secret"


def _identified_phantom(folder: Path, seed: int = 5, count: int = 2) -> list[Path]:
    """Phantom instances carrying identifying values everywhere they hide in real files."""
    paths = write_us_study(folder, seed=seed, count=count)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName = "Doe^Jane^Quincy"
        ds.PatientID = "MRN-4711-0815"
        ds.PatientBirthDate = "19610203"
        ds.InstitutionName = "Saint Elsewhere Hospital"
        ds.ReferringPhysicianName = "House^Gregory"
        ds.AccessionNumber = "ACC99887766"
        ds.StudyDate = "20240117"
        ds.OperatorsName = "Sonographer^Sam"
        other = Dataset()
        other.PatientID = "OTHER-ID-31337"
        other.IssuerOfPatientID = "Saint Elsewhere Hospital"
        ds.OtherPatientIDsSequence = [other]
        referenced = Dataset()
        referenced.ReferencedSOPClassUID = ds.SOPClassUID
        referenced.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        ds.SourceImageSequence = [referenced]
        block = ds.private_block(0x0029, "ACME SCANNER", create=True)
        block.add_new(0x10, "LO", "Doe^Jane^Quincy")
        ds.save_as(path, enforce_file_format=True)
    return paths


def _values_of(ds: Dataset, changed: bool) -> set[str]:
    """String values of the attributes the profile changes (and of private elements), or, with
    ``changed`` false, of those it keeps."""
    values: set[str] = set()

    def collect(_: Dataset, element: pydicom.DataElement) -> None:
        if element.VR == "SQ":
            return
        if (element.tag.is_private or TABLE.action(int(element.tag)) is not None) == changed:
            for value in element.value if isinstance(element.value, list | pydicom.multival.MultiValue) else [element.value]:
                text = str(value).strip()
                if len(text) >= 6 and not text.replace(".", "").isdigit() or element.VR == "UI" and text:
                    values.add(text)

    ds.walk(collect)
    ds.file_meta.walk(collect)
    return values


def _identifying_values(ds: Dataset) -> set[str]:
    """Values only identifying attributes hold (a station named like its model is kept as the
    model name, which the profile keeps)."""
    return _values_of(ds, changed=True) - _values_of(ds, changed=False)


def _assert_deidentified(source: Dataset, output: Path) -> None:
    """Walk every element of ``output`` (sequences, private, file meta): nothing identifying."""
    ds = pydicom.dcmread(output)
    secrets = _identifying_values(source)
    seen: list[str] = []

    def check(_: Dataset, element: pydicom.DataElement) -> None:
        assert not element.tag.is_private, f"private element {element.tag} survived"
        action = TABLE.action(int(element.tag))
        assert action != "X", f"{element.keyword or element.tag} must be removed"
        if element.VR == "SQ":
            return
        values = element.value if isinstance(element.value, list | pydicom.multival.MultiValue) else [element.value]
        for value in values:
            text = str(value)
            seen.append(text)
            for secret in secrets:
                if element.VR == "UI" and element.keyword.endswith(("ClassUID", "TransferSyntaxUID")):
                    continue
                assert secret not in text, f"{element.keyword or element.tag} keeps an identifying value"

    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    del ds.DeidentificationMethod, ds.DeidentificationMethodCodeSequence  # our own words
    ds.walk(check)
    ds.file_meta.walk(check)
    if source.get("PatientID"):
        assert str(ds.PatientID).startswith("DEID")
    assert seen, "the walk saw no element"


def _dciodvfy_errors(path: Path) -> int:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60,
                         check=False)
    return sum(line.startswith("Error") for line in (out.stdout + out.stderr).splitlines())


def test_deidentify_phantom_with_identifiers_no_identifying_attribute_survives(tmp_path: Path) -> None:
    paths = _identified_phantom(tmp_path / "in")
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert len(report.written) == len(paths) and not report.withheld
    sources = {pydicom.dcmread(p).InstanceNumber: pydicom.dcmread(p) for p in paths}
    for output in report.written:
        _assert_deidentified(sources[pydicom.dcmread(output).InstanceNumber], output)
        assert b"Doe^Jane" not in output.read_bytes() and b"MRN-4711" not in output.read_bytes()


def test_deidentify_same_study_two_files_uids_remapped_consistently(tmp_path: Path) -> None:
    paths = _identified_phantom(tmp_path / "in")
    outputs = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET).written
    again = deidentify_tree(tmp_path / "in", tmp_path / "again", SECRET).written
    other = deidentify_tree(tmp_path / "in", tmp_path / "other", "another-secret").written
    before = [pydicom.dcmread(p) for p in paths]
    after = [pydicom.dcmread(p) for p in outputs]
    assert len({ds.StudyInstanceUID for ds in after}) == 1
    assert after[0].StudyInstanceUID != before[0].StudyInstanceUID
    assert len({ds.SOPInstanceUID for ds in after}) == len(paths)
    assert sorted(p.name for p in outputs) == sorted(p.name for p in again)
    assert not {p.name for p in outputs} & {p.name for p in other}
    for ds in after:  # references follow the instance they point at
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.PatientID == after[0].PatientID


@pytest.mark.parametrize(("said", "written"), [(None, "NO"), ("NO", "NO"), ("YES", "YES")])
def test_deidentify_image_with_tissue_region_outside_blanked_burned_in_no_unless_it_said_yes(
    tmp_path: Path, said: str | None, written: str
) -> None:
    """Text inside a tissue region is not detected (here it stays, pixels of 200): a source
    that says it has burned-in text keeps YES (it was set NO)."""
    ds, _, _ = make_us_dataset(seed=2, rows=200, cols=240)
    region = ds.SequenceOfUltrasoundRegions[0]
    x0, y0, x1, y1 = (int(region.RegionLocationMinX0), int(region.RegionLocationMinY0),
                      int(region.RegionLocationMaxX1), int(region.RegionLocationMaxY1))
    pixels = ds.pixel_array.copy()
    pixels[:] = 200  # "burned-in text" everywhere, tissue included
    ds.set_pixel_data(pixels, "MONOCHROME2", 8, generate_instance_uid=False)
    if said is not None:
        ds.BurnedInAnnotation = said
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    output = deidentify_file(source, tmp_path / "out", UidMap(SECRET), TABLE)
    assert output is not None
    result = pydicom.dcmread(output)
    out_pixels = result.pixel_array
    inside = np.zeros(out_pixels.shape, dtype=bool)
    inside[y0:y1 + 1, x0:x1 + 1] = True
    assert (out_pixels[~inside] == 0).all() and (out_pixels[inside] == 200).all()
    assert result.BurnedInAnnotation == written
    assert [c.CodeValue for c in result.DeidentificationMethodCodeSequence] == ["113100", "113101"]


def test_deidentify_image_without_regions_withheld_unless_asked(tmp_path: Path) -> None:
    ds, _, _ = make_us_dataset(seed=3, mm_per_pixel=None)
    if "SequenceOfUltrasoundRegions" in ds:
        del ds.SequenceOfUltrasoundRegions
    ds.BurnedInAnnotation = "YES"
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "a.dcm", enforce_file_format=True)
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert [path for path, _ in report.withheld] == [tmp_path / "in" / "a.dcm"]
    assert not report.written
    kept = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET, DeidOptions(keep_unmasked=True))
    assert len(kept.written) == 1
    assert pydicom.dcmread(kept.written[0]).BurnedInAnnotation == "YES"


def _real_files() -> list[Path]:
    folder = shared_data("us-dicom")
    files = []
    for path in sorted(folder.rglob("*.dcm")):
        try:
            pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            continue
        files.append(path)
    return files


@pytest.mark.shared_data
def test_deidentify_real_files_no_identifying_attribute_survives_and_dciodvfy_not_worse(
    tmp_path: Path,
) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    files = _real_files()
    assert files
    uids = UidMap(SECRET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, path in enumerate(files):
            output = deidentify_file(path, tmp_path / str(index), uids, TABLE,
                                     DeidOptions(keep_unmasked=True))
            assert output is not None
            _assert_deidentified(pydicom.dcmread(path), output)
            assert _dciodvfy_errors(output) <= _dciodvfy_errors(path), path.name


def test_deidentify_phantom_dciodvfy_clean(tmp_path: Path) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    paths = _identified_phantom(tmp_path / "in", count=1)
    output = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET).written[0]
    assert _dciodvfy_errors(output) <= _dciodvfy_errors(paths[0])


def test_deidentify_cli_folder_writes_and_reports(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LNM_DEID_UID_SECRET", SECRET)
    _identified_phantom(tmp_path / "in", count=2)
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    result = CliRunner().invoke(app, ["deidentify", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "2 written, 0 withheld, 1 skipped, 0 failed" in result.output
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2


def test_deidentify_two_inputs_of_one_sop_instance_first_kept_second_withheld_dicomdir_withheld(
    tmp_path: Path,
) -> None:
    """A second file of the same SOP Instance UID (a copy, another transfer syntax) overwrote
    the first's output while both were reported written; a CD's DICOMDIR failed the run."""
    from pydicom.fileset import FileSet

    (tmp_path / "in").mkdir()
    ds, _, _ = make_us_dataset(seed=4, rows=64, cols=80)
    ds.save_as(tmp_path / "in" / "a.dcm", enforce_file_format=True)
    ds.ImageComments = "the same instance again"
    ds.save_as(tmp_path / "in" / "b.dcm", enforce_file_format=True)
    media = FileSet()
    media.add(tmp_path / "in" / "a.dcm")
    media.write(tmp_path / "cd")
    (tmp_path / "in" / "DICOMDIR").write_bytes((tmp_path / "cd" / "DICOMDIR").read_bytes())
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert len(report.written) == 1 and not report.failed
    withheld = dict(report.withheld)
    assert "already written" in withheld[tmp_path / "in" / "b.dcm"]
    assert "DICOMDIR" in withheld[tmp_path / "in" / "DICOMDIR"]


def test_deidentify_uid_attribute_the_table_does_not_list_remapped_in_a_file_alone(
    tmp_path: Path,
) -> None:
    """An instance UID in an attribute the profile table does not list (Concatenation Source)
    was remapped only when its own instance had been de-identified earlier in the same run;
    alone it came out in clear. Standard UIDs (classes, transfer syntaxes) stay."""
    ds, _, _ = make_us_dataset(seed=5, rows=64, cols=80)
    source = "1.2.826.0.1.3680043.8.498.4711"  # another instance, not in this run
    ds.SOPInstanceUIDOfConcatenationSource = source
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    uids = UidMap(SECRET)
    result = pydicom.dcmread(deidentify_file(tmp_path / "a.dcm", tmp_path / "out", uids, TABLE))
    assert result.SOPInstanceUIDOfConcatenationSource == UidMap(SECRET)(source) != source
    assert result.SOPClassUID == ds.SOPClassUID
