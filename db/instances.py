"""Named queries of the receive stage: record a received instance, list what was received.

Upserts use ``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL), so concurrent
associations sending the same study or re-sending an instance never collide or duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, distinct, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db import audit
from db.models import AuditEvent, Instance, Series, Study, StudyState

RECEIVE_ACTION = "receive"
RECEIVE_ACTOR = "receive"


@dataclass(frozen=True)
class ReceivedInstance:
    """What the receive stage knows about one stored instance."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str
    size_bytes: int
    number_of_frames: int = 1
    modality: str | None = None
    series_description: str | None = None
    calling_ae_title: str | None = None
    patient_key: str | None = None
    """:func:`kernel.patient.patient_key` of the instance's header."""
    may_be_input: bool = True
    """False for an instance no model can take (not an image class a model reads, or a result
    of this node): it never reopens an assembled study."""


def _insert(session: Session, table: Any) -> Any:
    """A dialect-specific INSERT that supports ``on_conflict_do_nothing``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for database dialect {dialect!r}")


def _insert_ignore(
    session: Session, table: Any, conflict: str, values: dict[str, Any]
) -> int | None:
    """Insert ``values`` unless ``conflict`` already exists; the new row's id or None."""
    statement = (
        _insert(session, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[conflict])
        .returning(table.id)
    )
    return session.execute(statement).scalar_one_or_none()


def _ensure(
    session: Session, column: Any, values: dict[str, Any], found: int | None
) -> tuple[int, bool]:
    """The id of the row with ``values[column.key]`` (``found`` when already looked up),
    inserted when absent; (id, created).

    The usual case, a row that exists, costs nothing here; only a new row pays for the
    dialect's ``ON CONFLICT DO NOTHING`` insert (which SQLAlchemy cannot cache), so two
    processes creating the same row at once never collide.
    """
    if found is not None:
        return found, False
    key = values[column.key]
    created = _insert_ignore(session, column.class_, column.key, values)
    if created is not None:
        return created, True
    # the conflicting row was committed by another writer: it is there now
    found = session.execute(select(column.class_.id).where(column == key)).scalar_one()
    return found, False


def _id_of(column: Any) -> Any:
    """The id of the row whose unique ``column`` equals the parameter named after the column
    (NULL when none), as a scalar subquery."""
    return select(column.class_.id).where(column == bindparam(column.key)).scalar_subquery()


# The usual path's statements, built once: executing one costs no construction and a
# memoized cache key (this runs once per received instance).
_KNOWN_IDS = select(
    _id_of(Study.study_instance_uid),
    _id_of(Series.series_instance_uid),
    _id_of(Instance.sop_instance_uid),
)
_INSERT_INSTANCE = insert(Instance)
_TOUCH_STUDY = (
    update(Study).where(Study.id == bindparam("study")).values(last_received_at=bindparam("now"))
)
# one atomic statement: two late instances at once bump the generation only once
_REOPEN_STUDY = (
    update(Study)
    .where(Study.id == bindparam("study"), Study.assembled_generation == Study.generation)
    .values(generation=Study.generation + 1, state=StudyState.RECEIVING)
    .returning(Study.generation)
)


def _known_ids(session: Session, item: ReceivedInstance) -> tuple[int | None, int | None, bool]:
    """The ids of ``item``'s study and series rows (None when absent) and whether its
    instance is recorded: one statement, one round trip."""
    study, series, instance = (
        session.connection()
        .execute(
            _KNOWN_IDS,
            {
                "study_instance_uid": item.study_instance_uid,
                "series_instance_uid": item.series_instance_uid,
                "sop_instance_uid": item.sop_instance_uid,
            },
        )
        .one()
    )
    return study, series, instance is not None


