"""A hung database never holds a C-STORE: a held lock ends in 0xA700 within the commit wait
(SQLite) or the statement timeout (PostgreSQL), nothing of the instance is kept, and once the
lock is gone the sender's resend is stored."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from db.session import Timeouts, make_sessionmaker
from dicom_node import statuses
from dicom_node.scu import store_files
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.databases import postgres_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _status(node: Node, path: Path) -> int | None:
    [result] = store_files(node.destination, [path], CALLING_AE)
    return result.status


def _incoming(node: Node) -> list[Path]:
    return list(node.spool.root.glob("incoming/*/*/*.dcm"))


def test_scp_sqlite_write_lock_held_a700_within_commit_wait_then_resend_stored(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    node = make_node(commit_wait_seconds=1)
    database = node.settings.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's writer that does not finish
    try:
        started = time.monotonic()
        assert _status(node, phantom_files["explicit_le"]) == statuses.OUT_OF_RESOURCES
        assert time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _incoming(node) == []
    assert _status(node, phantom_files["explicit_le"]) == statuses.SUCCESS
    assert len(_incoming(node)) == 1


def test_scp_postgresql_lock_held_a700_within_statement_timeout_then_resend_stored(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    psycopg = pytest.importorskip("psycopg")
    with postgres_database() as url:
        sessions = make_sessionmaker(url, timeouts=Timeouts(connect_seconds=5, statement_seconds=1))
        node = make_node(sessions=sessions, commit_wait_seconds=30)
        locker = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        try:
            locker.execute("LOCK TABLE study IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            assert _status(node, phantom_files["rle"]) == statuses.OUT_OF_RESOURCES
            assert time.monotonic() - started < 10
        finally:
            locker.close()
        assert _incoming(node) == []
        assert _status(node, phantom_files["rle"]) == statuses.SUCCESS
        sessions.kw["bind"].dispose()
