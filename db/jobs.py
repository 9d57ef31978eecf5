"""Named queries of the assemble, queue, infer, encode and deliver stages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import audit
from db.models import (
    Delivery,
    DeliveryState,
    Instance,
    Job,
    JobState,
    ModelVersion,
    Study,
    StudyState,
    utcnow,
)
from db.scope import record_verdicts

#: job states from which the worker may (re)start processing
RESUMABLE = (JobState.QUEUED, JobState.RUNNING, JobState.INFERRED, JobState.ENCODED)
FINAL = (JobState.DELIVERED, JobState.SKIPPED, JobState.FAILED_INPUT, JobState.FAILED)


@dataclass(frozen=True)
class StudyTiming:
    """What the assembly rule needs to know about a study that is still receiving."""

    study_id: int
    first_received_at: datetime
    last_received_at: datetime


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything the node writes is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def receiving_studies(session: Session) -> list[StudyTiming]:
    rows = session.execute(
        select(Study.id, Study.first_received_at, Study.last_received_at).where(
            Study.state == StudyState.RECEIVING
        )
    ).all()
    return [StudyTiming(r[0], _aware(r[1]), _aware(r[2])) for r in rows]


def enabled_models(session: Session) -> list[ModelVersion]:
    """Model versions new jobs run, oldest registration first."""
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.enabled.is_(True)).order_by(ModelVersion.id)
        )
    )


def assembly_models(session: Session) -> list[tuple[ModelVersion, bool]]:
    """(model version, shadow) of every version a new study gets a job of: live ones, then shadows."""
    live = [(model, False) for model in enabled_models(session)]
    shadows = [(model, True) for model in session.scalars(
        select(ModelVersion).where(ModelVersion.shadow.is_(True), ModelVersion.retired.is_(False),
                                   ModelVersion.enabled.is_(False)).order_by(ModelVersion.id))]
    return live + shadows


def assemble_study(
    session: Session, study_id: int, forced: bool,
    scope: dict[str, dict[str, Any]] | None = None, actor: str = "sweeper",
) -> list[Job]:
    """Mark a study READY and create one QUEUED job per enabled model for its generation.

    Shadow model versions get a job too, flagged ``shadow`` (never delivered). ``scope`` maps
    ``key@version`` to its scope verdict (``inference.scope.ScopeVerdict.as_dict``): a version
    whose verdict says not to run gets no job; the verdicts are kept on the study and audited.

    Idempotent: a (study, model, version, generation) job is created once. ``actor`` is who
    decided the study was complete, for the audit: the quiet timer (``sweeper``) or ``mpps``.
    """
    study = session.get(Study, study_id, with_for_update=True)
    if study is None or study.state != StudyState.RECEIVING:
        return []
    created = []
    candidates = assembly_models(session)
    if scope is not None:
        record_verdicts(session, study, [scope[f"{m.model_key}@{m.version}"] for m, _ in candidates
                                         if f"{m.model_key}@{m.version}" in scope])
        candidates = [(m, shadow) for m, shadow in candidates
                      if scope.get(f"{m.model_key}@{m.version}", {"run": True})["run"]]
    for model, shadow in candidates:
        exists = session.scalar(
            select(Job.id).where(
                Job.study_id == study.id,
                Job.model_key == model.model_key,
                Job.model_version == model.version,
                Job.generation == study.generation,
            )
        )
        if exists is None:
            job = Job(
                study_id=study.id,
                model_key=model.model_key,
                model_version=model.version,
                generation=study.generation,
                state=JobState.QUEUED,
                shadow=shadow,
            )
            session.add(job)
            created.append(job)
    study.state = StudyState.READY
    study.assembled_generation = study.generation
    session.flush()
    audit.record(
        session, actor, "assemble", "study", study.id,
        generation=study.generation, forced=forced, jobs=[j.id for j in created],
    )
    for job in created:
        ref = f"{job.model_key}@{job.model_version}"
        rule = (scope or {}).get(ref, {}).get("rule")
        audit.record(session, actor, "queue", "job", job.id, model=ref, shadow=job.shadow,
                     **({} if rule is None else {"rule": rule, "rule_source": scope[ref]["source"]}))
    return created


def jobs_to_enqueue(session: Session, now: datetime, requeue_after: timedelta) -> list[int]:
    """Jobs that need a (new) queue message.

    QUEUED jobs never sent; unfinished jobs that no worker holds whose last message is older
    than ``requeue_after`` (a lost message) or was sent before their lease ran out (the worker
    died: a live worker renews its lease, :func:`renew_lease`, and releases it at the end); jobs
    with a delivery whose retry time has come.
    """
    resend_before = now - requeue_after
    unheld = (Job.lease_until.is_(None)) | (Job.lease_until < now)
    # a lease that ran out without a release: its worker died, and no message was sent since
    abandoned = Job.lease_until.is_not(None) & (Job.enqueued_at < Job.lease_until)
    lost = select(Job.id).where(
        Job.state.in_(RESUMABLE),
        unheld,
        (Job.enqueued_at.is_(None)) | (Job.enqueued_at < resend_before) | abandoned,
    )
    retry = (
        select(Job.id)
        .join(Delivery, Delivery.job_id == Job.id)
        .where(
            Job.state == JobState.ENCODED,
            unheld,
            Delivery.state == DeliveryState.RETRY,
            Delivery.retry_at <= now,
            (Job.enqueued_at.is_(None)) | (Job.enqueued_at < Delivery.retry_at),
        )
    )
    return sorted(set(session.scalars(lost)) | set(session.scalars(retry)))


def mark_enqueued(session: Session, job_ids: list[int], now: datetime) -> None:
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=now))


def claim_job(session: Session, job_id: int, now: datetime, lease: timedelta) -> Job | None:
    """Compare-and-set claim of a resumable job whose lease is free; commits.

    Returns the job with a fresh lease (QUEUED becomes RUNNING; INFERRED and ENCODED stay, so
    the work resumes where it stopped), or None when it is finished or held by another worker.
    """
    job = session.get(Job, job_id)
    if job is None or job.state not in RESUMABLE:
        return None
    if job.lease_until is not None and _aware(job.lease_until) > now:
        return None
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == job.state, Job.attempts == job.attempts)
        .values(
            state=JobState.RUNNING if job.state == JobState.QUEUED else job.state,
            attempts=Job.attempts + 1,
            lease_until=now + lease,
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        session.rollback()
        return None
    audit.record(session, "worker", "claim", "job", job_id, attempt=job.attempts + 1)
    session.commit()
    session.refresh(job)
    return job


def renew_lease(session: Session, job_id: int, attempt: int, until: datetime) -> bool:
    """Extend the lease of claim ``attempt`` of ``job_id`` to ``until``; commits. False when
    that claim no longer holds the job (released, or claimed again after the lease ran out)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == attempt, Job.lease_until.is_not(None))
        .values(lease_until=until)
    )
    session.commit()
    return result.rowcount == 1


