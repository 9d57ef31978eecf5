"""Read-only named queries: the one read path of the status pages, /metrics and the CLI's
``status`` and ``instances`` (no writes here)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, case, cast, func, literal, select
from sqlalchemy.orm import Session, joinedload, selectinload

from db.models import (
    AuditEvent,
    Delivery,
    DeliveryState,
    Instance,
    Job,
    JobState,
    ModelVersion,
    Series,
    Study,
    StudyState,
)

#: job states that are waiting for, or held by, a worker
QUEUE_STATES = (JobState.QUEUED, JobState.RUNNING)
FAILED_JOB_STATES = (JobState.FAILED, JobState.FAILED_INPUT)
PROBLEM_DELIVERY_STATES = (DeliveryState.RETRY, DeliveryState.FAILED)
#: studies per page of the studies page
STUDY_PAGE_SIZE = 100
#: audit actions of a delivery attempt that did not succeed (see pipeline/deliver.py)
DELIVERY_FAILURE_ACTIONS = ("deliver_retry", "deliver_failed")


@dataclass(frozen=True)
class DeliveryRow:
    delivery_id: int
    job_id: int
    study_id: int
    destination: str
    state: str
    attempts: int
    last_error: str | None
    retry_at: datetime | None
    sent_at: datetime | None


@dataclass(frozen=True)
class JobRow:
    job_id: int
    study_id: int
    study_instance_uid: str
    model: str
    generation: int
    state: str
    attempts: int
    probability: float | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    files: dict[str, str] = field(default_factory=dict)
    deliveries: list[DeliveryRow] = field(default_factory=list)


@dataclass(frozen=True)
class StudyRow:
    study_id: int
    study_instance_uid: str
    state: str
    first_received_at: datetime
    last_received_at: datetime
    instances: int
    jobs: int
    #: per model of the last assembly: run or not, by which rule, why (``db.scope``)
    scope: list[dict[str, Any]] = field(default_factory=list)

    @property
    def out_of_scope(self) -> list[dict[str, Any]]:
        """The scope verdicts of the models that got no job."""
        return [verdict for verdict in self.scope if not verdict.get("run")]


@dataclass(frozen=True)
class SeriesRow:
    series_instance_uid: str
    modality: str | None
    series_description: str | None
    instances: int


@dataclass(frozen=True)
class StudyDetail:
    study: StudyRow
    series: list[SeriesRow]
    jobs: list[JobRow]


@dataclass(frozen=True)
class LatencyHistogram:
    """Cumulative counts per upper bound (seconds), their sum and the total count."""

    buckets: list[tuple[float, int]]
    total_seconds: float
    count: int


def database_ok(session: Session) -> bool:
    """True when the database answers a trivial query."""
    return session.scalar(select(literal(1))) == 1


def states(session: Session, model: type[Study | Job | Delivery]) -> dict[str, int]:
    """Rows of ``model`` (Study, Job or Delivery) counted by state, every state listed (0 too)."""
    enum = {Study: StudyState, Job: JobState, Delivery: DeliveryState}[model]
    result = {member.value: 0 for member in enum}
    for state, count in session.execute(select(model.state, func.count()).group_by(model.state)):
        result[str(getattr(state, "value", state))] = int(count)
    return result


def instance_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Instance)) or 0)


def count_in(counts: dict[str, int], wanted: Sequence[StudyState | JobState | DeliveryState]) -> int:
    """How many rows are in one of the ``wanted`` states, from :func:`states`' counts."""
    return sum(counts.get(state.value, 0) for state in wanted)


def queue_depth_from(job_states: dict[str, int]) -> dict[str, int]:
    """Jobs waiting for a worker (QUEUED) and held by one (RUNNING), from jobs by state."""
    return {state.value: job_states.get(state.value, 0) for state in QUEUE_STATES}


def queue_depth(session: Session) -> dict[str, int]:
    """Jobs waiting for a worker (QUEUED) and held by one (RUNNING)."""
    return queue_depth_from(states(session, Job))


