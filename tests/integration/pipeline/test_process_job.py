"""A job through infer, encode and deliver, in process, against a real Orthanc PACS."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Delivery, DeliveryState, Job, JobState
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.network import free_port
from tests.support.orthanc import start_orthanc

pytestmark = pytest.mark.integration


def _only_job(ctx) -> Job:  # type: ignore[no-untyped-def]
    with ctx.sessions() as session:
        return session.scalars(select(Job)).one()


def test_process_job_without_destinations_writes_outputs_once(node_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receive(node_context, write_us_study(tmp_path / "study", seed=5, count=2))
    result = sweep(node_context, make_celery(node_context.settings))
    assert (result.assembled, result.jobs_created) == (1, 1)
    job = _only_job(node_context)

    assert process_job(node_context, job.id) is Outcome.DELIVERED
    done = _only_job(node_context)
    assert done.state == JobState.DELIVERED and 0.0 <= done.probability <= 1.0
    assert set(done.outputs["files"]) >= {"sr", "heatmap"}
    assert all(Path(p).exists() for p in done.outputs["files"].values())
    assert process_job(node_context, job.id) is Outcome.NOT_CLAIMED


def test_process_job_pacs_down_then_up_delivers_same_instances(tmp_path: Path, tiny_models_dir: Path) -> None:
    orthanc_port = free_port()
    settings = make_settings(tmp_path / "home", tiny_models_dir, destinations=[f"ORTHANC@127.0.0.1:{orthanc_port}"])
    ctx = prepare(settings)
    receive(ctx, write_us_study(tmp_path / "study", seed=6, count=1))
    sweep(ctx, make_celery(settings))
    job = _only_job(ctx)

    assert process_job(ctx, job.id) is Outcome.DELIVERY_PENDING
    with ctx.sessions() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.state == DeliveryState.RETRY and delivery.retry_at is not None
        assert "association" in (delivery.last_error or "")
    assert _only_job(ctx).state == JobState.ENCODED

    # the PACS comes up on that port; the retry time passes; the sweeper re-sends the job
    pacs = start_orthanc(tmp_path / "orthanc", dicom_port=orthanc_port)
    try:
        later = ctx.clock() + timedelta(hours=2)
        ctx.clock = lambda: later
        assert sweep(ctx, make_celery(settings)).enqueued == 1
        assert process_job(ctx, job.id) is Outcome.DELIVERED
        stored = {pacs.get_json(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"] for i in pacs.instance_ids()}
        assert stored == set(_only_job(ctx).outputs["sop_instance_uids"].values())
    finally:
        pacs.stop()
