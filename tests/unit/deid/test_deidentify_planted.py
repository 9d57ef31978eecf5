"""Identifiers planted everywhere a file can hide them (every element kind, SR content items,
nested request sequences, private tags, overlays): none survives `deidentify`.

Also: structured content withheld on request, one bad file reported and skipped, and the UID
key read from the environment or standard input, never the command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from cli.main import app
from deid.files import deidentify_tree
from deid.options import DeidOptions, StructuredContent
from phantom.us_dicom import write_us_study

SECRET = "test-secret"
#: every planted value; none may be found in any output, in any spelling listed
PLANTED = ("Quimbleworth", "Jaquelina", "MRN-4711-0815", "19610203", "1961-02-03",
           "Hollingsbury", "Gregorius", "Elsewhere Infirmary", "ACC99887766", "Sonographerson",
           "OTHER-ID-31337", "Reviewerova", "E-778812", "Okonkwo", "RAJ12", "Northwick")
NAME, MRN, PHYSICIAN = "Quimbleworth^Jaquelina", "MRN-4711-0815", "Hollingsbury^Gregorius"
FREE_TEXT = ("Jaquelina Quimbleworth (MRN-4711-0815) born 1961-02-03, seen by Dr Hollingsbury "
             "at Elsewhere Infirmary")


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _content(value_type: str, concept: str, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code(concept, f"concept {concept}")]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _identify(ds: Dataset) -> None:
    """The patient, the people and the places, in the attributes a real file carries them."""
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, MRN, "19610203"
    ds.InstitutionName, ds.ReferringPhysicianName = "Elsewhere Infirmary", PHYSICIAN
    ds.AccessionNumber, ds.OperatorsName = "ACC99887766", "Sonographerson^Sam"
    ds.EvaluatorName = "Reviewerova^Olga"  # a person name the profile table does not list
    ds.TransactionStatusComment = f"sent for {MRN}"  # free text the table does not list
    other = Dataset()
    other.PatientID = "OTHER-ID-31337"
    ds.OtherPatientIDsSequence = [other]
    request = Dataset()
    request.AccessionNumber, request.RequestingPhysician = "ACC99887766", PHYSICIAN
    request.RequestedProcedureDescription = f"US neck {NAME}"
    request.StudyInstanceUID = ds.StudyInstanceUID
    request.RequestedProcedureCodeSequence = [_code("US1", f"neck for {NAME}")]
    request.add_new(0x00330010, "LO", "ACME NESTED")
    request.add_new(0x00331010, "LO", MRN)
    ds.ReferencedRequestSequence = [request]
    block = ds.private_block(0x0029, "ACME SCANNER", create=True)
    block.add_new(0x10, "LO", NAME)
    # the sonographer's staff code and the hospital's code, in the sequences that identify them
    # (PS3.15 E.1-1: D); their items' code values have no action of their own
    operator = Dataset()
    operator.PersonIdentificationCodeSequence = [_code("E-778812", "Okonkwo, Chidi (sonographer)")]
    operator.InstitutionCodeSequence = [_code("RAJ12", "Northwick General Hospital NHS Trust")]
    ds.OperatorIdentificationSequence = [operator]


def _image(folder: Path) -> Path:
    path = write_us_study(folder, seed=11, count=1)[0]
    ds = pydicom.dcmread(path)
    _identify(ds)
    ds.add_new(0x60000010, "US", int(ds.Rows))
    ds.add_new(0x60000011, "US", int(ds.Columns))
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60004000, "LT", f"overlay for {NAME}")
    ds.add_new(0x60003000, "OW", np.packbits(np.ones(int(ds.Rows) * int(ds.Columns), np.uint8),
                                             bitorder="little").tobytes())
    ds.save_as(path, enforce_file_format=True)
    return path


def _modality_sr(folder: Path, study_uid: str) -> Path:
    """A sonographer's SR: free text, names, dates and UIDs in (nested) content items."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), study_uid, generate_uid()
    ds.Modality, ds.StudyDate, ds.ContentDate, ds.ContentTime = "SR", "20240117", "20240117", "101010"
    _identify(ds)
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("18748-4", "Diagnostic Imaging Report")]
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    verifier = Dataset()
    verifier.VerifyingObserverName, verifier.VerifyingOrganization = PHYSICIAN, "Elsewhere Infirmary"
    verifier.VerificationDateTime = "20240117101010"
    ds.VerifyingObserverSequence = [verifier]
    observer = _content("PNAME", "121008", PersonName=PHYSICIAN)
    observer.RelationshipType = "HAS OBS CONTEXT"
    finding = _content("CONTAINER", "121070", ContinuityOfContent="SEPARATE")
    finding.ContentSequence = [
        _content("TEXT", "121071", TextValue=FREE_TEXT),
        _content("DATE", "121380", Date="19610203"),
        _content("UIDREF", "121018", UID=study_uid),
        _content("CODE", "121071", ConceptCodeSequence=[_code("R-42", "nodule")]),
    ]
    ds.ContentSequence = [observer, _content("TEXT", "121106", TextValue=FREE_TEXT), finding]
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / "sr.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _texts(ds: Dataset) -> list[str]:
    seen: list[str] = []

    def collect(_: Dataset, element: pydicom.DataElement) -> None:
        if element.VR != "SQ":
            seen.append(str(element.value))

    ds.walk(collect)
    ds.file_meta.walk(collect)
    return seen