def delivery_failure_count(session: Session) -> int:
    """Delivery attempts that failed (retried or dead-lettered), from the audit history."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action.in_(DELIVERY_FAILURE_ACTIONS))
        )
        or 0
    )


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)


def job_latency_histogram(session: Session, bounds: Sequence[float]) -> LatencyHistogram:
    """Assembled (job created) to delivered (job DELIVERED) times of every delivered job."""
    seconds = _seconds_between(session, Job.created_at, Job.updated_at)
    columns = [func.count(), func.coalesce(func.sum(seconds), 0.0)]
    columns += [func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0) for b in bounds]
    row = session.execute(select(*columns).where(Job.state == JobState.DELIVERED)).one()
    return LatencyHistogram(
        buckets=[(float(b), int(n)) for b, n in zip(bounds, row[2:], strict=True)],
        total_seconds=float(row[1]),
        count=int(row[0]),
    )


def _instances_per_study(session: Session, study_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Instance.study_id, func.count())
        .where(Instance.study_id.in_(study_ids))
        .group_by(Instance.study_id)
    )
    return {int(s): int(n) for s, n in rows}


def _jobs_per_study(session: Session, study_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Job.study_id, func.count()).where(Job.study_id.in_(study_ids)).group_by(Job.study_id)
    )
    return {int(s): int(n) for s, n in rows}


def _study_row(study: Study, instances: int, jobs: int) -> StudyRow:
    return StudyRow(study.id, study.study_instance_uid, study.state.value,
                    study.first_received_at, study.last_received_at, instances, jobs,
                    list((study.scope or {}).get("models", [])))


def study_rows(
    session: Session, limit: int = STUDY_PAGE_SIZE, offset: int = 0, uid: str | None = None
) -> list[StudyRow]:
    """The most recently received studies, newest first, from the ``offset``-th on; with
    ``uid``, only studies whose Study Instance UID starts with it."""
    query = select(Study)
    if uid:
        query = query.where(Study.study_instance_uid.startswith(uid, autoescape=True))
    studies = list(session.scalars(
        query.order_by(Study.last_received_at.desc(), Study.id.desc()).offset(offset).limit(limit)
    ))
    ids = [s.id for s in studies]
    instances, jobs = _instances_per_study(session, ids), _jobs_per_study(session, ids)
    return [_study_row(s, instances.get(s.id, 0), jobs.get(s.id, 0)) for s in studies]


def _delivery_row(delivery: Delivery, study_id: int) -> DeliveryRow:
    return DeliveryRow(delivery.id, delivery.job_id, study_id, delivery.destination,
                       delivery.state.value, delivery.attempts, delivery.last_error,
                       delivery.retry_at, delivery.sent_at)


def _job_row(job: Job) -> JobRow:
    files = job.outputs.get("files", {}) if isinstance(job.outputs, dict) else {}
    return JobRow(
        job_id=job.id, study_id=job.study_id, study_instance_uid=job.study.study_instance_uid,
        model=f"{job.model_key}@{job.model_version}", generation=job.generation,
        state=job.state.value, attempts=job.attempts, probability=job.probability,
        reason=job.reason, created_at=job.created_at, updated_at=job.updated_at,
        files={str(k): str(v) for k, v in files.items()},
        deliveries=[_delivery_row(d, job.study_id) for d in sorted(job.deliveries, key=lambda d: d.id)],
    )


def _with_study_and_deliveries(query: Select[tuple[Job]]) -> Select[tuple[Job]]:
    """``query`` loading each job's study and deliveries with it (two statements in all, not
    two per job)."""
    return query.options(joinedload(Job.study), selectinload(Job.deliveries))


def study_detail(session: Session, study_id: int) -> StudyDetail | None:
    """One study with its series (instance counts) and its jobs (newest first), or None."""
    study = session.get(Study, study_id)
    if study is None:
        return None
    series_rows = session.execute(
        select(Series.series_instance_uid, Series.modality, Series.series_description,
               func.count(Instance.id))
        .join(Instance, Instance.series_id == Series.id, isouter=True)
        .where(Series.study_id == study_id)
        .group_by(Series.id)
        .order_by(Series.id)
    ).all()
    jobs = list(session.scalars(_with_study_and_deliveries(
        select(Job).where(Job.study_id == study_id).order_by(Job.id.desc()))))
    instances = sum(int(r[3]) for r in series_rows)
    return StudyDetail(
        study=_study_row(study, instances, len(jobs)),
        series=[SeriesRow(r[0], r[1], r[2], int(r[3])) for r in series_rows],
        jobs=[_job_row(job) for job in jobs],
    )


def job_row(session: Session, job_id: int) -> JobRow | None:
    job = session.get(Job, job_id)
    return None if job is None else _job_row(job)


def job_rows(session: Session, limit: int = 100) -> list[JobRow]:
    """The most recent jobs, newest first."""
    query = _with_study_and_deliveries(select(Job).order_by(Job.id.desc()).limit(limit))
    return [_job_row(j) for j in session.scalars(query)]


def failed_jobs(session: Session, limit: int = 100) -> list[JobRow]:
    """Jobs that ended FAILED or FAILED_INPUT, newest first, with their reasons."""
    query = _with_study_and_deliveries(
        select(Job).where(Job.state.in_(FAILED_JOB_STATES)).order_by(Job.id.desc()).limit(limit))
    return [_job_row(j) for j in session.scalars(query)]


def delivery_rows(
    session: Session, limit: int = 100, only_states: Sequence[DeliveryState] | None = None
) -> list[DeliveryRow]:
    """Deliveries, newest first (only those in ``only_states`` when given)."""
    query = select(Delivery, Job.study_id).join(Job, Delivery.job_id == Job.id)
    if only_states is not None:
        query = query.where(Delivery.state.in_(list(only_states)))
    rows = session.execute(query.order_by(Delivery.id.desc()).limit(limit)).all()
    return [_delivery_row(d, int(study_id)) for d, study_id in rows]


def model_version_rows(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.model_key, ModelVersion.id)))


def instance_path(session: Session, sop_instance_uid: str) -> str | None:
    """The spool path of a received instance, or None."""
    return session.scalar(select(Instance.path).where(Instance.sop_instance_uid == sop_instance_uid))


def iter_instance_rows(session: Session, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every received instance, oldest first, with its study UID and state, fetched ``batch``
    rows at a time (a year of history is hundreds of thousands: never all in memory)."""
    rows = session.execute(
        select(
            Instance.sop_instance_uid,
            Study.study_instance_uid,
            Instance.state,
            Instance.sop_class_uid,
            Instance.received_at,
        )
        .join(Study, Instance.study_id == Study.id)
        .order_by(Instance.received_at, Instance.id)
        .execution_options(yield_per=batch)
    )
    for r in rows:
        yield {
            "sop_instance_uid": r.sop_instance_uid,
            "study_instance_uid": r.study_instance_uid,
            "state": str(r.state),
            "sop_class_uid": r.sop_class_uid,
            "received_at": r.received_at,
        }


def instance_rows(session: Session) -> list[dict[str, Any]]:
    """Every received instance, oldest first, with its study UID and state."""
    return list(iter_instance_rows(session))


def audit_rows(session: Session, limit: int = 200) -> list[AuditEvent]:
    """The newest audit events, newest first."""
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))


def study_scope_rows(session: Session, limit: int = 50) -> list[dict[str, object]]:
    """Recent studies, newest first: UID, state, job count and the scope verdict per model."""
    studies = list(session.scalars(select(Study).order_by(Study.id.desc()).limit(limit)))
    per_study = (
        select(Job.study_id, func.count(Job.id))
        .where(Job.study_id.in_([study.id for study in studies]))
        .group_by(Job.study_id)
    )
    counts = {study_id: count for study_id, count in session.execute(per_study)}
    return [
        {
            "study_instance_uid": study.study_instance_uid,
            "state": study.state.value,
            "jobs": counts.get(study.id, 0),
            "scope": list((study.scope or {}).get("models", [])),
        }
        for study in studies
    ]
