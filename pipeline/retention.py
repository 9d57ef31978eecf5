"""The retention pass: received studies and quarantined instances do not stay forever.

- A received study goes (its instances, its jobs' work and outbox folders) once its last
  instance is ``received_retention_days`` old, its jobs are finished and it has no pathology
  label; with ``spool_max_bytes`` set, the oldest such studies go earlier while the received
  bytes exceed it. The database rows stay (history, audit); an ``expire`` audit event names
  the study, the reason (age or size), the files and the bytes.
- A quarantined instance goes once ``quarantine_max_age_days`` old, and the oldest go while
  the quarantine exceeds ``quarantine_max_bytes``; each pass that removes some is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from db import audit, retention
from kernel.spool import Spool
from pipeline.context import NodeContext

log = logging.getLogger(__name__)
DAY = 86400.0


@dataclass(frozen=True)
class RetentionResult:
    studies: int
    study_bytes: int
    quarantined: int
    quarantine_bytes: int


def _expire_study(ctx: NodeContext, study_id: int, reason: str) -> int:
    """Delete one study's files and audit it; the bytes freed."""
    with ctx.sessions() as session:
        files = retention.study_files(session, study_id)
    freed = 0
    for path in files.paths:
        try:
            freed += ctx.spool.remove_received(path)
        except ValueError:  # a row naming a file outside the spool: leave that file alone
            log.warning("retention: instance outside the spool", extra={"study_id": study_id})
    for job_id in files.job_ids:
        ctx.spool.remove_job_files(job_id)
    with ctx.sessions.begin() as session:
        retention.record_expired(session, study_id, reason, len(files.paths), freed)
    log.info("study expired", extra={"study_id": study_id, "reason": reason, "bytes": freed})
    return freed


def expire_studies(ctx: NodeContext) -> tuple[int, int]:
    """Studies past the retention age, then (with a size cap) the oldest over it."""
    settings = ctx.settings
    cutoff = ctx.clock() - timedelta(days=settings.received_retention_days)
    with ctx.sessions() as session:
        old = retention.expirable_studies(session, received_before=cutoff)
    count, freed = len(old), sum(_expire_study(ctx, study_id, "age") for study_id in old)
    if settings.spool_max_bytes:
        with ctx.sessions() as session:
            total = retention.received_bytes(session)
            candidates = retention.expirable_studies(session) if total > settings.spool_max_bytes else []
        for study_id in candidates:
            if total <= settings.spool_max_bytes:
                break
            released = _expire_study(ctx, study_id, "size")
            total, freed, count = total - released, freed + released, count + 1
        if total > settings.spool_max_bytes:
            log.warning("received studies exceed spool_max_bytes; none left that may go",
                        extra={"bytes": total})
    return count, freed


def expire_quarantine(ctx: NodeContext, spool: Spool) -> tuple[int, int]:
    """Quarantine entries past the age, then the oldest over the size cap."""
    settings = ctx.settings
    entries = spool.quarantine_entries()
    cutoff = ctx.clock().timestamp() - settings.quarantine_max_age_days * DAY
    total = sum(e.size_bytes for e in entries)
    removed = {"age": 0, "size": 0}
    freed = 0
    for entry in entries:
        if entry.modified < cutoff:
            reason = "age"
        elif total > settings.quarantine_max_bytes:
            reason = "size"
        else:
            continue
        spool.remove_quarantine_entry(entry)
        total -= entry.size_bytes
        freed += entry.size_bytes
        removed[reason] += 1
    count = removed["age"] + removed["size"]
    if count:
        with ctx.sessions.begin() as session:
            audit.record(session, "sweeper", retention.EXPIRE_ACTION, "quarantine", "-",
                         by_age=removed["age"], by_size=removed["size"], bytes=freed)
        log.info("quarantine expired", extra={"count": count, "bytes": freed})
    return count, freed


def enforce_retention(ctx: NodeContext) -> RetentionResult:
    """One retention pass over received studies and the quarantine."""
    studies, study_bytes = expire_studies(ctx)
    quarantined, quarantine_bytes = expire_quarantine(ctx, ctx.spool)
    return RetentionResult(studies, study_bytes, quarantined, quarantine_bytes)
