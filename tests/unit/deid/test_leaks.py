"""The leak check: an original UID or ID anywhere inside a remaining text value is caught, a
short or partial number is not, and a value the standard requires stays present."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from deid.files import deidentify_tree
from deid.leaks import identifying_terms, scrub_leaks
from deid.profile import ProfileTable, UidMap
from phantom.us_dicom import write_us_study
from tests.unit.deid.test_deidentify_planted import _code, _content, _modality_sr

SECRET = "test-secret"


def test_deidentify_uid_and_id_quoted_inside_kept_text_or_url_removed(tmp_path: Path) -> None:
    """A Study or SOP Instance UID quoted in a text the profile keeps, and a 5-digit accession
    number, went out in clear: UIDs were only looked for as whole UID values, numbers under 6
    digits not at all."""
    path = write_us_study(tmp_path / "in", seed=5, count=1)[0]
    ds = pydicom.dcmread(path)
    study, sop = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
    ds.PatientID, ds.AccessionNumber = "MRN-4711-0815", "48213"
    ds.RetrieveURL = f"https://pacs.example.org/wado?studyUID={study}&patientID=MRN-4711-0815"
    ds.ContentDescription = f"prior {study}."
    ds.TransactionStatusComment = f"sop {sop}"
    ds.WindowCenterWidthExplanation = "accession 48213"
    ds.save_as(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the planted LO values are longer than 64
        report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert len(report.written) == 1
    raw = report.written[0].read_bytes()
    for planted in (study, sop, "MRN-4711", "48213"):
        assert planted.encode() not in raw, planted
    out = pydicom.dcmread(report.written[0])
    assert out.StudyInstanceUID == UidMap(SECRET)(study)


@pytest.mark.parametrize(
    ("value", "leaks"),
    [
        ("see 1.2.826.0.1.3680043.8.498.4711 again", True),
        ("1.2.826.0.1.3680043.8.498.4711.2", False),  # another UID that extends it
        ("9.1.2.826.0.1.3680043.8.498.4711", False),
        ("id=123456&x=1", True),
        ("0.123456", False),  # a number with those digits
        ("1234567", False),
        ("123456.7", False),
    ],
)
def test_scrub_leaks_whole_tokens_only(value: str, leaks: bool) -> None:
    """Before: 0.123456 and 123456.7 were emptied as holding the ID 123456 (a dot was a token
    boundary), and no UID inside a text was found at all."""
    uids = UidMap(SECRET)
    uids("1.2.826.0.1.3680043.8.498.4711")  # an instance UID of the run
    ds = Dataset()
    ds.TransactionStatusComment = value
    changed = scrub_leaks(ds, {"123456"}, uids)
    assert (changed == 1) is leaks
    assert ds.TransactionStatusComment == ("" if leaks else value)


def test_identifying_terms_short_ids_not_looked_for_five_digits_are() -> None:
    """An ID of "1" would match every number; a 5-digit accession number was not looked for."""
    ds = Dataset()
    ds.StudyID, ds.AccessionNumber, ds.PatientID = "1", "4711", "48213"
    ds.PatientName = "Li^Jo^Anne"
    assert identifying_terms(ds, ProfileTable.load()) == {"48213", "Li^Jo^Anne", "Anne"}


def test_scrub_leaks_uid_of_an_instance_remapped_earlier_in_the_run_found_in_text() -> None:
    uids = UidMap(SECRET)
    other = generate_uid()
    uids(other)
    ds = Dataset()
    ds.ContentDescription = f"see {other}"
    assert scrub_leaks(ds, set(), uids) == 1
    assert ds.ContentDescription == ""


def test_scrub_leaks_required_value_gets_a_dummy_per_value_not_emptied() -> None:
    """Image Type is Type 1 and multi-valued: only the value holding a term is replaced, an empty
    value stays where it was (the value multiplicity holds)."""
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "LONG"]
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "1", "DCM", "Long axis"
    ds.AnatomicRegionSequence = [item]
    ds.InstanceNumber = "123456"
    assert scrub_leaks(ds, {"Long", "123456"}, UidMap(SECRET)) == 3
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "", "REMOVED"]
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "REMOVED"
    assert ds.InstanceNumber == 0


def _errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60,
                         check=False)  # fmt: skip
    lines = (out.stdout + out.stderr).splitlines()
    return sorted(line for line in lines if line.startswith("Error") and "Type 1" in line)


def test_deidentify_sr_code_meaning_holding_a_name_part_stays_present_and_valid(
    tmp_path: Path,
) -> None:
    """The referring physician is Dr Long; the report measures a node's long axis. The leak
    check emptied the Type 1 CodeMeaning "Long axis" (and so the report failed dciodvfy and
    dsrdump); a source already de-identified ("ANONYMIZED") lost its Type 1 dummies the same way.
    """
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    (tmp_path / "in").mkdir()
    path = _modality_sr(tmp_path / "in", generate_uid())
    ds = pydicom.dcmread(path)
    ds.ReferringPhysicianName = "Long^Robert"
    ds.PatientName = "ANONYMIZED"
    measured = Dataset()
    measured.NumericValue = "12.5"
    measured.MeasurementUnitsCodeSequence = [_code("mm", "millimeter")]
    measured.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator = "UCUM"
    axis = _content("NUM", "103339001", MeasuredValueSequence=[measured])
    axis.ConceptNameCodeSequence = [_code("103339001", "Long axis")]
    ds.ContentSequence[2].ContentSequence.append(axis)
    ds.save_as(path)
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert len(report.written) == 1
    out = pydicom.dcmread(report.written[0])
    assert out.ContentSequence[2].ContentSequence[-1].ConceptNameCodeSequence[0].CodeMeaning == (
        "REMOVED"
    )
    assert out.VerifyingObserverSequence[0].VerifyingObserverName == "REMOVED"
    assert set(_errors(report.written[0])) <= set(_errors(path))
