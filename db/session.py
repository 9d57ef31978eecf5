"""Engine and session factory; schema upgrades through Alembic.

PostgreSQL connections get a connect timeout and a statement timeout (a hung server or a
held lock ends in an error, not a wait forever; a pool checkout waits as long as a connect);
SQLite waits for its file lock at most its busy timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Timeouts:
    """Seconds a connection may take to open, and a statement to run (PostgreSQL)."""

    connect_seconds: float = 10.0
    statement_seconds: float = 30.0


def make_engine(url: str, timeouts: Timeouts | None = None) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL ``timeouts``
    (:class:`Timeouts` defaults when None)."""
    timeouts = timeouts or Timeouts()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    connect_args = {}
    if url.startswith("postgresql"):
        connect_args = {
            "connect_timeout": max(1, round(timeouts.connect_seconds)),
            "options": f"-c statement_timeout={round(timeouts.statement_seconds * 1000)}",
        }
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=timeouts.connect_seconds,
        connect_args=connect_args,
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema at ``url`` to the newest revision."""
    command.upgrade(alembic_config(url), "head")


def make_sessionmaker(
    url: str, migrate: bool = True, timeouts: Timeouts | None = None
) -> sessionmaker[Session]:
    """Upgrade the schema (unless told not to) and return a session factory."""
    if migrate:
        upgrade(url)
    return sessionmaker(make_engine(url, timeouts), expire_on_commit=False)
