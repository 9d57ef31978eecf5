"""SQLAlchemy models: the node's durable state. Bytes live in the spool, not here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from kernel.patient import PATIENT_KEY_LENGTH


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


def _enum(cls: type[StrEnum]) -> SqlEnum:
    return SqlEnum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class StudyState(StrEnum):
    RECEIVING = "RECEIVING"
    READY = "READY"


class InstanceState(StrEnum):
    RECEIVED = "RECEIVED"


class JobState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    INFERRED = "INFERRED"
    ENCODED = "ENCODED"
    DELIVERED = "DELIVERED"
    SKIPPED = "SKIPPED"
    FAILED_INPUT = "FAILED_INPUT"
    FAILED = "FAILED"


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    RETRY = "RETRY"
    FAILED = "FAILED"


class Study(Base):
    __tablename__ = "study"
    __table_args__ = (
        # the sweeper's receiving studies, counts by state
        Index("ix_study_state", "state"),
        # the status pages' newest studies, retention's oldest
        Index("ix_study_last_received_at", "last_received_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    state: Mapped[StudyState] = mapped_column(_enum(StudyState), default=StudyState.RECEIVING)
    first_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: bumped when an instance arrives after the study was assembled: a new job version follows
    generation: Mapped[int] = mapped_column(Integer, default=0)
    assembled_generation: Mapped[int] = mapped_column(Integer, default=-1)
    #: per model, whether its scope rule let it run on the last assembled generation, and why
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")

    series: Mapped[list[Series]] = relationship(back_populates="study")
    instances: Mapped[list[Instance]] = relationship(back_populates="study")
    jobs: Mapped[list[Job]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_description: Mapped[str | None] = mapped_column(String(64))

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    number_of_frames: Mapped[int] = mapped_column(Integer, default=1)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    calling_ae_title: Mapped[str | None] = mapped_column(String(16))
    #: whose instance it is (:func:`kernel.patient.patient_key`, a digest); None for rows
    #: recorded before migration 0005, whose files say it
    patient_key: Mapped[str | None] = mapped_column(String(PATIENT_KEY_LENGTH))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    state: Mapped[InstanceState] = mapped_column(_enum(InstanceState), default=InstanceState.RECEIVED)

    study: Mapped[Study] = relationship(back_populates="instances")
    series: Mapped[Series] = relationship(back_populates="instances")


class ModelVersion(Base):
    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_key", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_key: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(32))
    family: Mapped[str] = mapped_column(String(16))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: a shadow version runs beside the enabled one on live studies; its results go to no PACS
    shadow: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: retired for good: never enabled or shadowed again
    retired: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class ScopeOverride(Base):
    """A site's scope of a model key, set with ``lnm-node scope set`` (None: the spec's)."""

    __tablename__ = "scope_override"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: a ``ScopeRule`` as JSON; None keeps the spec's rule
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: the gate on or off; None keeps the spec's (on when the spec carries a gate)
    gate: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (UniqueConstraint("study_id", "model_key", "model_version", "generation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    model_key: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[JobState] = mapped_column(_enum(JobState), default=JobState.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    probability: Mapped[float | None] = mapped_column(Float)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: a worker holds the job until then; expired leases mean the worker died
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: a job of a shadow model version: inferred and encoded, never delivered
    shadow: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    study: Mapped[Study] = relationship(back_populates="jobs")
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="job")


class Delivery(Base):
    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("job_id", "destination"),
        # retries due, problem deliveries, counts by state
        Index("ix_delivery_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    destination: Mapped[str] = mapped_column(String(128))
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    job: Mapped[Job] = relationship(back_populates="deliveries")


class AuditEvent(Base):
    """Append-only history, written in the same transaction as the change it records."""

    __tablename__ = "audit_event"
    __table_args__ = (
        # one entity's events of an action (retention's "expired yet?"), actions counted
        Index("ix_audit_event_action_entity", "action", "entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MppsStatus(StrEnum):
    """Performed Procedure Step Status (0040,0252) of a Modality Performed Procedure Step."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


class Mpps(Base):
    """A Modality Performed Procedure Step a modality created (N-CREATE) and updated (N-SET)."""

    __tablename__ = "mpps"
    __table_args__ = (
        # the sweeper's final steps not acted on yet, the steps in progress
        Index("ix_mpps_status_acted_at", "status", "acted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    status: Mapped[MppsStatus] = mapped_column(_enum(MppsStatus))
    calling_ae_title: Mapped[str | None] = mapped_column(String(16))
    #: Study Instance UIDs of the Scheduled Step Attributes Sequence
    study_instance_uids: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: SOP Instance UIDs the Performed Series Sequence lists (images and non-image objects)
    referenced_sop_instance_uids: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the step's attributes as DICOM JSON (N-CREATE, then each N-SET's modifications merged)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: when the node acted on the final status (assembled or skipped its studies); None: not yet
    acted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    action: Mapped[str | None] = mapped_column(String(32))


class PathologyOutcome(StrEnum):
    METASTATIC = "metastatic"
    BENIGN = "benign"
    UNKNOWN = "unknown"


class LabelLevel(StrEnum):
    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


class PathologyLabel(Base):
    """A pathology outcome for a study, series or instance, imported by an admin."""

    __tablename__ = "pathology_label"
    __table_args__ = (UniqueConstraint("level", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[LabelLevel] = mapped_column(_enum(LabelLevel))
    uid: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[PathologyOutcome] = mapped_column(_enum(PathologyOutcome))
    node_station: Mapped[str | None] = mapped_column(String(32))
    outcome_date: Mapped[date | None] = mapped_column(Date)
    #: the study the UID resolved to when imported (None: not received yet)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id"), index=True)
    source: Mapped[str] = mapped_column(String(255))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
