"""A study whose instances name two patients (a merge error at the modality or PACS) gets no
job: results computed on one patient's image must never be filed under another's study."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from db.models import AuditEvent, Instance, Job, Study
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.scoping import ONE_PATIENT_RULE, study_patient_count
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import receive

pytestmark = pytest.mark.integration


def _set_patient(path: Path, patient_id: str) -> None:
    ds = pydicom.dcmread(path)
    ds.PatientID = patient_id
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(("second", "jobs"), [("PAT-B", 0), ("PAT-A", 1)], ids=["two-patients", "one-patient"])
def test_sweep_study_of_two_patients_no_job_reason_kept_and_audited(
    node_context, tmp_path: Path, second: str, jobs: int
) -> None:  # type: ignore[no-untyped-def]
    paths = write_us_study(tmp_path / "study", seed=21, count=2)
    _set_patient(paths[0], "PAT-A")
    _set_patient(paths[1], second)
    receive(node_context, paths)

    result = sweep(node_context, make_celery(node_context.settings))

    assert (result.assembled, result.jobs_created) == (1, jobs)
    with node_context.sessions() as session:
        assert len(session.scalars(select(Job)).all()) == jobs
        verdicts = session.scalars(select(Study)).one().scope["models"]
        held = session.scalars(select(AuditEvent).where(AuditEvent.action == "out_of_scope")).all()
    if jobs:
        assert all(v["run"] for v in verdicts) and not held
        return
    assert verdicts and not any(v["run"] for v in verdicts)
    assert {v["rule"] for v in verdicts} == {ONE_PATIENT_RULE}
    assert "name 2 patients" in verdicts[0]["reason"]
    assert "PAT-" not in verdicts[0]["reason"]  # never a patient ID in a record or log
    assert [e.details["rule"] for e in held] == [ONE_PATIENT_RULE] * len(verdicts)


def _two_patient_study(node_context, tmp_path: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    """Three instances received by the node's SCP: PAT-A, PAT-A, PAT-B; the stored copies."""
    paths = write_us_study(tmp_path / "study", seed=22, count=3)
    for path, patient in zip(paths, ["PAT-A", "PAT-A", "PAT-B"], strict=True):
        _set_patient(path, patient)
    receive(node_context, paths)
    return sorted(node_context.spool.root.glob("incoming/*/*/*.dcm"))


def test_sweep_study_of_two_patients_files_gone_still_counted_from_rows(
    node_context, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The count comes from the patient key recorded at receive, not from the files (before,
    every file was read at every assembly: with them gone the study counted no patient)."""
    for stored in _two_patient_study(node_context, tmp_path):
        stored.unlink()

    result = sweep(node_context, make_celery(node_context.settings))

    assert (result.assembled, result.jobs_created) == (1, 0)
    with node_context.sessions() as session:
        verdicts = session.scalars(select(Study)).one().scope["models"]
    assert verdicts and {v["rule"] for v in verdicts} == {ONE_PATIENT_RULE}
    assert "name 2 patients" in verdicts[0]["reason"]


@pytest.mark.parametrize(
    ("unkeyed", "reads", "patients"),
    [(0, 0, 2), (1, 1, 2), (3, 3, 2), (-1, 1, 1)],
    ids=["every-row-keyed", "one-row-unkeyed", "no-row-keyed", "unkeyed-file-gone"],
)
def test_study_patient_count_reads_the_files_of_rows_without_a_key_only(
    node_context,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unkeyed: int,
    reads: int,
    patients: int,
) -> None:  # type: ignore[no-untyped-def]
    """Rows recorded before migration 0005 have no key: their files are read, theirs alone; one
    whose file is gone is left out (so here only PAT-A's two keyed rows count: one patient)."""
    stored = _two_patient_study(node_context, tmp_path)
    by_patient = {str(pydicom.dcmread(p, stop_before_pixels=True).PatientID): p for p in stored}
    with node_context.sessions() as session, session.begin():
        rows = session.scalars(select(Instance).order_by(Instance.id)).all()
        if unkeyed == -1:  # PAT-B's row unkeyed and its file gone
            row = next(r for r in rows if r.path == str(by_patient["PAT-B"]))
            row.patient_key = None
            Path(row.path).unlink()
        else:
            for row in rows[len(rows) - unkeyed :]:
                row.patient_key = None
        study_id = rows[0].study_id
    read = []
    dcmread = pydicom.dcmread
    monkeypatch.setattr(
        pydicom, "dcmread", lambda path, **kw: read.append(path) or dcmread(path, **kw)
    )

    with node_context.sessions() as session:
        assert study_patient_count(session, study_id) == patients
    assert len(read) == reads
