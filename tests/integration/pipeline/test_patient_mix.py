"""A study whose instances name two patients (a merge error at the modality or PACS) gets no
job: results computed on one patient's image must never be filed under another's study."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from db.models import AuditEvent, Job, Study
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.scoping import ONE_PATIENT_RULE
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
