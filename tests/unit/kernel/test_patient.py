"""kernel.patient: the patient key the receive stage records and the one-patient rule counts."""

from __future__ import annotations

from pydicom.dataset import Dataset

from kernel.patient import PATIENT_KEY_LENGTH, patient_key


def _header(**elements: object) -> Dataset:
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def test_patient_key_same_id_and_issuer_same_key_spaces_ignored() -> None:
    assert patient_key(_header(PatientID="PAT-A", IssuerOfPatientID="HOSP")) == patient_key(
        _header(PatientID=" PAT-A ", IssuerOfPatientID="HOSP ")
    )


def test_patient_key_other_id_or_issuer_other_key() -> None:
    keys = {
        patient_key(_header(PatientID="PAT-A", IssuerOfPatientID="HOSP")),
        patient_key(_header(PatientID="PAT-B", IssuerOfPatientID="HOSP")),
        patient_key(_header(PatientID="PAT-A", IssuerOfPatientID="OTHER")),
        patient_key(_header(PatientID="PAT-A")),
        # the pair is encoded unambiguously: no concatenation makes these equal
        patient_key(_header(PatientID="A", IssuerOfPatientID="HOSPPAT-")),
        patient_key(_header(PatientID="PAT-A", IssuerOfPatientID="")),
    }
    assert len(keys) == 5  # the last equals "PAT-A" without an issuer


def test_patient_key_empty_id_a_patient_of_its_own_missing_same_as_empty() -> None:
    anonymous = patient_key(_header())
    assert anonymous == patient_key(_header(PatientID="", IssuerOfPatientID=""))
    assert anonymous != patient_key(_header(PatientID="PAT-A"))


def test_patient_key_a_digest_without_the_id_in_clear() -> None:
    key = patient_key(_header(PatientID="PAT-A", IssuerOfPatientID="HOSP"))
    assert len(key) == PATIENT_KEY_LENGTH and int(key, 16) >= 0
    assert "PAT-A" not in key and "HOSP" not in key
