"""Engine and session factory; schema upgrades through Alembic.

PostgreSQL connections get a connect timeout and a statement timeout (a hung server or a
held lock ends in an error, not a wait forever; a pool checkout waits as long as a connect);
SQLite waits for its file lock at most its busy timeout.

Every process of a node upgrades the schema when it starts, and on a fresh installation they
start together (compose starts the SCP, the sweeper and the workers at once). Upgrades are
therefore serialised: a PostgreSQL advisory lock, or an exclusive lock on a file beside the
SQLite database; the first process migrates and the others find the schema at head.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kernel.errors import DatabaseUnavailable
from kernel.settings import redact_url
from kernel.spool import lock_file

_MIGRATIONS = Path(__file__).parent / "migrations"
#: pg_advisory_lock key of schema upgrades: the first 8 bytes of sha256(b"lnm-node schema")
#: as a signed 64-bit integer (any constant the node alone uses would do)
_UPGRADE_LOCK_KEY = -7_317_432_058_728_273_514


@dataclass(frozen=True)
class Timeouts:
    """Seconds a connection may take to open, and a statement to run (PostgreSQL)."""

    connect_seconds: float = 10.0
    statement_seconds: float = 30.0

    @property
    def libpq_connect_timeout(self) -> int:
        """``connect_seconds`` as libpq's ``connect_timeout`` (whole seconds, at least 1)."""
        return max(1, round(self.connect_seconds))


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
            "connect_timeout": timeouts.libpq_connect_timeout,
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


def read_only_sessionmaker(url: str, timeouts: Timeouts | None = None) -> sessionmaker[Session]:
    """A session factory that cannot write and migrates nothing (``lnm-node check`` on a live
    node, or on a restored copy). SQLite: the file must exist (``mode=rw``: never created) and
    every connection is ``query_only`` (SQLite may still make its ``-wal`` and ``-shm`` files,
    which a reader of a WAL database needs); PostgreSQL: read-only transactions
    (``default_transaction_read_only``) with :func:`make_engine`'s timeouts. Raises
    :class:`DatabaseUnavailable` when the database cannot be opened."""
    timeouts = timeouts or Timeouts()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise DatabaseUnavailable("an in-memory SQLite database cannot be checked")
        engine = create_engine(
            f"sqlite:///file:{quote(parsed.database)}?mode=rw&uri=true",
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _query_only(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA query_only=ON")

    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": timeouts.libpq_connect_timeout,
                "options": f"-c statement_timeout={round(timeouts.statement_seconds * 1000)} "
                "-c default_transaction_read_only=on",
            },
        )
    with _told_unavailable(url), engine.connect():
        pass
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def _told_unavailable(url: str) -> Iterator[None]:
    """Raise a connection failure inside as :class:`DatabaseUnavailable` naming ``url`` without
    its password and the driver's first line of reason."""
    try:
        yield
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        raise DatabaseUnavailable(f"cannot use the database {redact_url(url)}: {reason}") from error


def upgrade(url: str, timeouts: Timeouts | None = None) -> None:
    """Bring the schema at ``url`` to the newest revision, one process at a time; raises
    :class:`DatabaseUnavailable` when the database cannot be reached or used."""
    with _told_unavailable(url), _upgrade_lock(url, timeouts or Timeouts()):
        command.upgrade(alembic_config(url), "head")


def check_reachable(url: str, timeouts: Timeouts | None = None) -> None:
    """Open and close one connection to ``url`` (a process that does not upgrade the schema
    checks this when it starts); raises :class:`DatabaseUnavailable` when it cannot."""
    engine = make_engine(url, timeouts)
    try:
        with _told_unavailable(url), engine.connect():
            pass
    finally:
        engine.dispose()


@contextmanager
def startup_lock(url: str, timeouts: Timeouts | None = None) -> Iterator[None]:
    """Hold the lock that serialises the start-up writes of node processes on the database at
    ``url`` (the schema upgrade's lock): processes started together, such as `scp`, `beat` and
    `worker` by compose, register the shipped models one at a time."""
    with _upgrade_lock(url, timeouts or Timeouts()):
        yield


@contextmanager
def _upgrade_lock(url: str, timeouts: Timeouts) -> Iterator[None]:
    """Hold the lock that serialises schema upgrades of the database at ``url``: an advisory
    lock on PostgreSQL, ``flock`` on ``<file>.upgrade-lock`` beside an SQLite file; none for an
    in-memory database."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        with _advisory_lock(url, timeouts):
            yield
    elif backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        with _file_lock(Path(f"{parsed.database}.upgrade-lock")):
            yield
    else:
        yield


@contextmanager
def _advisory_lock(url: str, timeouts: Timeouts) -> Iterator[None]:
    """A session-level PostgreSQL advisory lock on a connection of its own (the upgrade runs on
    another); closing that connection releases it, also when the process dies."""
    # the connect timeout of make_engine, not its statement timeout: the lock is waited for as
    # long as another process migrates
    engine = create_engine(url, connect_args={"connect_timeout": timeouts.libpq_connect_timeout})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
            connection.commit()
            yield
    finally:
        engine.dispose()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (:func:`kernel.spool.lock_file`), waited for."""
    descriptor = lock_file(path)
    try:
        yield
    finally:
        os.close(descriptor)


def make_sessionmaker(
    url: str, migrate: bool = True, timeouts: Timeouts | None = None
) -> sessionmaker[Session]:
    """Upgrade the schema (unless told not to) and return a session factory."""
    if migrate:
        upgrade(url, timeouts)
    return sessionmaker(make_engine(url, timeouts), expire_on_commit=False)
