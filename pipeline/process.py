"""One job, start to end: claim, infer, encode, deliver. Every step resumes a half-finished run."""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum

from db import jobs
from db.models import DeliveryState, Job, JobState
from inference.gate import OutOfDomain
from inference.prediction import Prediction
from inference.selection import MissingInput
from kernel.errors import InvalidInput
from pipeline.context import NodeContext
from pipeline.deliver import deliver
from pipeline.encode import encode
from pipeline.infer import infer
from pipeline.lease import JobLease, LeaseLost
from pipeline.skip import NOT_RUN, encode_not_run

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What a task run ended with."""

    NOT_CLAIMED = "not_claimed"
    DELIVERED = "delivered"
    DELIVERY_PENDING = "delivery_pending"
    SKIPPED = "skipped"
    FAILED_INPUT = "failed_input"
    FAILED = "failed"


def process_job(ctx: NodeContext, job_id: int) -> Outcome:
    """Run every remaining stage of ``job_id``; never raises for a job's own failure."""
    lease_time = timedelta(seconds=ctx.settings.job_lease_seconds)
    with ctx.sessions() as session:
        job = jobs.claim_job(session, job_id, ctx.clock(), lease_time)
    if job is None:
        log.info("job not claimed (finished or held)", extra={"job_id": job_id})
        return Outcome.NOT_CLAIMED
    time_limit = timedelta(seconds=ctx.settings.task_time_limit_seconds)
    try:
        with JobLease(ctx.sessions, job_id, job.attempts, lease_time, time_limit, ctx.clock) as lease:
            outcome = _run_stages(ctx, job, lease)
    except LeaseLost as exc:  # another worker may run it now: leave the job to that claim
        log.warning("job left: lease lost", extra={"job_id": job_id, "reason": str(exc)})
        return Outcome.NOT_CLAIMED
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


def _run_stages(ctx: NodeContext, job: Job, lease: JobLease) -> Outcome:
    """Each stage starts only while this worker's lease holds (:meth:`JobLease.check`)."""
    lease.check()
    if _supersede(ctx, job):
        return Outcome.SKIPPED
    work = ctx.spool.work_dir(job.id)
    if job.state == JobState.ENCODED and (job.outputs or {}).get(NOT_RUN):  # skipped: send its SR
        return _deliver_not_run(ctx, job, dict(job.outputs["files"]), job.outputs[NOT_RUN])
    if job.state in (JobState.RUNNING, JobState.QUEUED):
        try:
            prediction = infer(ctx, job)
        except (MissingInput, OutOfDomain) as exc:  # the model is skipped, its SR says why
            log.info("job skipped", extra={"job_id": job.id, "reason": str(exc)})
            lease.check()
            return _deliver_not_run(ctx, job, encode_not_run(ctx, job, str(exc)), str(exc))
        lease.check()
        if _unchanged(ctx, job, prediction):
            return Outcome.SKIPPED
    else:
        prediction = Prediction.load(work)
    if job.state == JobState.ENCODED:
        files = dict(job.outputs["files"])
    else:
        files = encode(ctx, job, prediction)
    lease.check()
    if _supersede(ctx, job):  # a newer generation was assembled while this job ran
        return Outcome.SKIPPED
    return Outcome.DELIVERED if deliver(ctx, job, files) else Outcome.DELIVERY_PENDING


def _supersede(ctx: NodeContext, job: Job) -> bool:
    """End ``job`` SKIPPED, its deliveries not sent, when a later generation of its study has
    a job of the same model: a stale report is never delivered, nor after the newer one."""
    with ctx.sessions.begin() as session:
        row = session.get(Job, job.id)
        newer = jobs.newer_generation_job(session, row)
        if newer is None:
            return False
        reason = (
            f"superseded by job {newer.id}: instances arrived after generation "
            f"{row.generation} of the study was assembled, generation {newer.generation} "
            "reports on them"
        )
        for delivery in row.deliveries:
            if delivery.state != DeliveryState.SENT:
                delivery.state, delivery.last_error = DeliveryState.FAILED, f"not sent: {reason}"
        jobs.set_job_state(session, row, JobState.SKIPPED, reason=reason)
        newer_id = newer.id
    log.info("job superseded", extra={"job_id": job.id, "newer_job_id": newer_id})
    return True


def _unchanged(ctx: NodeContext, job: Job, prediction: Prediction) -> bool:
    """End ``job`` SKIPPED when the report it would make is already delivered: the same model
    version and weights ran on the same inputs in an earlier generation of the study (the
    instances that arrived late are not this model's input), so a second report would repeat
    the first."""
    with ctx.sessions.begin() as session:
        row = session.get(Job, job.id)
        earlier = jobs.earlier_delivered_job(session, row)
        same_model = earlier is not None and (earlier.model_version, earlier.weights_sha256) == (
            row.model_version,
            row.weights_sha256,
        )
        if not (
            same_model
            and prediction.inputs
            and (earlier.outputs or {}).get("inputs") == prediction.inputs  # type: ignore[union-attr]
        ):
            return False
        reason = (
            f"unchanged: the same inputs as job {earlier.id}'s delivered report; the instances "
            "that arrived after it are not this model's input"
        )
        jobs.set_job_state(session, row, JobState.SKIPPED, reason=reason)
    log.info("job unchanged", extra={"job_id": job.id})
    return True


def _deliver_not_run(ctx: NodeContext, job: Job, files: dict[str, str], reason: str) -> Outcome:
    """Deliver a skipped job's "not run" SR; once every destination has it, the job is SKIPPED."""
    if not deliver(ctx, job, files, sent_state=JobState.SKIPPED, reason=reason[:2000]):
        return Outcome.DELIVERY_PENDING
    return Outcome.SKIPPED


def _finish(ctx: NodeContext, job_id: int, state: JobState, reason: str) -> None:
    with ctx.sessions.begin() as session:
        job = session.get(Job, job_id)
        jobs.set_job_state(session, job, state, reason=reason[:2000])
        jobs.release_job(session, job)
