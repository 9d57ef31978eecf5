"""The group of a DICOM case: the node's patient key, never the PatientID in clear."""

from __future__ import annotations

from pydicom.dataset import Dataset

from kernel.patient import patient_key
from training.groups import dicom_group, legacy_key, resolve_groups


def _header(patient: str, issuer: str = "", study: str = "1.2.3") -> Dataset:
    header = Dataset()
    header.PatientID, header.StudyInstanceUID = patient, study
    if issuer:
        header.IssuerOfPatientID = issuer
    return header


def test_dicom_group_is_the_receive_patient_key_issuer_aware() -> None:
    group = dicom_group(_header("P1", "HOSP-A"))
    assert group == patient_key(_header("P1", "HOSP-A")) and "P1" not in group
    assert group != dicom_group(_header("P1", "HOSP-B"))
    assert dicom_group(_header("P1", study="1.2.4")) == dicom_group(_header("P1", study="1.2.5"))


def test_dicom_group_without_patient_id_is_the_study() -> None:
    assert dicom_group(_header("", study="1.2.7")) == "1.2.7"
    assert dicom_group(_header("  ", "HOSP-A", study="1.2.8")) == "1.2.8"


def test_resolve_groups_clear_id_finds_its_key_other_groups_themselves() -> None:
    present = [dicom_group(_header("P1")), "benign/benign (1).png", "1.2.7"]
    resolved = resolve_groups(["P1", "benign/benign (1).png", "P2", "1.2.7"], present)
    assert resolved == {"P1": legacy_key("P1"), "benign/benign (1).png": "benign/benign (1).png",
                        "P2": None, "1.2.7": "1.2.7"}  # fmt: skip
    assert legacy_key("P1") == present[0]
