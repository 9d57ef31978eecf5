"""One job, start to end: claim, infer, encode, deliver. Every step resumes a half-finished run."""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum

from db import jobs
from db.models import Job, JobState
from inference.prediction import Prediction
from kernel.errors import InvalidInput
from pipeline.context import NodeContext
from pipeline.deliver import deliver
from pipeline.encode import encode
from pipeline.infer import infer

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What a task run ended with."""

    NOT_CLAIMED = "not_claimed"
    DELIVERED = "delivered"
    DELIVERY_PENDING = "delivery_pending"
    FAILED_INPUT = "failed_input"
    FAILED = "failed"


def process_job(ctx: NodeContext, job_id: int) -> Outcome:
    """Run every remaining stage of ``job_id``; never raises for a job's own failure."""
    lease = timedelta(seconds=ctx.settings.task_time_limit_seconds)
    with ctx.sessions() as session:
        job = jobs.claim_job(session, job_id, ctx.clock(), lease)
    if job is None:
        log.info("job not claimed (finished or held)", extra={"job_id": job_id})
        return Outcome.NOT_CLAIMED
    try:
        outcome = _run_stages(ctx, job)
    except InvalidInput as exc:
        _finish(ctx, job_id, JobState.FAILED_INPUT, str(exc))
        log.warning("job input unusable", extra={"job_id": job_id, "reason": str(exc)})
        return Outcome.FAILED_INPUT
    except Exception as exc:  # the top of a task: record and alert, never lose the reason
        log.exception("job failed", extra={"job_id": job_id})
        _finish(ctx, job_id, JobState.FAILED, f"{type(exc).__name__}: {exc}")
        return Outcome.FAILED
    with ctx.sessions.begin() as session:
        jobs.release_job(session, session.get(Job, job_id))
    return outcome


def _run_stages(ctx: NodeContext, job: Job) -> Outcome:
    work = ctx.spool.work_dir(job.id)
    if job.state in (JobState.RUNNING, JobState.QUEUED):
        prediction = infer(ctx, job)
    else:
        prediction = Prediction.load(work)
    if job.state == JobState.ENCODED:
        files = dict(job.outputs["files"])
    else:
        files = encode(ctx, job, prediction)
    return Outcome.DELIVERED if deliver(ctx, job, files) else Outcome.DELIVERY_PENDING


def _finish(ctx: NodeContext, job_id: int, state: JobState, reason: str) -> None:
    with ctx.sessions.begin() as session:
        job = session.get(Job, job_id)
        jobs.set_job_state(session, job, state, reason=reason[:2000])
        jobs.release_job(session, job)
