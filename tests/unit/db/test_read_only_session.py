"""`read_only_sessionmaker` (used by `lnm-node check`): reads, never writes, creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from db.models import Study
from db.session import make_sessionmaker, read_only_sessionmaker
from kernel.errors import DatabaseUnavailable
from tests.support.databases import database_url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_read_only_session_reads_refuses_writes(tmp_path: Path, kind: str) -> None:
    with database_url(kind, tmp_path) as url:
        writable = make_sessionmaker(url)
        with writable.begin() as session:
            session.add(Study(study_instance_uid="1.2.3"))
        reader = read_only_sessionmaker(url)
        with reader() as session:
            assert session.scalar(select(func.count(Study.id))) == 1
        with pytest.raises(DBAPIError, match="(?i)read.only|readonly"), reader.begin() as session:
            session.add(Study(study_instance_uid="1.2.4"))
        with writable() as session:
            assert session.scalar(select(func.count(Study.id))) == 1
        for sessions in (writable, reader):
            sessions.kw["bind"].dispose()


def test_read_only_session_missing_sqlite_file_unavailable_not_created(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable, match="cannot use the database"):
        read_only_sessionmaker(f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert list(tmp_path.iterdir()) == []
