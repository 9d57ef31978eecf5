"""Study completeness through the real SCP, the sweeper and process_job: a late instance after
delivery makes a new job version that is delivered too; a study that never goes quiet is
forced complete after the maximum wait (clock injected through NodeContext.clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from db import jobs
from db.models import AuditEvent, Delivery, DeliveryState, Job, JobState, Study, StudyState
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive, tiny_models_dir
from tests.support.orthanc import start_orthanc

__all__ = ["tiny_models_dir"]

pytestmark = pytest.mark.integration


def _jobs(ctx: NodeContext) -> list[Job]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def _study(ctx: NodeContext) -> Study:
    with ctx.sessions() as session:
        return session.scalars(select(Study)).one()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_study_late_instance_after_delivery_new_generation_delivered_with_new_uids(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    pacs = start_orthanc(tmp_path / "orthanc")
    try:
        settings = make_settings(
            tmp_path / "home", tiny_models_dir, destinations=[pacs.destination]
        )
        ctx, app = prepare(settings), make_celery(settings)
        files = write_us_study(tmp_path / "study", seed=31, count=3)

        receive(ctx, files[1:])
        assert sweep(ctx, app).jobs_created == 1
        [first] = _jobs(ctx)
        assert process_job(ctx, first.id) is Outcome.DELIVERED

        # the late instance, first in the series: the model's input now (a late instance that
        # is not gives no second report: tests/integration/pipeline/test_late_instances.py)
        receive(ctx, files[:1])
        study = _study(ctx)
        assert (study.state, study.generation) == (StudyState.RECEIVING, 1)
        assert sweep(ctx, app).jobs_created == 1
        first, second = _jobs(ctx)
        assert (first.generation, second.generation) == (0, 1)
        assert process_job(ctx, second.id) is Outcome.DELIVERED

        # a re-sent instance is not new: no third generation
        receive(ctx, files[1:2])
        assert _study(ctx).generation == 1
        assert sweep(ctx, app).jobs_created == 0

        first, second = _jobs(ctx)
        assert first.state == second.state == JobState.DELIVERED
        old = set(first.outputs["sop_instance_uids"].values())
        new = set(second.outputs["sop_instance_uids"].values())
        assert old and new and not old & new
        stored = {
            pacs.get_json(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
            for i in pacs.instance_ids()
        }
        assert stored == old | new
        with ctx.sessions() as session:
            deliveries = list(session.scalars(select(Delivery).order_by(Delivery.job_id)))
        assert [(d.job_id, d.state) for d in deliveries] == [
            (first.id, DeliveryState.SENT),
            (second.id, DeliveryState.SENT),
        ]
    finally:
        pacs.stop()


def test_study_never_quiet_forced_complete_after_max_wait(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    settings = make_settings(
        tmp_path / "home", tiny_models_dir, quiet_seconds=3600, max_wait_seconds=600
    )
    ctx, app = prepare(settings), make_celery(settings)
    files = write_us_study(tmp_path / "study", seed=32, count=3)

    receive(ctx, files[:1])
    first_received = _aware(_study(ctx).first_received_at)
    # instances keep trickling in: the study is never quiet for an hour
    for index, minutes in enumerate((4, 9), start=1):
        ctx.clock = lambda at=first_received + timedelta(minutes=minutes): at
        assert sweep(ctx, app).assembled == 0
        receive(ctx, files[index : index + 1])
    ctx.clock = lambda: first_received + timedelta(seconds=599)
    assert sweep(ctx, app).assembled == 0

    ctx.clock = lambda: first_received + timedelta(seconds=600)
    result = sweep(ctx, app)
    assert (result.assembled, result.jobs_created) == (1, 1)
    assert _study(ctx).state == StudyState.READY
    with ctx.sessions() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "assemble"))
    assert event.details["forced"] is True
    [job] = _jobs(ctx)
    assert process_job(ctx, job.id) is Outcome.DELIVERED
    with ctx.sessions() as session:
        assert len(jobs.study_instance_paths(session, job.study_id)) == 3
