"""Nothing logs patient names or IDs: a study with distinctive identifiers goes through the
real node process (receive, refusals, assemble, infer, encode, deliver to a real Orthanc) and
neither the node's whole log nor the quarantine records contain them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node import statuses
from dicom_node.scu import store_files
from kernel.settings import Destination
from phantom.us_dicom import make_us_dataset
from tests.integration.pipeline.conftest import tiny_models_dir
from tests.support.network import wait_until
from tests.support.node import start_node
from tests.support.orthanc import start_orthanc

__all__ = ["tiny_models_dir"]

pytestmark = pytest.mark.integration

#: one-component names, as many scanners and anonymisers write them: highdicom warns about
#: such a name quoting it, and the worker's log captures Python warnings
PATIENT_NAME = "Quaxleton"
REFERRING_PHYSICIAN_NAME = "Ormondroyd"
PATIENT_ID = "PID-7734219-XQ"
PATIENT_BIRTH_DATE = "19420317"
#: every piece that must never show up in a log line or a quarantine record
IDENTIFIERS = (PATIENT_NAME, REFERRING_PHYSICIAN_NAME, PATIENT_ID, "7734219", PATIENT_BIRTH_DATE)


def _identified(folder: Path, seed: int, study_uid: str, name: str) -> Path:
    ds, _, _ = make_us_dataset(seed=seed, rows=96, cols=128, study_instance_uid=study_uid)
    ds.PatientName = PATIENT_NAME
    ds.ReferringPhysicianName = REFERRING_PHYSICIAN_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = PATIENT_BIRTH_DATE
    ds.OtherPatientIDs = PATIENT_ID
    path = folder / f"{name}.dcm"
    _save(ds, path)
    return path


def _save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [value for value in IDENTIFIERS if value.lower() in lowered]


def test_node_patient_identifiers_absent_from_log_and_quarantine(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    pacs = start_orthanc(tmp_path / "orthanc")
    node = start_node(
        tmp_path / "node",
        "--pacs",
        pacs.destination,
        "--quiet-seconds",
        "1",
        env={
            "LNM_MODELS_DIR": str(tiny_models_dir),
            "LNM_DEFAULT_MODEL": "tiny-ynet",
            "LNM_SWEEP_INTERVAL_SECONDS": "0.5",
        },
    )
    try:
        study_uid = "1.2.826.0.1.3680043.8.498.1000555"
        good = [_identified(tmp_path / "in", 41 + i, study_uid, f"good{i}") for i in range(2)]
        no_study = _identified(tmp_path / "in", 43, study_uid, "no_study")
        broken = _identified(tmp_path / "in", 44, study_uid, "broken_pixels")
        for path, edit in ((no_study, "study"), (broken, "pixels")):
            ds = dcmread(path)
            if edit == "study":
                del ds.StudyInstanceUID
            else:
                ds.PixelData = b"\x00" * 64
            _save(ds, path)

        destination = Destination(ae_title="LNMNODE", host="127.0.0.1", port=node.port)
        results = store_files(destination, [*good, no_study, broken], "MODALITY")
        assert [r.status for r in results] == [
            statuses.SUCCESS,
            statuses.SUCCESS,
            statuses.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            statuses.CANNOT_UNDERSTAND,
        ]

        def delivered() -> bool:
            counts = node.cli_json("status")["counts"]  # type: ignore[index]
            assert not any(state.startswith("FAILED") for state in counts["jobs"]), node.log()
            return counts["jobs"].get("DELIVERED", 0) == 1

        wait_until(delivered, timeout=180, interval=1, what="the job to be delivered")
        assert len(pacs.instance_ids()) >= 2  # the outputs, which do carry the patient module
    finally:
        assert node.stop() == 0, node.log()[-4000:]
        pacs.stop()

    log = node.log()
    assert "received" in log and "delivered" in log  # the log did record the work
    assert _leaks(log) == []
    records = sorted((node.home / "spool" / "quarantine").glob("*.json"))
    assert len(records) == 2
    for record in records:
        assert json.loads(record.read_text())["status"] in ("0xA900", "0xC210")
        assert _leaks(record.read_text()) == []
