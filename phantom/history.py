"""A synthetic year of node history in a database at schema head: rows only, no files.

A busy ultrasound department sends 50-100k studies a year, 1-30 instances each; every study
leaves instances, jobs, deliveries, audit events, often an MPPS step, and rows stay (retention
removes files, not rows). :func:`populate` writes such a history through the models' tables
(bulk ``INSERT``, explicit ids, deterministic from ``seed``) so that queries can be timed and
explained against it. The newest studies are the live ones: a few still receiving, some jobs
queued, running or waiting for a delivery retry; everything older is finished, and studies
past the default retention age carry their ``expire`` audit event.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session

from db.models import (
    AuditEvent,
    Delivery,
    DeliveryState,
    Instance,
    InstanceState,
    Job,
    JobState,
    ModelVersion,
    Mpps,
    MppsStatus,
    PathologyLabel,
    Series,
    Study,
    StudyState,
)

#: the model versions of the history: (key, version, enabled, shadow, retired)
MODEL_VERSIONS = (
    ("ynet-busi", "0.9.0", False, False, True),
    ("ynet-busi", "1.0.0", True, False, False),
    ("ynet-busi", "1.1.0", False, True, False),
    ("cine-lnm", "1.0.0", True, False, False),
)
DESTINATIONS = ("PACS", "RESEARCH")
#: the day count retention keeps received files by default (``received_retention_days``)
RETENTION_DAYS = 90
_CHUNK = 5000


@dataclass(frozen=True)
class HistoryShape:
    """How much history, and how much of it is live at ``now``."""

    studies: int = 50_000
    days: float = 365.0
    receiving: int = 8
    queued: int = 5
    running: int = 3
    retrying: int = 4
    seed: int = 1


@dataclass
class HistoryCounts:
    """Rows written per table."""

    rows: dict[str, int] = field(default_factory=dict)


class _Writer:
    """Buffers rows per table and inserts them in chunks."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.buffers: dict[Table, list[dict[str, Any]]] = {}
        self.counts: dict[str, int] = {}

    def add(self, model: Any, row: dict[str, Any]) -> None:
        table = model.__table__
        buffer = self.buffers.setdefault(table, [])
        buffer.append(row)
        if len(buffer) >= _CHUNK:
            self.flush(table)

    def flush(self, table: Table | None = None) -> None:
        """Insert every buffered row, parents before children (the foreign keys hold)."""
        for each in _ORDER:
            rows = self.buffers.get(each)
            if rows:
                self.session.execute(insert(each), rows)
                self.counts[each.name] = self.counts.get(each.name, 0) + len(rows)
                self.buffers[each] = []


_ORDER = tuple(
    model.__table__
    for model in (Study, Series, Instance, Job, Delivery, Mpps, PathologyLabel, AuditEvent)
)


def _instance_count(rng: random.Random) -> int:
    """1-30 instances, most studies a handful (a few sweeps, some cines), mean about 7."""
    return min(30, max(1, int(rng.expovariate(1 / 6.5)) + 1))


def _job_state(rng: random.Random) -> JobState:
    draw = rng.random()
    if draw < 0.90:
        return JobState.DELIVERED
    if draw < 0.94:
        return JobState.SKIPPED
    if draw < 0.975:
        return JobState.FAILED_INPUT
    return JobState.FAILED


def _uid(kind: int, *parts: int) -> str:
    return "2.25.9" + str(kind) + "." + ".".join(str(p) for p in parts)


