"""The sweeper: assembles quiet studies into jobs and (re)sends queue hints. Safe to run anywhere, any time."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from celery import Celery

from db import jobs, jobs_admin
from kernel.spool import Spool
from pipeline.assembly import decide_assembly
from pipeline.celery_app import enqueue
from pipeline.context import NodeContext
from pipeline.routing import queue_for
from pipeline.scoping import study_verdicts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    assembled: int
    jobs_created: int
    enqueued: int


def sweep(ctx: NodeContext, app: Celery) -> SweepResult:
    """One pass: assemble complete studies, then enqueue jobs that need a message."""
    settings = ctx.settings
    now = ctx.clock()
    with ctx.sessions() as session:
        decisions = decide_assembly(
            jobs.receiving_studies(session), now,
            quiet=timedelta(seconds=settings.quiet_seconds),
            max_wait=timedelta(seconds=settings.max_wait_seconds),
        )
    created = 0
    for decision in decisions:
        scope = study_verdicts(ctx, decision.study_id)
        with ctx.sessions.begin() as session:
            created += len(jobs.assemble_study(session, decision.study_id, decision.forced, scope))
        log.info("assembled", extra={"study_id": decision.study_id, "forced": decision.forced})
    with ctx.sessions.begin() as session:
        due = jobs.jobs_to_enqueue(session, now, timedelta(seconds=settings.requeue_after_seconds))
        models = jobs_admin.job_models(session, due)
    for job_id in due:
        model_key, family = models.get(job_id, ("", None))
        queue = queue_for(settings, model_key, family)
        enqueue(app, job_id, queue)
        with ctx.sessions.begin() as session:
            jobs.mark_enqueued(session, [job_id], now)
        log.info("enqueued", extra={"job_id": job_id, "queue": queue})
    return SweepResult(len(decisions), created, len(due))


def remove_stale_partials(spool: Spool) -> int:
    """Delete the partial files a crash left in the spool's ``tmp/``; logs and returns how many."""
    removed = spool.remove_stale()
    if removed:
        log.info("removed stale partial files", extra={"count": removed})
    return removed


def run_sweeper(ctx: NodeContext, app: Celery, stop: threading.Event) -> None:
    """Sweep every ``sweep_interval_seconds`` until ``stop`` is set, and delete stale partial
    files from the spool's ``tmp/`` (a crash leaves them); errors are logged, not fatal."""
    while not stop.is_set():
        try:
            sweep(ctx, app)
        except Exception:  # a sweep that fails (DB restarting, broker down) is retried next tick
            log.exception("sweep failed")
        try:
            remove_stale_partials(ctx.spool)
        except OSError:
            log.exception("could not clean the spool's tmp folder")
        stop.wait(ctx.settings.sweep_interval_seconds)
