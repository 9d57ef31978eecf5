"""Named read-only queries of the consistency check (``ops.check``): what the database says
the spool holds. Each reads one bounded chunk, so a caller can keep its transactions short on a
live node."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.models import AuditEvent, Delivery, DeliveryState, Instance, Job, JobState, Study
from db.retention import study_expiry_events


@dataclass(frozen=True)
class InstanceFile:
    """One instance row as the check needs it: where its file is and how big."""

    id: int
    sop_instance_uid: str
    path: str
    size_bytes: int
    #: its study expired (retention deleted its files) after it was received
    expired: bool


@dataclass(frozen=True)
class PendingOutputs:
    """A job whose outputs still have to be delivered: ENCODED, or a delivery PENDING or RETRY."""

    job_id: int
    files: dict[str, str]
    #: its study expired (retention deleted its job folders)
    expired: bool


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _expiries() -> Any:
    """Each expired study's id (as the audit writes it: text) with when it expired (a study
    expires once)."""
    return (
        select(AuditEvent.entity_id.label("study_key"),
               func.min(AuditEvent.at).label("expired_at"))
        .where(study_expiry_events())
        .group_by(AuditEvent.entity_id)
        .subquery()
    )


def _instance_files(session: Session, *where: Any, limit: int | None = None) -> list[InstanceFile]:
    """Instance rows matching ``where``, by id. A row received before its study's ``expire``
    audit event is ``expired``: its file went by retention (a late instance of an expired
    study is not: retention never chooses that study again)."""
    expiries = _expiries()
    query = (
        select(Instance.id, Instance.sop_instance_uid, Instance.path, Instance.size_bytes,
               Instance.received_at, expiries.c.expired_at)
        .outerjoin(expiries, expiries.c.study_key == cast(Instance.study_id, String))
        .where(*where)
        .order_by(Instance.id)
        .limit(limit)
    )
    return [
        InstanceFile(row.id, row.sop_instance_uid, row.path, row.size_bytes,
                     row.expired_at is not None
                     and _aware(row.received_at) <= _aware(row.expired_at))
        for row in session.execute(query)
    ]


def instance_files(session: Session, after_id: int, limit: int) -> list[InstanceFile]:
    """The next ``limit`` instance rows with an id above ``after_id``, by id."""
    return _instance_files(session, Instance.id > after_id, limit=limit)


def instance_files_of(session: Session, ids: Collection[int]) -> list[InstanceFile]:
    """The rows of ``ids`` that exist (read again at the end of a check: a retention pass may
    have expired their study meanwhile)."""
    ordered = sorted(ids)
    found: list[InstanceFile] = []
    for start in range(0, len(ordered), 500):
        found += _instance_files(session, Instance.id.in_(ordered[start : start + 500]))
    return found


def paths_of(session: Session, sop_instance_uids: Collection[str]) -> dict[str, str]:
    """SOP Instance UID -> the recorded path, for those of ``sop_instance_uids`` with a row."""
    rows = session.execute(select(Instance.sop_instance_uid, Instance.path)
                           .where(Instance.sop_instance_uid.in_(list(sop_instance_uids))))
    return {row.sop_instance_uid: row.path for row in rows}


def existing_jobs(session: Session, job_ids: Collection[int]) -> set[int]:
    """Those of ``job_ids`` that have a job row."""
    return set(session.scalars(select(Job.id).where(Job.id.in_(list(job_ids)))))


def pending_outputs(session: Session) -> list[PendingOutputs]:
    """Jobs whose outputs are still to be delivered: ENCODED (not delivered yet) or with a
    delivery PENDING or RETRY; shadow jobs are never delivered and left out."""
    expiries = _expiries()
    waiting = select(Delivery.job_id).where(
        Delivery.state.in_([DeliveryState.PENDING, DeliveryState.RETRY])
    )
    rows = session.execute(
        select(Job.id, Job.outputs, expiries.c.study_key.is_not(None).label("expired"))
        .outerjoin(expiries, expiries.c.study_key == cast(Job.study_id, String))
        .where(~Job.shadow, or_(Job.state == JobState.ENCODED, Job.id.in_(waiting)))
        .order_by(Job.id)
    ).all()
    pending = []
    for row in rows:
        files = (row.outputs or {}).get("files") if isinstance(row.outputs, dict) else None
        pending.append(PendingOutputs(row.id, dict(files or {}), bool(row.expired)))
    return pending


def instance_count(session: Session) -> int:
    """How many instance rows there are."""
    return int(session.scalar(select(func.count(Instance.id))) or 0)


def study_count(session: Session) -> int:
    return int(session.scalar(select(func.count(Study.id))) or 0)


def job_count(session: Session) -> int:
    return int(session.scalar(select(func.count(Job.id))) or 0)


def schema_revision(session: Session) -> str | None:
    """The Alembic revision the database is at; None when it has none (not a node database)."""
    try:
        return session.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError:
        session.rollback()
        return None

