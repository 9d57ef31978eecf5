"""phantom/us_dicom.py: storage variants on the one phantom header builder."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import RLELossless

from inference.encode.validate import dciodvfy_errors
from phantom.header import SYNTHETIC_BODY_PART, SYNTHETIC_PATIENT_NAME
from phantom.us_dicom import SECONDARY_CAPTURE_STORAGE, make_us_dataset


def test_make_us_dataset_header_from_phantom_header_given_uid_kept(tmp_path: Path) -> None:
    ds, _, _ = make_us_dataset(seed=3, sop_instance_uid="1.2.3.4.5", transfer_syntax=RLELossless)
    assert str(ds.SOPInstanceUID) == str(ds.file_meta.MediaStorageSOPInstanceUID) == "1.2.3.4.5"
    assert ds.PatientName == SYNTHETIC_PATIENT_NAME and ds.BodyPartExamined == SYNTHETIC_BODY_PART
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    path = tmp_path / "us.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []


def test_make_us_dataset_secondary_capture_and_uncalibrated() -> None:
    ds, _, _ = make_us_dataset(seed=4, sop_class_uid=SECONDARY_CAPTURE_STORAGE, mm_per_pixel=None)
    assert ds.SOPClassUID == SECONDARY_CAPTURE_STORAGE and list(ds.ImageType) == [
        "DERIVED", "SECONDARY"
    ]  # fmt: skip
    assert "SequenceOfUltrasoundRegions" not in ds