def release_job(session: Session, job: Job) -> None:
    """Give the lease back (the caller commits)."""
    job.lease_until = None


def set_job_state(session: Session, job: Job, state: JobState, actor: str = "worker", **fields: object) -> None:
    """Move a job to ``state`` (with extra column values) and audit it; caller commits."""
    for key, value in fields.items():
        setattr(job, key, value)
    job.state = state
    job.updated_at = utcnow()
    audit.record(session, actor, state.value.lower(), "job", job.id, **{
        k: v for k, v in fields.items() if isinstance(v, (str, int, float, type(None)))
    })


def newer_generation_job(session: Session, job: Job) -> Job | None:
    """The latest job of ``job``'s study and model from a later generation of the study (one
    assembled again after instances arrived late), unless that job failed; None when there is
    none. ``job``'s results are then stale: the newer job reports on more of the study."""
    return session.scalar(
        select(Job)
        .where(
            Job.study_id == job.study_id,
            Job.model_key == job.model_key,
            Job.shadow == job.shadow,
            Job.generation > job.generation,
            Job.state.not_in((JobState.FAILED, JobState.FAILED_INPUT)),
        )
        .order_by(Job.generation.desc())
        .limit(1)
    )


def earlier_delivered_job(session: Session, job: Job) -> Job | None:
    """The latest delivered job of ``job``'s study and model from an earlier generation (the
    report ``job``'s would replace), or None."""
    return session.scalar(
        select(Job)
        .where(
            Job.study_id == job.study_id,
            Job.model_key == job.model_key,
            Job.shadow.is_(False),
            Job.generation < job.generation,
            Job.state == JobState.DELIVERED,
        )
        .order_by(Job.generation.desc())
        .limit(1)
    )


def previous_report(session: Session, job: Job) -> str | None:
    """The SR file of :func:`earlier_delivered_job` (the report ``job``'s SR replaces), if it
    is still on disk; else None."""
    earlier = earlier_delivered_job(session, job)
    path = ((earlier.outputs or {}).get("files", {}).get("sr") if earlier else None) or None
    return str(path) if path and Path(path).is_file() else None


def study_instance_paths(session: Session, study_id: int) -> list[str]:
    return list(session.scalars(select(Instance.path).where(Instance.study_id == study_id).order_by(Instance.id)))


def delivery_for(session: Session, job_id: int, destination: str) -> Delivery:
    """The delivery row of (job, destination), created PENDING when missing."""
    delivery = session.scalar(
        select(Delivery).where(Delivery.job_id == job_id, Delivery.destination == destination)
    )
    if delivery is None:
        delivery = Delivery(job_id=job_id, destination=destination, state=DeliveryState.PENDING)
        session.add(delivery)
        session.flush()
    return delivery
