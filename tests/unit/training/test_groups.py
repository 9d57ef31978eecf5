"""The group of a DICOM case: a keyed pseudonym of the node's patient key, never the PatientID
in clear nor its plain hash (which anyone can recompute for a hospital's whole number range)."""

from __future__ import annotations

import stat
from pathlib import Path

from pydicom.dataset import Dataset

from kernel.patient import patient_key
from training.groups import GROUP_KEY_FILE, GroupKey, resolve_groups

KEY = GroupKey(b"site secret")


def _header(patient: str, issuer: str = "", study: str = "1.2.3") -> Dataset:
    header = Dataset()
    header.PatientID, header.StudyInstanceUID = patient, study
    if issuer:
        header.IssuerOfPatientID = issuer
    return header


def test_group_is_a_keyed_pseudonym_of_the_receive_patient_key_issuer_aware() -> None:
    group = KEY.group(_header("P1", "HOSP-A"))
    assert "P1" not in group and group != patient_key(_header("P1", "HOSP-A"))
    assert group == KEY.pseudonym(patient_key(_header("P1", "HOSP-A")))
    assert group != KEY.group(_header("P1", "HOSP-B"))
    assert KEY.group(_header("P1", study="1.2.4")) == KEY.group(_header("P1", study="1.2.5"))
    assert GroupKey(b"another site").group(_header("P1", "HOSP-A")) != group


def test_group_without_patient_id_is_the_study() -> None:
    assert KEY.group(_header("", study="1.2.7")) == "1.2.7"
    assert KEY.group(_header("  ", "HOSP-A", study="1.2.8")) == "1.2.8"


def test_resolve_groups_clear_id_finds_its_pseudonym_other_groups_themselves() -> None:
    present = [KEY.group(_header("P1")), "benign/benign (1).png", "1.2.7"]
    named = ["P1", "benign/benign (1).png", "P2", "1.2.7"]
    resolved = resolve_groups(named, present, KEY.legacy)
    assert resolved == {"P1": present[0], "benign/benign (1).png": "benign/benign (1).png",
                        "P2": None, "1.2.7": "1.2.7"}  # fmt: skip
    assert resolve_groups(named, present)["P1"] is None  # without the key: no clear-ID lookup


def test_group_key_of_home_made_once_private_and_kept(tmp_path: Path) -> None:
    first = GroupKey.of_home(tmp_path)
    path = tmp_path / GROUP_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert GroupKey.of_home(tmp_path) == first  # the same groups in every later build
    assert len(first.secret) >= 32
