"""Jobs of one model that reach the forward pass together run as one batch, in worker threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from db import jobs
from db.models import Job, JobState
from inference.loading import load_network
from inference.registry import Registry
from inference.runner import run_model
from kernel.settings import Settings
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from pipeline.worker import worker_argv
from tests.integration.pipeline.conftest import make_settings, receive

pytestmark = pytest.mark.integration

STUDIES = 3


def test_jobs_waiting_together_share_one_forward_pass(tmp_path: Path, tiny_models_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", tiny_models_dir, batch_wait_ms=1000,
                             batch_max=STUDIES)
    ctx = prepare(settings)
    for seed in range(STUDIES):
        receive(ctx, write_us_study(tmp_path / f"study{seed}", seed=40 + seed, count=1))
    assert sweep(ctx, make_celery(settings)).jobs_created == STUDIES
    with ctx.sessions() as session:
        ids = list(session.scalars(select(Job.id)))

    outcomes: dict[int, Outcome] = {}
    threads = [threading.Thread(target=lambda i=i: outcomes.update({i: process_job(ctx, i)}))
               for i in ids]  # as Celery's thread pool runs them
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert set(outcomes.values()) == {Outcome.DELIVERED}
    assert list(ctx.passes.sizes) == [STUDIES]
    spec = Registry.from_settings(settings).get("tiny-ynet", "tiny-ynet")
    network = load_network(spec, "cpu")
    with ctx.sessions() as session:
        for job in session.scalars(select(Job)):
            assert job.state == JobState.DELIVERED
            paths = [Path(p) for p in jobs.study_instance_paths(session, job.study_id)]
            alone = run_model(spec, network, paths, "cpu").probability
            assert job.probability == pytest.approx(alone, abs=1e-4)


def test_a_batching_worker_runs_jobs_in_threads(tmp_path: Path) -> None:
    cpu = Settings(home=tmp_path)
    assert not cpu.batching() and "--pool=solo" in worker_argv(cpu)
    gpu = Settings(home=tmp_path, device="cuda")
    assert gpu.effective_batch_wait_seconds() == pytest.approx(0.05)
    argv = worker_argv(gpu)
    assert "--pool=threads" in argv and f"--concurrency={gpu.batch_max}" in argv
    assert not Settings(home=tmp_path, device="cuda", batch_wait_ms=0).batching()
    assert Settings(home=tmp_path, batch_wait_ms=20).batching()
