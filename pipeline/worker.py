"""Run a Celery worker for the node's queue in this process."""

from __future__ import annotations

import os

from kernel.settings import Profile, Settings
from pipeline.celery_app import make_celery
from pipeline.routing import known_queues


def worker_argv(
    settings: Settings, concurrency: int | None = None, queues: list[str] | None = None
) -> list[str]:
    """Worker options: one task at a time per process (prefetch 1), solo pool when embedded.

    ``queues`` (default: every known queue) are the Celery queues this worker consumes.
    """
    names = queues or known_queues(settings)
    argv = ["worker", "-Q", ",".join(names), "--loglevel=INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat",
            "-n", f"lnm-{settings.profile.value}-{os.getpid()}@%h"]
    if settings.profile is Profile.EMBEDDED:
        argv += ["--pool=solo"]
    else:
        argv += ["--pool=prefork", f"--concurrency={concurrency or 1}"]
    return argv


def run_worker(
    settings: Settings, concurrency: int | None = None, queues: list[str] | None = None
) -> None:
    """Block running the worker until it is told to stop (SIGTERM: warm shutdown)."""
    make_celery(settings).worker_main(worker_argv(settings, concurrency, queues))
