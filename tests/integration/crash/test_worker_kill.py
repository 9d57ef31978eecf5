"""`kill -9` of the worker process while a job is in progress, then a new worker: the dead
worker stops renewing the job's short lease (settings.job_lease_seconds), the sweeper re-sends
the job as soon as the lease runs out (not after the task time limit, nor requeue_after), and it
finishes exactly once: each output instance reaches a real Orthanc once, one Delivery row, SENT.

The worker is frozen with SIGSTOP the moment the job turns RUNNING (so the state seen is the
state it dies in), then killed with SIGKILL; no test hook in the product code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from db.jobs import FINAL
from db.models import AuditEvent, Delivery, DeliveryState, Job, JobState
from kernel.settings import Settings, settings_environment
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext, utc_now
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive, tiny_models_dir
from tests.support.network import wait_until
from tests.support.orthanc import start_orthanc

__all__ = ["tiny_models_dir"]

pytestmark = pytest.mark.integration

LEASE_SECONDS = 6


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_environment(settings)}
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def _job(ctx: NodeContext) -> Job:
    with ctx.sessions() as session:
        return session.scalars(select(Job)).one()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_worker_kill9_while_running_job_finishes_exactly_once(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    pacs = start_orthanc(tmp_path / "orthanc")
    workers: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "worker.log"
    try:
        settings = make_settings(
            tmp_path / "home",
            tiny_models_dir,
            destinations=[pacs.destination],
            job_lease_seconds=LEASE_SECONDS,
        )
        assert settings.task_time_limit_seconds >= 1800 and settings.requeue_after_seconds >= 300
        ctx, app = prepare(settings), make_celery(settings)
        receive(ctx, write_us_study(tmp_path / "study", seed=71, count=2))
        assert sweep(ctx, app).enqueued == 1

        workers.append(_start_worker(settings, log))
        wait_until(
            lambda: _job(ctx).state != JobState.QUEUED,
            timeout=180,
            interval=0.02,
            what="the worker to claim the job",
        )
        os.kill(workers[0].pid, signal.SIGSTOP)
        frozen = _job(ctx)
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=30)
        assert frozen.state not in FINAL, "the job finished before the worker could be stopped"
        assert frozen.lease_until is not None and frozen.attempts == 1
        held_for = (_aware(frozen.lease_until) - utc_now()).total_seconds()
        assert held_for <= LEASE_SECONDS, "the lease is the short one, renewed while running"
        assert pacs.instance_ids() == []

        # nothing re-sends the job while the dead worker's lease holds (clock just before expiry)
        lease_until = _aware(frozen.lease_until)
        ctx.clock = lambda: lease_until - timedelta(seconds=1)
        assert sweep(ctx, app).enqueued == 0
        ctx.clock = utc_now

        workers.append(_start_worker(settings, log))

        def delivered() -> bool:
            sweep(ctx, app)
            job = _job(ctx)
            assert job.state not in (JobState.FAILED, JobState.FAILED_INPUT), log.read_text()
            return job.state == JobState.DELIVERED

        wait_until(delivered, timeout=240, interval=0.5, what="the job to be delivered")

        job = _job(ctx)
        assert job.attempts == 2
        outputs = set(job.outputs["sop_instance_uids"].values())
        stored = [
            pacs.get_json(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
            for i in pacs.instance_ids()
        ]
        assert sorted(stored) == sorted(outputs)
        with ctx.sessions() as session:
            [delivery] = session.scalars(select(Delivery))
            claims = session.scalars(
                select(AuditEvent).where(AuditEvent.entity == "job", AuditEvent.action == "claim")
            ).all()
            delivered_events = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "deliver")
            ).all()
        assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)
        assert len(claims) == 2 and len(delivered_events) == 1
        # Orthanc saw each output stored once: one NewInstance change per output
        changes = pacs.get_json("/changes?limit=1000")["Changes"]  # type: ignore[index]
        assert sum(c["ChangeType"] == "NewInstance" for c in changes) == len(outputs)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        pacs.stop()
