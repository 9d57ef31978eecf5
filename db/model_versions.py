"""Named queries over registered model versions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import audit
from db.models import ModelVersion


def register_version(
    session: Session, model_key: str, version: str, family: str, weights_sha256: str,
    metrics: dict[str, object],
) -> tuple[ModelVersion, bool]:
    """The row of (key, version), inserted disabled when new; returns (row, created)."""
    row = session.scalar(
        select(ModelVersion).where(ModelVersion.model_key == model_key, ModelVersion.version == version)
    )
    if row is not None:
        return row, False
    row = ModelVersion(
        model_key=model_key, version=version, family=family, weights_sha256=weights_sha256,
        enabled=False, metrics=metrics,
    )
    session.add(row)
    session.flush()
    audit.record(session, "registry", "register", "model_version", row.id, model=f"{model_key}@{version}")
    return row, True


def any_enabled(session: Session) -> bool:
    return session.scalar(select(ModelVersion.id).where(ModelVersion.enabled.is_(True)).limit(1)) is not None


def enable(session: Session, row: ModelVersion, actor: str) -> None:
    """Enable ``row`` and disable the other versions of the same key (one live version per key)."""
    for other in session.scalars(select(ModelVersion).where(ModelVersion.model_key == row.model_key)):
        other.enabled = other.id == row.id
    audit.record(session, actor, "enable", "model_version", row.id, model=f"{row.model_key}@{row.version}")


def version_rows(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.model_key, ModelVersion.id)))
