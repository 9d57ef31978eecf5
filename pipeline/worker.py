"""Run a Celery worker for the node's queue in this process."""

from __future__ import annotations

from kernel.settings import Profile, Settings
from pipeline.celery_app import QUEUE, make_celery


def worker_argv(settings: Settings, concurrency: int | None = None) -> list[str]:
    """Worker options: one task at a time per process (prefetch 1), solo pool when embedded."""
    argv = ["worker", "-Q", QUEUE, "--loglevel=INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-n", f"lnm-{settings.profile.value}@%h"]
    if settings.profile is Profile.EMBEDDED:
        argv += ["--pool=solo"]
    else:
        argv += ["--pool=prefork", f"--concurrency={concurrency or 1}"]
    return argv


def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    """Block running the worker until it is told to stop (SIGTERM: warm shutdown)."""
    make_celery(settings).worker_main(worker_argv(settings, concurrency))