def _planted_corpus(folder: Path) -> tuple[Path, Path, set[str]]:
    folder.mkdir(parents=True)
    image = _image(folder)
    study_uid = str(pydicom.dcmread(image).StudyInstanceUID)
    sr = _modality_sr(folder, study_uid)
    uids = {str(pydicom.dcmread(p)[k].value) for p in (image, sr)
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    return image, sr, uids


def test_deidentify_planted_identifiers_none_survives_in_any_element_or_sr_item(tmp_path: Path) -> None:
    _image_path, _sr_path, old_uids = _planted_corpus(tmp_path / "in")
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert len(report.written) == 2 and not report.withheld and not report.failed
    for output in report.written:
        ds = pydicom.dcmread(output)
        texts = "\n".join(_texts(ds)).lower()
        raw = output.read_bytes().lower()
        for planted in (*PLANTED, *old_uids):
            assert planted.lower() not in texts, f"{planted!r} survives in {output.name}"
            assert planted.lower().encode() not in raw, f"{planted!r} survives in the bytes"
        assert not any(element.tag.is_private for element in ds.iterall())
        assert not any(0x6000 <= element.tag.group <= 0x60FF for element in ds.iterall())
    sr = next(pydicom.dcmread(p) for p in report.written if pydicom.dcmread(p).Modality == "SR")
    codes = [c.CodeValue for c in sr.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113104"]
    finding = sr.ContentSequence[2]
    assert finding.ContentSequence[0].TextValue == "REMOVED"  # type 1: replaced, not emptied
    assert finding.ContentSequence[3].ConceptCodeSequence[0].CodeMeaning == "nodule"  # codes kept
    assert finding.ContentSequence[2].UID == sr.StudyInstanceUID  # remapped once, consistently


def test_deidentify_patient_without_id_keeps_no_id_not_a_shared_one(tmp_path: Path) -> None:
    """An empty Patient ID stays empty (type 2): it became "ANONYMIZED" for every such patient,
    so a dataset built from the output put unrelated patients into one group."""
    paths = [*write_us_study(tmp_path / "in" / "a", seed=3), *write_us_study(tmp_path / "in" / "b", seed=4)]
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientID = ""
        ds.save_as(path)
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert len(report.written) == 2
    assert [pydicom.dcmread(p).PatientID for p in report.written] == ["", ""]


def test_deidentify_structured_content_withhold_option_withholds_the_sr(tmp_path: Path) -> None:
    _planted_corpus(tmp_path / "in")
    options = DeidOptions(structured_content=StructuredContent.WITHHOLD)
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET, options)
    assert [(p.name, reason.startswith("structured content")) for p, reason in report.withheld] == [
        ("sr.dcm", True)]
    assert len(report.written) == 1


def test_deidentify_one_bad_file_reported_and_the_others_written(tmp_path: Path) -> None:
    paths = write_us_study(tmp_path / "in", seed=4, count=2)
    broken = pydicom.dcmread(paths[0])
    broken.PixelData = broken.PixelData[:100]  # pixels cannot be decoded to blank the text
    broken.save_as(paths[0], enforce_file_format=True)
    result = CliRunner().invoke(app, ["deidentify", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "1 written, 0 withheld, 0 skipped, 1 failed" in result.output
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*.dcm")}


def test_deidentify_uid_secret_from_environment_or_stdin_never_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_us_study(tmp_path / "in", seed=4, count=1)
    expected = {p.name for p in deidentify_tree(tmp_path / "in", tmp_path / "ref", SECRET).written}
    runner = CliRunner()
    refused = runner.invoke(app, ["deidentify", str(tmp_path / "in"), str(tmp_path / "a"),
                                  "--uid-secret", SECRET])
    assert refused.exit_code == 2
    piped = runner.invoke(app, ["deidentify", str(tmp_path / "in"), str(tmp_path / "b"),
                                "--uid-secret-stdin"], input=f"{SECRET}\n")
    assert piped.exit_code == 0, piped.output
    monkeypatch.setenv("LNM_DEID_UID_SECRET", SECRET)
    from_env = runner.invoke(app, ["deidentify", str(tmp_path / "in"), str(tmp_path / "c")])
    assert from_env.exit_code == 0, from_env.output
    assert _names(tmp_path / "b") == _names(tmp_path / "c") == expected
