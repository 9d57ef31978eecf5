"""Named queries of the retention pass: which received studies may go, and the record that
they went (an ``expire`` audit event per study, which also keeps them from being chosen again)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, cast, exists, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Exists

from db import audit
from db.jobs import FINAL
from db.models import AuditEvent, Instance, Job, PathologyLabel, Study, StudyState

EXPIRE_ACTION = "expire"


@dataclass(frozen=True)
class StudyFiles:
    """What a study holds in the spool."""

    study_id: int
    paths: list[str]
    job_ids: list[int]


def study_expiry_events() -> ColumnElement[bool]:
    """The audit events that record a study's expiry (:func:`record_expired`; their
    ``entity_id`` is the study's id as text)."""
    return and_(AuditEvent.action == EXPIRE_ACTION, AuditEvent.entity == "study")


def _expired() -> Exists:
    return exists().where(study_expiry_events(), AuditEvent.entity_id == cast(Study.id, String))


def expirable_studies(session: Session, received_before: datetime | None = None) -> list[int]:
    """Studies whose files may go, oldest last instance first: assembled, every job finished, no
    pathology label (labelled studies are training data), not expired yet; with
    ``received_before``, only those whose last instance came before it."""
    unfinished = exists().where(Job.study_id == Study.id, Job.state.not_in(FINAL))
    labelled = exists().where(PathologyLabel.study_id == Study.id)
    query = select(Study.id).where(Study.state != StudyState.RECEIVING, ~unfinished, ~labelled,
                                   ~_expired())
    if received_before is not None:
        query = query.where(Study.last_received_at < received_before)
    return list(session.scalars(query.order_by(Study.last_received_at, Study.id)))


def received_bytes(session: Session) -> int:
    """Bytes of the received instances of studies not expired."""
    # per study not expired, its instances by their study index: the instances of studies
    # expired long ago (most of a year's history) are not read
    kept = select(Study.id).where(~_expired())
    total = session.scalar(select(func.coalesce(func.sum(Instance.size_bytes), 0))
                           .where(Instance.study_id.in_(kept)))
    return int(total or 0)


def study_files(session: Session, study_id: int) -> StudyFiles:
    paths = session.scalars(select(Instance.path).where(Instance.study_id == study_id)
                            .order_by(Instance.id))
    jobs = session.scalars(select(Job.id).where(Job.study_id == study_id).order_by(Job.id))
    return StudyFiles(study_id, list(paths), list(jobs))


def record_expired(session: Session, study_id: int, reason: str, files: int, size_bytes: int) -> None:
    """Audit that a study's files went (the rows stay: history and audit keep their meaning)."""
    audit.record(session, "sweeper", EXPIRE_ACTION, "study", study_id, reason=reason, files=files,
                 bytes=size_bytes)