def populate(session: Session, shape: HistoryShape, now: datetime | None = None) -> HistoryCounts:
    """Write ``shape``'s history ending at ``now`` into an empty database at head; commits."""
    now = now or datetime.now(UTC)
    rng = random.Random(shape.seed)
    writer = _Writer(session)
    model_ids = _model_versions(session, now - timedelta(days=shape.days + 1))
    live = [(key, version) for key, version, enabled, _, _ in MODEL_VERSIONS if enabled]
    shadow = [(key, version) for key, version, _, is_shadow, _ in MODEL_VERSIONS if is_shadow]
    span = timedelta(days=shape.days)
    ids = {"series": 0, "instance": 0, "job": 0, "delivery": 0, "mpps": 0, "audit": 0, "label": 0}

    def audit(
        at: datetime, actor: str, action: str, entity: str, entity_id: int, **details: Any
    ) -> None:
        ids["audit"] += 1
        writer.add(
            AuditEvent,
            {
                "id": ids["audit"],
                "at": at,
                "actor": actor,
                "action": action,
                "entity": entity,
                "entity_id": str(entity_id),
                "details": details,
            },
        )

    finished = shape.studies - shape.receiving
    for study_id in range(1, shape.studies + 1):
        is_receiving = study_id > finished
        first = (
            now - timedelta(seconds=rng.uniform(1, 20))
            if is_receiving
            else now - span + span * ((study_id - 1) / max(1, finished))
        )
        instances = _instance_count(rng)
        last = first + timedelta(seconds=instances * rng.uniform(2, 20))
        reopened = not is_receiving and rng.random() < 0.01
        generation = 1 if reopened else 0
        writer.add(
            Study,
            {
                "id": study_id,
                "study_instance_uid": _uid(1, study_id),
                "state": StudyState.RECEIVING if is_receiving else StudyState.READY,
                "first_received_at": first,
                "last_received_at": last,
                "generation": generation,
                "assembled_generation": -1 if is_receiving else generation,
                "scope": {}
                if is_receiving
                else {
                    "models": [
                        {"model": f"{k}@{v}", "run": True, "rule": "spec", "reason": "in scope"}
                        for k, v in live
                    ]
                },
            },
        )
        audit(first, "receive", "receive", "study", study_id, calling_ae_title="US1", modality="US")
        patient = f"{rng.getrandbits(64):016x}" * 4
        series_count = 1 if instances < 4 else rng.choice((1, 2, 2, 3))
        series_ids = []
        for index in range(series_count):
            ids["series"] += 1
            series_ids.append(ids["series"])
            writer.add(
                Series,
                {
                    "id": ids["series"],
                    "study_id": study_id,
                    "series_instance_uid": _uid(2, study_id, index),
                    "modality": "US",
                    "series_description": "Breast",
                },
            )
        for index in range(instances):
            ids["instance"] += 1
            frames = 1 if rng.random() < 0.85 else rng.randint(40, 120)
            writer.add(
                Instance,
                {
                    "id": ids["instance"],
                    "study_id": study_id,
                    "series_id": series_ids[index % series_count],
                    "sop_instance_uid": _uid(3, study_id, index),
                    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.6.1"
                    if frames == 1
                    else "1.2.840.10008.5.1.4.1.1.3.1",
                    "transfer_syntax_uid": "1.2.840.10008.1.2.4.50",
                    "number_of_frames": frames,
                    "path": f"/var/lib/lnm/spool/received/{study_id}/{index}.dcm",
                    "size_bytes": 900_000 if frames == 1 else 230_000 * frames,
                    "calling_ae_title": "US1",
                    "patient_key": patient,
                    "received_at": first + (last - first) * (index / instances),
                    "state": InstanceState.RECEIVED,
                },
            )
        if rng.random() < 0.3 or is_receiving:
            ids["mpps"] += 1
            done = not is_receiving
            writer.add(
                Mpps,
                {
                    "id": ids["mpps"],
                    "sop_instance_uid": _uid(4, study_id),
                    "status": MppsStatus.COMPLETED if done else MppsStatus.IN_PROGRESS,
                    "calling_ae_title": "US1",
                    "study_instance_uids": [_uid(1, study_id)],
                    "referenced_sop_instance_uids": [_uid(3, study_id, i) for i in range(instances)]
                    if done
                    else [],
                    "attributes": {},
                    "created_at": first,
                    "updated_at": last,
                    "acted_at": last if done else None,
                    "action": "assembled" if done else None,
                },
            )
            audit(first, "mpps", "mpps-create", "mpps", ids["mpps"], status="IN PROGRESS")
        if is_receiving:
            continue
        assembled = last + timedelta(seconds=30)
        audit(assembled, "sweeper", "assemble", "study", study_id, generation=generation)
        models = live + (shadow if study_id > shape.studies // 2 else [])
        for gen in range(generation + 1):
            for key, version in models:
                _job(
                    writer,
                    rng,
                    ids,
                    audit,
                    study_id,
                    key,
                    version,
                    gen,
                    (key, version) in shadow,
                    assembled,
                    model_ids,
                )
        if rng.random() < 0.02:
            ids["label"] += 1
            writer.add(
                PathologyLabel,
                {
                    "id": ids["label"],
                    "level": "study",
                    "uid": _uid(1, study_id),
                    "outcome": rng.choice(("metastatic", "benign")),
                    "node_station": None,
                    "outcome_date": None,
                    "study_id": study_id,
                    "source": "labels.csv",
                    "imported_at": last + timedelta(days=14),
                },
            )
        if last < now - timedelta(days=RETENTION_DAYS):
            audit(
                last + timedelta(days=RETENTION_DAYS),
                "sweeper",
                "expire",
                "study",
                study_id,
                reason="age",
                files=instances,
                bytes=instances * 900_000,
            )
    writer.flush()
    _live_jobs(session, writer, shape, ids, now, live[0], audit)
    writer.flush()
    _advance_sequences(session)
    session.commit()
    return HistoryCounts(dict(writer.counts))


def _model_versions(session: Session, registered: datetime) -> dict[tuple[str, str], int]:
    ids = {}
    for index, (key, version, enabled, is_shadow, retired) in enumerate(MODEL_VERSIONS, 1):
        session.execute(
            insert(ModelVersion),
            [
                {
                    "id": index,
                    "model_key": key,
                    "version": version,
                    "family": "segcls",
                    "weights_sha256": f"{index:064x}",
                    "enabled": enabled,
                    "registered_at": registered,
                    "metrics": {},
                    "shadow": is_shadow,
                    "retired": retired,
                }
            ],
        )
        ids[(key, version)] = index
    return ids


def _job(
    writer: _Writer,
    rng: random.Random,
    ids: dict[str, int],
    audit: Any,
    study_id: int,
    key: str,
    version: str,
    generation: int,
    is_shadow: bool,
    created: datetime,
    model_ids: dict[tuple[str, str], int],
) -> None:
    """One finished job with its deliveries and the audit trail the worker leaves."""
    ids["job"] += 1
    job_id = ids["job"]
    state = _job_state(rng)
    done = created + timedelta(seconds=rng.uniform(8, 90))
    sent = state == JobState.DELIVERED and not is_shadow
    writer.add(
        Job,
        {
            "id": job_id,
            "study_id": study_id,
            "model_key": key,
            "model_version": version,
            "generation": generation,
            "state": state,
            "attempts": 1 if rng.random() < 0.97 else 2,
            "reason": None
            if state in (JobState.DELIVERED,)
            else f"{state.value.lower()}: synthetic",
            "weights_sha256": f"{model_ids[(key, version)]:064x}",
            "probability": round(rng.random(), 4) if state == JobState.DELIVERED else None,
            "outputs": {"files": {"sr": f"/var/lib/lnm/spool/jobs/{job_id}/sr.dcm"}}
            if state == JobState.DELIVERED
            else {},
            "created_at": created,
            "updated_at": done,
            "enqueued_at": created,
            "lease_until": None,
            "shadow": is_shadow,
        },
    )
    audit(created, "sweeper", "queue", "job", job_id, model=f"{key}@{version}", shadow=is_shadow)
    audit(created, "worker", "claim", "job", job_id, attempt=1)
    audit(done, "worker", state.value.lower(), "job", job_id)
    if not sent and state != JobState.FAILED:
        return
    for destination in DESTINATIONS[: 1 if rng.random() < 0.7 else 2]:
        ids["delivery"] += 1
        failed = state == JobState.FAILED
        if failed or rng.random() < 0.02:
            audit(
                done,
                "worker",
                "deliver_retry",
                "delivery",
                ids["delivery"],
                destination=destination,
            )
        if failed:
            audit(
                done,
                "worker",
                "deliver_failed",
                "delivery",
                ids["delivery"],
                destination=destination,
            )
        else:
            audit(done, "worker", "deliver", "delivery", ids["delivery"], destination=destination)
        writer.add(
            Delivery,
            {
                "id": ids["delivery"],
                "job_id": job_id,
                "destination": destination,
                "state": DeliveryState.FAILED if failed else DeliveryState.SENT,
                "attempts": 5 if failed else 1,
                "last_error": "association rejected" if failed else None,
                "retry_at": None,
                "sent_at": None if failed else done,
            },
        )


def _live_jobs(
    session: Session,
    writer: _Writer,
    shape: HistoryShape,
    ids: dict[str, int],
    now: datetime,
    model: tuple[str, str],
    audit: Any,
) -> None:
    """Turn the newest finished studies' jobs into live work: queued, running (leased),
    encoded with a delivery waiting for its retry."""
    finished = shape.studies - shape.receiving
    plan = (
        [JobState.QUEUED] * shape.queued
        + [JobState.RUNNING] * shape.running
        + [JobState.ENCODED] * shape.retrying
    )
    for offset, state in enumerate(plan):
        study_id = finished - offset
        ids["job"] += 1
        key, version = model
        created = now - timedelta(seconds=30 + offset)
        writer.add(
            Job,
            {
                "id": ids["job"],
                "study_id": study_id,
                "model_key": key,
                "model_version": version,
                "generation": 5,
                "state": state,
                "attempts": 0 if state == JobState.QUEUED else 1,
                "reason": None,
                "weights_sha256": None,
                "probability": None,
                "outputs": {},
                "created_at": created,
                "updated_at": created,
                "enqueued_at": created if state != JobState.QUEUED else None,
                "lease_until": now + timedelta(seconds=60) if state == JobState.RUNNING else None,
                "shadow": False,
            },
        )
        audit(created, "sweeper", "queue", "job", ids["job"], model=f"{key}@{version}")
        if state == JobState.ENCODED:
            writer.flush(Job.__table__)
            ids["delivery"] += 1
            writer.add(
                Delivery,
                {
                    "id": ids["delivery"],
                    "job_id": ids["job"],
                    "destination": DESTINATIONS[0],
                    "state": DeliveryState.RETRY,
                    "attempts": 2,
                    "last_error": "timeout",
                    "retry_at": now - timedelta(seconds=5)
                    if offset % 2
                    else now + timedelta(minutes=5),
                    "sent_at": None,
                },
            )


def _advance_sequences(session: Session) -> None:
    """PostgreSQL: move each id sequence past the explicit ids written here."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in (
        "study",
        "series",
        "instance",
        "job",
        "delivery",
        "audit_event",
        "mpps",
        "pathology_label",
        "model_version",
    ):
        session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        )
