"""Make the database know the models the registry ships."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from db import model_versions

log = logging.getLogger(__name__)


def sync_registry(sessions: sessionmaker[Session], registry, default_key: str) -> None:  # type: ignore[no-untyped-def]
    """Insert a row per registered (key, version); on a fresh node enable the default model.

    Later promotions and rollbacks are left alone: a version enabled or disabled by an admin
    stays so across restarts.
    """
    with sessions.begin() as session:
        default_row = None
        for spec in registry.specs():
            row, created = model_versions.register_version(
                session, spec.key, spec.version, spec.family, spec.weights_sha256, dict(spec.metrics)
            )
            if created:
                log.info("model registered", extra={"model": f"{spec.key}@{spec.version}"})
            if spec.key == default_key and (default_row is None or row.id > default_row.id):
                default_row = row
        if not model_versions.any_enabled(session) and default_row is not None:
            model_versions.enable(session, default_row, actor="registry")
