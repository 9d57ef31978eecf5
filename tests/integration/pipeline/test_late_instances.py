"""Instances that arrive after a study was assembled: the newer generation's report replaces the
older one (Predecessor Documents), and a stale job is never delivered once a newer one exists."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from db.models import Job, JobState
from inference.encode.validate import dciodvfy_errors
from phantom.us_dicom import make_us_dataset
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import receive
from tests.support.sr_content import content_items

pytestmark = pytest.mark.integration

STUDY, SERIES = generate_uid(entropy_srcs=["late-study"]), generate_uid(entropy_srcs=["late-series"])


def _instance(folder: Path, number: int) -> list[Path]:
    ds, _, _ = make_us_dataset(seed=40 + number, study_instance_uid=STUDY, series_instance_uid=SERIES,
                               instance_number=number)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{number}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return [path]


def _jobs(ctx) -> list[Job]:  # type: ignore[no-untyped-def]
    with ctx.sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_late_instance_after_delivery_new_report_names_the_old_one(node_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receive(node_context, _instance(tmp_path, 2))
    sweep(node_context, make_celery(node_context.settings))
    first = _jobs(node_context)[0]
    assert process_job(node_context, first.id) is Outcome.DELIVERED

    receive(node_context, _instance(tmp_path, 1))  # late, and first in order: the model's input now
    assert sweep(node_context, make_celery(node_context.settings)).jobs_created == 1
    second = _jobs(node_context)[1]
    assert second.generation == 1
    assert process_job(node_context, second.id) is Outcome.DELIVERED

    old = pydicom.dcmread(_jobs(node_context)[0].outputs["files"]["sr"])
    new_path = _jobs(node_context)[1].outputs["files"]["sr"]
    new = pydicom.dcmread(new_path)
    predecessor = new.PredecessorDocumentsSequence[0]
    assert predecessor.StudyInstanceUID == old.StudyInstanceUID
    listed = predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert listed.ReferencedSOPInstanceUID == old.SOPInstanceUID
    notes = [str(item.get("TextValue", "")) for item in content_items(new)]
    assert any("replaces this model's earlier report" in note for note in notes)
    assert dciodvfy_errors(new_path) == []


def test_late_instance_not_the_models_input_no_second_report(node_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receive(node_context, _instance(tmp_path, 1))
    sweep(node_context, make_celery(node_context.settings))
    first = _jobs(node_context)[0]
    assert process_job(node_context, first.id) is Outcome.DELIVERED

    receive(node_context, _instance(tmp_path, 2))  # late, after the model's input in order
    sweep(node_context, make_celery(node_context.settings))
    second = _jobs(node_context)[1]
    assert process_job(node_context, second.id) is Outcome.SKIPPED
    second = _jobs(node_context)[1]
    assert second.state == JobState.SKIPPED
    assert second.reason.startswith(f"unchanged: the same inputs as job {first.id}'s delivered report")
    assert not second.outputs  # nothing encoded, so nothing to deliver


def test_job_of_an_older_generation_not_delivered_once_a_newer_exists(node_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receive(node_context, _instance(tmp_path, 1))
    sweep(node_context, make_celery(node_context.settings))
    receive(node_context, _instance(tmp_path, 2))  # arrives before the first job ran
    sweep(node_context, make_celery(node_context.settings))
    first, second = _jobs(node_context)
    assert (first.generation, second.generation) == (0, 1)

    assert process_job(node_context, first.id) is Outcome.SKIPPED
    assert process_job(node_context, second.id) is Outcome.DELIVERED
    first, second = _jobs(node_context)
    assert first.state == JobState.SKIPPED and f"superseded by job {second.id}" in first.reason
    assert not first.outputs  # never inferred: nothing stale was built
    assert second.state == JobState.DELIVERED
    assert "PredecessorDocumentsSequence" not in pydicom.dcmread(second.outputs["files"]["sr"])
