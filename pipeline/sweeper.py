"""The sweeper: assembles quiet studies into jobs and (re)sends queue hints. Safe anywhere, any time.

It is woken by a timer at the earliest quiet deadline of the receiving studies (so a study is
assembled and queued the moment its quiet time ends, not at the next period; a study whose
MPPS is IN PROGRESS waits for the step's end, up to ``max_wait_seconds``), and at least
every ``sweep_interval_seconds`` as the safety net: MPPS steps whose last instance reached
another SCP process, lost queue messages, delivery retries.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery

from db import jobs, mpps
from kernel.spool import Spool
from pipeline.assembly import decide_assembly, next_deadline
from pipeline.context import NodeContext
from pipeline.handover import enqueue_jobs
from pipeline.retention import enforce_retention
from pipeline.scoping import scope_in_session, study_verdicts

log = logging.getLogger(__name__)

#: the shortest sleep between two passes (a deadline already due is swept at once)
MIN_SLEEP_SECONDS = 0.01


@dataclass(frozen=True)
class SweepResult:
    assembled: int
    jobs_created: int
    enqueued: int
    #: when the next receiving study becomes complete, if one is receiving
    next_deadline: datetime | None = None


def sweep(ctx: NodeContext, app: Celery) -> SweepResult:
    """One pass: assemble complete studies, act on final MPPS steps, enqueue jobs that need a
    message."""
    settings = ctx.settings
    now = ctx.clock()
    quiet = timedelta(seconds=settings.quiet_seconds)
    max_wait = timedelta(seconds=settings.max_wait_seconds)
    with ctx.sessions() as session:
        studies = jobs.receiving_studies(session)
        held = mpps.studies_in_progress(session, since=now - max_wait) if studies else set()
        abandoned = mpps.studies_in_progress(session) - held if studies else set()
    decisions = decide_assembly(studies, now, quiet=quiet, max_wait=max_wait, held=held,
                                abandoned=abandoned)
    created = 0
    for decision in decisions:
        scope = study_verdicts(ctx, decision.study_id)
        with ctx.sessions.begin() as session:
            created += len(jobs.assemble_study(session, decision.study_id, decision.forced, scope))
        log.info("assembled", extra={"study_id": decision.study_id, "forced": decision.forced})
    act_on_pending_steps(ctx)
    with ctx.sessions.begin() as session:
        due = jobs.jobs_to_enqueue(session, now, timedelta(seconds=settings.requeue_after_seconds))
    enqueue_jobs(ctx, app, due)
    done = {d.study_id for d in decisions}
    waiting = [s for s in studies if s.study_id not in done]
    return SweepResult(len(decisions), created, len(due),
                       next_deadline(waiting, quiet, max_wait, held))


def act_on_pending_steps(ctx: NodeContext) -> int:
    """Act on final MPPS steps whose listed instances have all arrived; how many were."""
    with ctx.sessions() as session:
        uids = [step.sop_instance_uid for step in mpps.pending_steps(session)]
    acted = 0
    scope_of = scope_in_session(ctx.settings)
    for uid in uids:
        with ctx.sessions.begin() as session:
            step = session.scalar(mpps.select_step(uid).with_for_update())
            rule = ctx.settings.mpps_discontinued.value
            max_wait = timedelta(seconds=ctx.settings.max_wait_seconds)
            outcome = mpps.act_on_step(session, step, rule, ctx.clock(), max_wait, scope_of)
        if outcome is not None:
            acted += 1
            log.info("MPPS acted on by the sweeper", extra={"action": outcome.action})
    return acted


def remove_stale_partials(spool: Spool) -> int:
    """Delete the partial files a crash left in the spool's ``tmp/``; logs and returns how many."""
    removed = spool.remove_stale()
    if removed:
        log.info("removed stale partial files", extra={"count": removed})
    return removed


def run_retention(ctx: NodeContext) -> None:
    """The retention pass (:mod:`pipeline.retention`); a failure is logged and retried later."""
    try:
        enforce_retention(ctx)
    except Exception:  # DB restarting, a file busy: the next pass tries again
        log.exception("retention pass failed")


def seconds_until_next(ctx: NodeContext, result: SweepResult | None) -> float:
    """How long to sleep: until the next quiet deadline, at most ``sweep_interval_seconds``."""
    interval = ctx.settings.sweep_interval_seconds
    if result is None or result.next_deadline is None:
        return interval
    due = (result.next_deadline - ctx.clock()).total_seconds()
    return min(interval, max(MIN_SLEEP_SECONDS, due))


def run_sweeper(ctx: NodeContext, app: Celery, stop: threading.Event) -> None:
    """Sweep until ``stop`` is set, woken at each study's quiet deadline and at least every
    ``sweep_interval_seconds``, and delete stale partial files from the spool's ``tmp/`` (a
    crash leaves them); every ``retention_interval_seconds`` run the retention pass; errors are
    logged, not fatal."""
    retention_due = time.monotonic()
    while not stop.is_set():
        if time.monotonic() >= retention_due:
            retention_due = time.monotonic() + ctx.settings.retention_interval_seconds
            run_retention(ctx)
        result = None
        try:
            result = sweep(ctx, app)
        except Exception:  # a sweep that fails (DB restarting, broker down) is retried next tick
            log.exception("sweep failed")
        try:
            remove_stale_partials(ctx.spool)
        except OSError:
            log.exception("could not clean the spool's tmp folder")
        stop.wait(seconds_until_next(ctx, result))
