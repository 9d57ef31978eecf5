"""Two worker processes on one shared spool folder, both consuming from Redis: each job once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Job
from phantom.us_dicom import write_us_study
from pipeline.serve import prepare
from tests.integration.ops.conftest import Workers, audit_count, wait_all_delivered
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.databases import postgres_database
from tests.support.network import wait_until
from tests.support.orthanc import start_orthanc
from tests.support.servers import private_redis

pytestmark = pytest.mark.integration
JOBS = 4


def test_two_workers_one_spool_each_job_processed_exactly_once(
    tmp_path: Path, tiny_models_dir: Path, workers: Workers
) -> None:
    pacs = start_orthanc(tmp_path / "orthanc")
    try:
        with private_redis(tmp_path / "redis") as redis_server, postgres_database() as database_url:
            spool_home = tmp_path / "shared-spool"  # what an NFS/CephFS mount is on each host
            settings = make_settings(spool_home, tiny_models_dir, profile="production",
                                     database_url=database_url, broker_url=redis_server.url(),
                                     destinations=pacs.destination)
            ctx = prepare(settings)
            first, second = workers.start(settings), workers.start(settings)
            logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
            wait_until(lambda: all(" ready." in log.read_text(errors="replace") for log in logs),
                       timeout=120, what="both workers ready")
            for seed in range(JOBS):
                receive(ctx, write_us_study(tmp_path / f"study-{seed}", seed=80 + seed, count=1))
            wait_all_delivered(ctx, JOBS, workers)

            with ctx.sessions() as session:
                job_ids = {str(i) for i in session.scalars(select(Job.id))}
                outputs = sum(len(job.outputs["sop_instance_uids"]) for job in session.scalars(select(Job)))
            assert audit_count(ctx, "claim", "job") == dict.fromkeys(job_ids, 1)
            assert audit_count(ctx, "delivered", "job") == dict.fromkeys(job_ids, 1)
            done = [log.read_text(errors="replace").count("succeeded in") for log in logs]
            assert sum(done) == JOBS and all(n >= 1 for n in done), done
            assert len(pacs.instance_ids()) == outputs
            assert first.poll() is None and second.poll() is None
            ctx.sessions.kw["bind"].dispose()
    finally:
        pacs.stop()
