"""Append-only audit rows, added to the caller's transaction (never committed here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db.models import AuditEvent


def record(
    session: Session, actor: str, action: str, entity: str, entity_id: object, **details: Any
) -> None:
    """Add one audit event to the session; it commits with the change it describes."""
    session.add(
        AuditEvent(actor=actor, action=action, entity=entity, entity_id=str(entity_id), details=details)
    )
