"""The production profile on real servers: PostgreSQL for state, Redis as the Celery broker,
a real `lnm-node worker` process, a real Orthanc as the PACS."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from db.models import Job, JobState
from kernel.settings import settings_environment
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.databases import postgres_database
from tests.support.network import wait_until
from tests.support.orthanc import start_orthanc

pytestmark = pytest.mark.integration

REDIS_HOST = "127.0.0.1"


@pytest.fixture
def redis_url():  # type: ignore[no-untyped-def]
    """A Redis database index of its own on the loopback server, emptied before and after."""
    index = random.Random(os.getpid()).randint(3, 15)
    client = redis.Redis(host=REDIS_HOST, port=6379, db=index)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis on loopback is required: {exc}")
    client.flushdb()
    yield f"redis://{REDIS_HOST}:6379/{index}"
    client.flushdb()


def test_production_profile_redis_worker_postgres_delivers_to_pacs(
    tmp_path: Path, tiny_models_dir: Path, redis_url: str
) -> None:
    pacs = start_orthanc(tmp_path / "orthanc")
    worker = None
    try:
        with postgres_database() as database_url:
            settings = make_settings(
                tmp_path / "home", tiny_models_dir, profile="production", database_url=database_url,
                broker_url=redis_url, destinations=[pacs.destination],
            )
            ctx = prepare(settings)
            receive(ctx, write_us_study(tmp_path / "study", seed=8, count=2))
            env = {**os.environ, **settings_environment(settings)}
            with open(tmp_path / "worker.log", "wb") as log:
                worker = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=env,
                                          stdout=log, stderr=subprocess.STDOUT)
            app = make_celery(settings)

            def delivered() -> bool:
                sweep(ctx, app)
                with ctx.sessions() as session:
                    states = list(session.scalars(select(Job.state)))
                assert JobState.FAILED not in states, (tmp_path / "worker.log").read_text()[-3000:]
                return states == [JobState.DELIVERED]

            wait_until(delivered, timeout=180, interval=1, what="the job to be delivered by the Redis worker")
            assert len(pacs.instance_ids()) >= 2
            # each prefork child warmed its model before its first job
            log_lines = (tmp_path / "worker.log").read_text(errors="replace").splitlines()
            ready = [i for i, line in enumerate(log_lines) if '"worker ready"' in line]
            inferred = [i for i, line in enumerate(log_lines) if '"inferred"' in line]
            assert ready and inferred and ready[0] < inferred[0]
            wait_until(lambda: (tmp_path / "worker.log").read_text().count('"worker ready"')
                       == settings.effective_concurrency(), timeout=120, what="every child warm")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
            ctx.sessions.kw["bind"].dispose()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        pacs.stop()
