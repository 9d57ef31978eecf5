"""Named queries of the operator's commands (requeue, cancel, replay, audit export) and of
queue routing. Each state change is compare-and-set and audited in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import audit
from db.jobs import _aware, delivery_for
from db.models import AuditEvent, Delivery, DeliveryState, Job, JobState, ModelVersion, utcnow
from kernel.errors import NodeError

#: states ``requeue`` accepts
REQUEUEABLE = (JobState.FAILED, JobState.FAILED_INPUT)


class AdminRefused(NodeError):
    """The job is not in a state the command applies to; nothing was changed."""


def job_models(session: Session, job_ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """Job id -> (model key, model family or None when the version is not registered)."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(Job.id, Job.model_key, ModelVersion.family)
        .outerjoin(
            ModelVersion,
            (ModelVersion.model_key == Job.model_key) & (ModelVersion.version == Job.model_version),
        )
        .where(Job.id.in_(job_ids))
    ).all()
    return {job_id: (key, family) for job_id, key, family in rows}


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise AdminRefused(f"job {job_id} does not exist")
    return job


def requeue_job(session: Session, job_id: int, outputs_present: bool, actor: str = "admin") -> JobState:
    """Put a FAILED (or FAILED_INPUT) job back in the queue; the sweeper sends it again.

    With ``outputs_present`` (its encoded files are still in the outbox) it resumes at ENCODED
    and only re-delivers, dead-lettered deliveries reset to PENDING; otherwise it starts over
    at QUEUED. Returns the new state; raises AdminRefused for any other state.
    """
    job = _job(session, job_id)
    if job.state not in REQUEUEABLE:
        raise AdminRefused(f"job {job_id} is {job.state.value}: only FAILED jobs are requeued")
    target = JobState.ENCODED if outputs_present and job.outputs.get("files") else JobState.QUEUED
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == job.state)
        .values(state=target, reason=None, lease_until=None, enqueued_at=None, updated_at=utcnow())
    ).rowcount
    if changed != 1:
        raise AdminRefused(f"job {job_id} changed while being requeued; try again")
    reset = session.execute(
        update(Delivery)
        .where(Delivery.job_id == job_id, Delivery.state.in_((DeliveryState.FAILED, DeliveryState.RETRY)))
        .values(state=DeliveryState.PENDING, attempts=0, retry_at=None)
    ).rowcount
    audit.record(session, actor, "requeue", "job", job_id, previous=job.state.value,
                 state=target.value, deliveries_reset=reset)
    session.refresh(job)
    return target


def cancel_job(session: Session, job_id: int, now: datetime, actor: str = "admin") -> None:
    """Cancel a QUEUED job no worker holds: it becomes SKIPPED (reason "cancelled"); its queue
    message, if any, then finds nothing to claim. Raises AdminRefused otherwise."""
    job = _job(session, job_id)
    if job.state != JobState.QUEUED:
        raise AdminRefused(f"job {job_id} is {job.state.value}: only QUEUED jobs are cancelled")
    if job.lease_until is not None and _aware(job.lease_until) > now:
        raise AdminRefused(f"job {job_id} is held by a worker")
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED, Job.attempts == job.attempts)
        .values(state=JobState.SKIPPED, reason="cancelled by operator", updated_at=now)
    ).rowcount
    if changed != 1:
        raise AdminRefused(f"job {job_id} was claimed while being cancelled")
    audit.record(session, actor, "cancel", "job", job_id, previous=JobState.QUEUED.value)
    session.refresh(job)


def replay_files(session: Session, job_id: int) -> dict[str, str]:
    """The output files (role -> path) a replay of the job sends; raises AdminRefused unless
    it is a DELIVERED job with recorded files. Changes nothing: a caller checks before it
    changes anything (:func:`prepare_replay`)."""
    job = _job(session, job_id)
    if job.state != JobState.DELIVERED:
        raise AdminRefused(f"job {job_id} is {job.state.value}: only DELIVERED jobs are replayed")
    files = dict(job.outputs.get("files") or {})
    if not files:
        raise AdminRefused(f"job {job_id} has no recorded output files")
    return files


def prepare_replay(session: Session, job_id: int, destination: str, actor: str = "admin") -> dict[str, str]:
    """Reset the (job, destination) delivery of a DELIVERED job to PENDING for a replay.

    Returns the job's output files (role -> path); raises AdminRefused for other states.
    """
    files = replay_files(session, job_id)
    delivery = delivery_for(session, job_id, destination)
    previous = delivery.state.value
    delivery.state, delivery.attempts, delivery.retry_at = DeliveryState.PENDING, 0, None
    audit.record(session, actor, "replay", "delivery", delivery.id, job_id=job_id,
                 destination=destination, previous=previous)
    return files


def job_destinations(session: Session, job_id: int) -> list[str]:
    """The destinations a job has delivery rows for."""
    return list(session.scalars(select(Delivery.destination).where(Delivery.job_id == job_id).order_by(Delivery.id)))


def audit_events(session: Session, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every audit event (from ``since``), oldest first, as plain values; streamed."""
    statement = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        statement = statement.where(AuditEvent.at >= since)
    for event in session.scalars(statement.execution_options(yield_per=500)):
        yield {
            "id": event.id,
            "at": _aware(event.at).isoformat(),
            "actor": event.actor,
            "action": event.action,
            "entity": event.entity,
            "entity_id": event.entity_id,
            "details": event.details,
        }
