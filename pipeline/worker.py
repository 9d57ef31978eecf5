"""Run a Celery worker for the node's queue in this process, warmed before it takes jobs."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from db.session import check_reachable
from inference.device import check_device
from kernel.settings import Profile, Settings, available_cpus
from kernel.spool import make_dirs, replace_file
from pipeline.celery_app import check_broker, make_celery
from pipeline.context import NodeContext, database_timeouts
from pipeline.routing import known_queues
from pipeline.warmup import import_job_modules, live_model_refs, warm_models

log = logging.getLogger(__name__)
#: seconds between tries to warm a live version that could not be loaded
RETRY_UNLOADABLE_SECONDS = 300.0

#: prctl option: the signal this process gets when its parent ends (linux/prctl.h)
_PR_SET_PDEATHSIG = 1

#: seconds a prefork child may take to start (it loads and warms its models first)
CHILD_START_SECONDS = 600


def worker_argv(
    settings: Settings, concurrency: int | None = None, queues: list[str] | None = None
) -> list[str]:
    """Worker options: one task at a time per pool slot (prefetch 1). A batching worker
    (:meth:`Settings.batching`, the default on CUDA) runs ``batch_max`` jobs at once in threads
    of one process, which share its networks and batch their forward passes; otherwise the solo
    pool when embedded (``serve`` starts one such process per job slot), else a prefork pool of
    ``concurrency`` (default :meth:`Settings.effective_concurrency`) children.

    ``queues`` (default: every known queue) are the Celery queues this worker consumes.
    """
    names = queues or known_queues(settings)
    argv = ["worker", "-Q", ",".join(names), "--loglevel=INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat",
            "-n", f"lnm-{settings.profile.value}-{os.getpid()}@%h"]
    if settings.batching():
        argv += ["--pool=threads", f"--concurrency={settings.batch_max}"]
    elif settings.profile is Profile.EMBEDDED:
        argv += ["--pool=solo"]
    else:
        children = concurrency or settings.effective_concurrency()
        argv += ["--pool=prefork", f"--concurrency={children}"]
    return argv


def ready_marker(home: Path, pid: int) -> Path:
    """The file a worker process writes once its models are warm (``serve`` waits for it)."""
    return home / "run" / f"worker-{pid}.ready"


def end_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM (Celery's warm shutdown) when the process
    that started it ends, however it ends (``prctl(PR_SET_PDEATHSIG)``, Linux); exit at once
    when it has ended already. `serve`'s workers would otherwise outlive a killed `serve` and
    keep taking jobs from its home's queue."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        log.warning("cannot follow the parent process", extra={"errno": ctypes.get_errno()})
    if os.getppid() != parent_pid:  # it ended before the request above took effect
        log.info("parent process gone; worker not started", extra={"parent_pid": parent_pid})
        raise SystemExit(0)


def cpu_threads(processes: int) -> int:
    """Torch threads per worker process on a CPU node: the cores shared among the processes."""
    return max(1, available_cpus() // max(1, processes))


def get_ready(
    ctx: NodeContext, processes: int, watch: threading.Event | None = None, mark: bool = True
) -> list[str]:
    """Warm this process for jobs: torch threads, live models, then (``mark``) the ready marker.

    Afterwards a daemon thread warms versions promoted later (checked every
    ``sweep_interval_seconds``) until ``watch`` is set. Returns the refs warmed now.
    """
    if not ctx.settings.device.startswith("cuda"):
        import torch

        torch.set_num_threads(cpu_threads(processes))
    import_job_modules()
    reported: dict[str, str] = {}
    warmed = warm_models(ctx, reported=reported)
    if mark:
        mark_ready(ctx.settings.home, warmed)
    watch = watch or threading.Event()
    tried = dict.fromkeys(reported, time.monotonic())
    thread = threading.Thread(
        target=_warm_promoted,
        args=(ctx, set(warmed), watch, tried, reported),
        name="warm-promoted",
        daemon=True,
    )
    thread.start()
    return warmed


def mark_ready(home: Path, warmed: list[str]) -> None:
    """Write this process's ready marker (the refs it warmed) and log ``worker ready``."""
    marker = ready_marker(home, os.getpid())
    make_dirs(marker.parent)
    text = (" ".join(warmed) + "\n").encode()
    replace_file(marker, lambda handle: handle.write(text))
    log.info("worker ready", extra={"models": warmed, "pid": os.getpid()})


def _warm_promoted(
    ctx: NodeContext,
    warmed: set[str],
    stop: threading.Event,
    tried: dict[str, float],
    reported: dict[str, str],
) -> None:
    """Warm each version that becomes live (promoted, enabled, shadowed) while the worker runs.

    A live version that cannot load (weights changed on disk, say) is tried again every
    :data:`RETRY_UNLOADABLE_SECONDS`, so a restored file is picked up, and its reason is logged
    again only when it changes: not once per sweep period. ``tried``: ref -> when it last
    failed (monotonic); ``reported``: ref -> the reason logged."""
    while not stop.wait(ctx.settings.sweep_interval_seconds):
        try:
            now = time.monotonic()
            new = [
                ref
                for ref in live_model_refs(ctx)
                if ref not in warmed and now - tried.get(ref, -math.inf) >= RETRY_UNLOADABLE_SECONDS
            ]
            if new:
                warmed.update(warm_models(ctx, new, reported))
                tried.update((ref, now) for ref in new if ref not in warmed)
        except Exception:  # a database restart: try again next period
            log.exception("could not warm promoted model versions")


def run_worker(
    settings: Settings, concurrency: int | None = None, queues: list[str] | None = None,
    processes: int = 1,
) -> None:
    """Warm, then block running the worker until it is told to stop (SIGTERM: warm shutdown).

    ``processes``: how many worker processes share this host's cores (``serve`` starts several).
    """
    holder: dict[str, NodeContext] = {}

    def context() -> NodeContext:
        if "ctx" not in holder:
            holder["ctx"] = NodeContext.build(settings, migrate=False)
        return holder["ctx"]

    check_device(settings.device)
    check_reachable(settings.database_url, database_timeouts(settings))
    check_broker(settings)
    app = make_celery(settings, context)
    argv = worker_argv(settings, concurrency, queues)
    if settings.profile is Profile.EMBEDDED or settings.batching():  # one process warms itself
        _mark_when_consuming(settings.home, get_ready(context(), processes, mark=False))
    else:
        _warm_each_child(context, concurrency or settings.effective_concurrency())
        app.conf.worker_proc_alive_timeout = CHILD_START_SECONDS
    app.worker_main(argv)


def _mark_when_consuming(home: Path, warmed: list[str]) -> None:
    """Write the ready marker once Celery's consumer runs (``worker_ready``), not before: the
    node opens its port on it, and a job sent then is taken at once."""
    from celery.signals import worker_ready

    def ready(**_: object) -> None:
        mark_ready(home, warmed)

    worker_ready.connect(ready, weak=False)


def _warm_each_child(context: Callable[[], NodeContext], children: int) -> None:
    """Prefork: each child warms its own models (CUDA does not survive a fork) before its
    first task."""
    from celery.signals import worker_process_init

    def warm(**_: object) -> None:
        get_ready(context(), children)

    worker_process_init.connect(warm, weak=False)
