"""Throw-away databases: an SQLite file, or a fresh database on the loopback PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get("LNM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a uniquely named database, yield its SQLAlchemy URL, drop it afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"lnm_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL on loopback is required for this test: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_url(kind: str, folder: Path) -> Iterator[str]:
    """``kind`` is "sqlite" or "postgresql"."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'test.sqlite3'}"
    else:
        with postgres_database() as url:
            yield url


def study_with_enabled_model(sessions, received_at) -> int:  # type: ignore[no-untyped-def]
    """Add a receiving study and register and enable one model version (``ynet-busi@1.0.0``,
    family segcls), so that assembling the study makes one job; returns the study's id."""
    from db import model_versions
    from db.models import Study

    with sessions.begin() as session:
        row, _ = model_versions.register_version(session, "ynet-busi", "1.0.0", "segcls", "0" * 64, {})
        model_versions.enable(session, row, actor="test")
        study = Study(study_instance_uid="1.2.3", first_received_at=received_at,
                      last_received_at=received_at)
        session.add(study)
        session.flush()
        return study.id