def record_instance(session: Session, item: ReceivedInstance, now: datetime | None = None) -> bool:
    """Upsert the study and series, insert the instance; True when the instance is new.

    A new instance updates ``Study.last_received_at``; if the study was already assembled
    (``assembled_generation == generation``) and the instance may be a model input
    (``item.may_be_input``), its generation is bumped and its state set back to RECEIVING, so
    the late instance leads to a new job version, with a "reopen" audit event (the node's own
    results forwarded back by a PACS, a report or a key object selection do not). A
    new study row gets a "receive" audit event. The caller owns the transaction (commit or
    rollback). The usual path (known study and series, new instance) is four statements built
    once (one lookup, one insert, two updates), run on the session's connection.
    """
    now = now or datetime.now(UTC)
    known_study, known_series, known_instance = _known_ids(session, item)
    if known_instance:
        return False
    study_id, created = _ensure(
        session,
        Study.study_instance_uid,
        {
            "study_instance_uid": item.study_instance_uid,
            "state": StudyState.RECEIVING,
            "first_received_at": now,
            "last_received_at": now,
            "generation": 0,
            "assembled_generation": -1,
        },
        known_study,
    )
    series_id, _ = _ensure(
        session,
        Series.series_instance_uid,
        {
            "study_id": study_id,
            "series_instance_uid": item.series_instance_uid,
            "modality": item.modality,
            "series_description": item.series_description,
        },
        known_series,
    )
    # a plain insert: a concurrent writer of the same SOP instance makes it raise
    # IntegrityError, and the caller's retry then finds the row above
    connection = session.connection()
    connection.execute(
        _INSERT_INSTANCE,
        {
            "study_id": study_id,
            "series_id": series_id,
            "sop_instance_uid": item.sop_instance_uid,
            "sop_class_uid": item.sop_class_uid,
            "transfer_syntax_uid": item.transfer_syntax_uid,
            "number_of_frames": item.number_of_frames,
            "path": item.path,
            "size_bytes": item.size_bytes,
            "calling_ae_title": item.calling_ae_title,
            "patient_key": item.patient_key,
            "received_at": now,
        },
    )
    connection.execute(_TOUCH_STUDY, {"study": study_id, "now": now})
    reopened = (
        connection.execute(_REOPEN_STUDY, {"study": study_id}).scalar_one_or_none()
        if item.may_be_input
        else None
    )
    if reopened is not None:
        audit.record(session, RECEIVE_ACTOR, "reopen", "study", study_id, generation=reopened)
    if created:
        session.add(
            AuditEvent(
                at=now,
                actor=RECEIVE_ACTOR,
                action=RECEIVE_ACTION,
                entity="study",
                entity_id=str(study_id),
                details={"calling_ae_title": item.calling_ae_title, "modality": item.modality},
            )
        )
    return True


@dataclass(frozen=True)
class Recorded:
    """The recorded copy of a SOP instance, and whether this call recorded it."""

    new: bool
    path: str
    study_instance_uid: str
    series_instance_uid: str
    #: its patient key (:func:`kernel.patient.patient_key`); None for a row recorded before
    #: migration 0005
    patient_key: str | None = None


def record_or_find(session: Session, item: ReceivedInstance) -> Recorded:
    """:func:`record_instance`, then the recorded copy: ``item`` itself when it was new, else
    the row that was there first (perhaps under another study or series)."""
    if record_instance(session, item):
        return Recorded(
            True, item.path, item.study_instance_uid, item.series_instance_uid, item.patient_key
        )
    row = session.execute(
        select(
            Instance.path,
            Study.study_instance_uid,
            Series.series_instance_uid,
            Instance.patient_key,
        )
        .join(Study, Instance.study_id == Study.id)
        .join(Series, Instance.series_id == Series.id)
        .where(Instance.sop_instance_uid == item.sop_instance_uid)
    ).one()
    return Recorded(
        False, row.path, row.study_instance_uid, row.series_instance_uid, row.patient_key
    )


def study_counts_by_state(session: Session) -> dict[str, int]:
    """How many studies are in each state (states with no study are left out)."""
    rows = session.execute(select(Study.state, func.count(Study.id)).group_by(Study.state)).all()
    return {str(state): count for state, count in rows}


# built once: the one-patient rule asks it at every assembly, also in an MPPS N-SET transaction
_STUDY_PATIENTS = select(
    func.count(distinct(Instance.patient_key)),
    func.count(Instance.id) - func.count(Instance.patient_key),
).where(Instance.study_id == bindparam("study"))


def patient_key_count(session: Session, study_id: int) -> tuple[int, int]:
    """(distinct patient keys among the study's instances, instances without a key: recorded
    before migration 0005); one statement, nothing read from the spool."""
    keys, unkeyed = session.execute(_STUDY_PATIENTS, {"study": study_id}).one()
    return int(keys), int(unkeyed)


def patient_keys(session: Session, study_id: int) -> tuple[set[str], list[str]]:
    """(the distinct patient keys of the study's instances, the paths of those without one)."""
    keys = session.scalars(
        select(distinct(Instance.patient_key)).where(
            Instance.study_id == study_id, Instance.patient_key.is_not(None)
        )
    ).all()
    paths = session.scalars(
        select(Instance.path)
        .where(Instance.study_id == study_id, Instance.patient_key.is_(None))
        .order_by(Instance.id)
    ).all()
    return {key for key in keys if key is not None}, list(paths)
