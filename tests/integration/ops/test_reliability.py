"""Reliability on real servers: Redis restarted, PostgreSQL restarted, the PACS down then back.

Each test runs a real `lnm-node worker` process against a private Redis (and, for the restart
of PostgreSQL, a private cluster), with a real Orthanc as the PACS, and checks that every
result reaches the PACS exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import select

from db.models import Delivery, DeliveryState, Job
from kernel.errors import PeerRejected
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.ops.conftest import Workers, audit_count, wait_all_delivered
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.databases import postgres_database
from tests.support.network import free_port
from tests.support.orthanc import start_orthanc
from tests.support.servers import private_postgres, private_redis

pytestmark = pytest.mark.integration


def _output_count(ctx: NodeContext) -> int:
    with ctx.sessions() as session:
        return sum(len(job.outputs["sop_instance_uids"]) for job in session.scalars(select(Job)))


def _assert_once(ctx: NodeContext, pacs, retried: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Every job claimed once (``retried``: once more per delivery retry), every delivery sent
    once, the PACS holds each output once."""
    with ctx.sessions() as session:
        job_ids = {str(i) for i in session.scalars(select(Job.id))}
        deliveries = list(session.scalars(select(Delivery)))
    claims = audit_count(ctx, "claim", "job")
    assert set(claims) == job_ids
    assert all(n >= 2 if retried else n == 1 for n in claims.values()), claims
    assert all(d.state == DeliveryState.SENT for d in deliveries)
    assert audit_count(ctx, "deliver", "delivery") == {str(d.id): 1 for d in deliveries}
    assert len(pacs.instance_ids()) == _output_count(ctx)


def test_redis_restarted_with_jobs_in_flight_every_job_delivered_once(
    tmp_path: Path, tiny_models_dir: Path, workers: Workers
) -> None:
    pacs = start_orthanc(tmp_path / "orthanc")
    try:
        with private_redis(tmp_path / "redis") as redis_server, postgres_database() as database_url:
            settings = make_settings(tmp_path / "home", tiny_models_dir, profile="production",
                                     database_url=database_url, broker_url=redis_server.url(),
                                     destinations=pacs.destination, requeue_after_seconds=5)
            ctx = prepare(settings)
            worker = workers.start(settings)
            receive(ctx, write_us_study(tmp_path / "a", seed=51, count=1))
            wait_all_delivered(ctx, 1, workers)

            receive(ctx, write_us_study(tmp_path / "b", seed=52, count=1))
            receive(ctx, write_us_study(tmp_path / "c", seed=53, count=1))
            assert sweep(ctx, make_celery(settings)).enqueued == 2
            redis_server.restart()  # no persistence: messages not yet taken are lost
            wait_all_delivered(ctx, 3, workers)  # re-sent by the sweeper, taken after reconnecting
            assert worker.poll() is None, workers.logs()
            _assert_once(ctx, pacs)
            ctx.sessions.kw["bind"].dispose()
    finally:
        pacs.stop()


def test_postgres_restarted_worker_and_sweeper_reconnect_every_job_delivered_once(
    tmp_path: Path, tiny_models_dir: Path, workers: Workers
) -> None:
    pacs = start_orthanc(tmp_path / "orthanc")
    try:
        with private_redis(tmp_path / "redis") as redis_server, private_postgres() as postgres:
            settings = make_settings(tmp_path / "home", tiny_models_dir, profile="production",
                                     database_url=postgres.url, broker_url=redis_server.url(),
                                     destinations=pacs.destination)
            ctx = prepare(settings)
            worker = workers.start(settings)
            receive(ctx, write_us_study(tmp_path / "a", seed=61, count=1))
            wait_all_delivered(ctx, 1, workers)

            postgres.stop()
            with pytest.raises(sqlalchemy.exc.OperationalError):
                sweep(ctx, make_celery(settings))
            with pytest.raises(PeerRejected) as refused:  # the SCP answers "out of resources"
                receive(ctx, write_us_study(tmp_path / "refused", seed=62, count=1))
            assert refused.value.status == 0xA700
            postgres.start()

            receive(ctx, write_us_study(tmp_path / "b", seed=63, count=1))
            wait_all_delivered(ctx, 2, workers)
            assert worker.poll() is None, workers.logs()
            _assert_once(ctx, pacs)
            ctx.sessions.kw["bind"].dispose()
    finally:
        pacs.stop()


def test_pacs_down_then_back_every_result_delivered_once(
    tmp_path: Path, tiny_models_dir: Path, workers: Workers
) -> None:
    dicom_port, http_port = free_port(), free_port()
    with private_redis(tmp_path / "redis") as redis_server, postgres_database() as database_url:
        settings = make_settings(tmp_path / "home", tiny_models_dir, profile="production",
                                 database_url=database_url, broker_url=redis_server.url(),
                                 destinations=f"ORTHANC@127.0.0.1:{dicom_port}")
        ctx = prepare(settings)
        workers.start(settings)
        for seed in (71, 72):
            receive(ctx, write_us_study(tmp_path / str(seed), seed=seed, count=1))
        app = make_celery(settings)

        def retrying() -> bool:
            sweep(ctx, app)
            with ctx.sessions() as session:
                states = list(session.scalars(select(Delivery.state)))
            return len(states) == 2 and all(s == DeliveryState.RETRY for s in states)

        deadline = time.monotonic() + 120
        while not retrying():
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.5)
        pacs = start_orthanc(tmp_path / "orthanc", dicom_port=dicom_port, http_port=http_port)
        try:
            wait_all_delivered(ctx, 2, workers)  # the retry time (10 s) passes, the sweeper re-sends
            assert all(n >= 1 for n in audit_count(ctx, "deliver_retry", "delivery").values())
            _assert_once(ctx, pacs, retried=True)
            # a PACS restart loses nothing that was acknowledged
            pacs.stop()
            pacs = start_orthanc(tmp_path / "orthanc", dicom_port=dicom_port, http_port=http_port)
            assert len(pacs.instance_ids()) == _output_count(ctx)
        finally:
            pacs.stop()
        ctx.sessions.kw["bind"].dispose()
