"""A SOP Instance UID re-used under another study, series or patient: the first copy is kept,
the conflicting one quarantined and answered 0xB006 (a warning); a plain re-send is 0x0000.
Concurrent senders of one SOP Instance UID never leave a row and a file that disagree."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from db.models import Instance
from db.views import instance_rows
from dicom_node import statuses
from dicom_node.scu import store_files
from phantom.us_dicom import make_us_dataset
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.storescu import run_storescu

pytestmark = pytest.mark.integration

SOP = "1.2.826.0.1.3680043.8.498.77.1"


def _instance(folder: Path, name: str, **changes: str) -> Path:
    ds, _, _ = make_us_dataset(seed=7, rows=48, cols=64)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = SOP
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.77.3"
    ds.PatientID = "P1"
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path = folder / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _status(node: Node, path: Path) -> int | None:
    [result] = store_files(node.destination, [path], CALLING_AE)
    return result.status


def _stored(node: Node) -> list[Path]:
    return list(node.spool.root.glob("incoming/*/*/*.dcm"))


def _sha(path: Path) -> str:
    """A digest of the dataset (without the file meta, which the receiver writes itself)."""
    ds = dcmread(path)
    return hashlib.sha256(repr(sorted((e.tag, e.value) for e in ds.iterall())).encode()).hexdigest()


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("other-study", {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77.9"}),
        ("other-series", {"SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.77.8"}),
        ("other-patient", {"PatientID": "P2"}),
        # the same ID from another issuer is another patient (compared by the rows' patient
        # keys since 2026-12-07; before, the first copy's file was read for its PatientID alone)
        ("other-issuer", {"IssuerOfPatientID": "HOSPITAL-B"}),
    ],
)
def test_scp_sop_instance_reused_elsewhere_first_kept_conflict_quarantined_b006(
    node: Node, tmp_path: Path, name: str, changes: dict[str, str]
) -> None:
    first = _instance(tmp_path, "first")
    assert _status(node, first) == statuses.SUCCESS
    [stored] = _stored(node)
    assert _status(node, first) == statuses.SUCCESS  # a plain re-send
    conflicting = _instance(tmp_path, name, **changes)

    assert _status(node, conflicting) == statuses.DUPLICATE_SOP_INSTANCE == 0xB006

    assert _stored(node) == [stored] and _sha(stored) == _sha(first)  # the first copy, intact
    with node.sessions() as session:
        [row] = instance_rows(session)
        assert session.query(Instance).one().path == str(stored)
    assert row["study_instance_uid"] == "1.2.826.0.1.3680043.8.498.77.2"
    [record] = node.spool.quarantined()
    assert record["status"] == "0xB006"
    assert "SOP Instance UID already stored" in str(record["reason"])
    kept = node.spool.quarantine_dir / str(record["file"])
    assert _sha(kept) == _sha(conflicting)


def test_scp_sop_instance_reused_for_another_patient_first_row_without_key_file_says_it(
    node: Node, tmp_path: Path
) -> None:
    """A first copy recorded before migration 0005 has no patient key on its row: its file is
    read instead, and another patient is still a conflict; the same patient a plain re-send."""
    first = _instance(tmp_path, "first")
    assert _status(node, first) == statuses.SUCCESS
    with node.sessions.begin() as session:
        session.query(Instance).one().patient_key = None
    assert _status(node, first) == statuses.SUCCESS
    other = _instance(tmp_path, "other", PatientID="P2")
    assert _status(node, other) == statuses.DUPLICATE_SOP_INSTANCE


def test_scp_sop_instance_reused_dcmtk_storescu_sees_warning(node: Node, tmp_path: Path) -> None:
    first = _instance(tmp_path, "first")
    other = _instance(tmp_path, "other", StudyInstanceUID="1.2.826.0.1.3680043.8.498.77.9")
    assert run_storescu(node.port, [first])[first].startswith("Success")
    outcome = run_storescu(node.port, [other])[other]
    assert outcome.startswith("Warning"), outcome


def _variant(folder: Path, index: int) -> Path:
    ds: Dataset = dcmread(_instance(folder, f"base-{index}"))
    ds.ImageComments = "x" * (index * 10 + 1)  # same UIDs and patient, other bytes and size
    path = folder / f"variant-{index}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_scp_same_sop_instance_concurrent_senders_row_and_file_agree(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    node = make_node()
    variants = [_variant(tmp_path, index) for index in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda path: _status(node, path), variants))
    assert answers == [statuses.SUCCESS] * 6  # one stored, five plain re-sends
    [stored] = _stored(node)
    with node.sessions() as session:
        row = session.query(Instance).one()
    assert row.size_bytes == stored.stat().st_size
    assert _sha(stored) in {_sha(path) for path in variants}
