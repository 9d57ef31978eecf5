"""db/group_commit.py on SQLite and on the real PostgreSQL server of this machine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.group_commit import CommitTimeout, GroupCommit
from db.instances import ReceivedInstance, record_instance
from db.models import Instance, Study
from db.session import Timeouts, make_sessionmaker
from tests.support.databases import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with database_url(request.param, tmp_path) as url:
        factory = make_sessionmaker(url)
        yield factory
        factory.kw["bind"].dispose()


def _item(sop: str, study: str = "1.2.3") -> ReceivedInstance:
    return ReceivedInstance(
        study_instance_uid=study,
        series_instance_uid=f"{study}.1",
        sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.6.1",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        path=f"/spool/{sop}.dcm",
        size_bytes=10,
    )


def _count(sessions: sessionmaker[Session], column: object) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(column))) or 0)


def _one_then_seven_queued(
    commits: GroupCommit,
    first: Callable[[Session], bool],
    record: Callable[[int], bool],
    release: threading.Event,
    sync_folders: list[Path] | None = None,
) -> list[bool]:
    """Run ``first`` (it holds the writer until ``release`` is set), queue ``record(1..7)``
    behind it, then release it; the eight answers."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        head = pool.submit(commits.run, first, sync_folders or [])
        rest = [pool.submit(record, index) for index in range(1, 8)]
        deadline = time.monotonic() + 10
        while commits.pending() < 7:
            assert time.monotonic() < deadline, "the callers did not queue"
            time.sleep(0.01)
        release.set()
        return [head.result(), *(future.result() for future in rest)]


def test_group_commit_queued_calls_share_one_commit_each_gets_its_result(
    sessions: sessionmaker[Session],
) -> None:
    commits = GroupCommit(sessions)
    engine = sessions.kw["bind"]
    transactions: list[int] = []
    event.listen(engine, "commit", lambda _connection: transactions.append(1))
    release = threading.Event()

    def first(session: Session) -> bool:
        release.wait(10)  # holds the writer while seven more calls queue up
        return record_instance(session, _item("1.2.3.9.0"))

    def record(index: int) -> bool:
        return commits.run(lambda session: record_instance(session, _item(f"1.2.3.9.{index}")))

    assert _one_then_seven_queued(commits, first, record, release) == [True] * 8
    assert len(transactions) == 2  # the first call's, then one for the seven queued calls
    assert _count(sessions, Instance.id) == 8
    assert _count(sessions, Study.id) == 1
    # a known instance: the caller gets False and no row is added
    assert commits.run(lambda session: record_instance(session, _item("1.2.3.9.0"))) is False
    assert _count(sessions, Instance.id) == 8


def test_group_commit_failing_work_reaches_only_its_caller(sessions: sessionmaker[Session]) -> None:
    commits = GroupCommit(sessions)
    gate = threading.Barrier(5)

    def work(index: int) -> str:
        gate.wait()
        if index == 2:

            def fail(session: Session) -> bool:
                record_instance(session, _item("1.2.3.8.bad"))
                raise RuntimeError("work 2 failed")

            try:
                commits.run(fail)
            except RuntimeError as exc:
                return str(exc)
            return "no error"
        commits.run(lambda session: record_instance(session, _item(f"1.2.3.8.{index}")))
        return "ok"

    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = list(pool.map(work, range(5)))
    assert outcomes == ["ok", "ok", "work 2 failed", "ok", "ok"]
    with sessions() as session:
        sops = set(session.scalars(select(Instance.sop_instance_uid)))
    assert sops == {f"1.2.3.8.{i}" for i in (0, 1, 3, 4)}  # the failed work was rolled back


def test_group_commit_integrity_error_is_tried_once_more(sessions: sessionmaker[Session]) -> None:
    commits = GroupCommit(sessions)
    attempts: list[int] = []

    def flaky(session: Session) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise IntegrityError("INSERT", {}, Exception("another writer won"))
        return len(attempts)

    assert commits.run(flaky) == 2

    def always(session: Session) -> int:
        raise IntegrityError("INSERT", {}, Exception("always"))

    with pytest.raises(IntegrityError):
        commits.run(always)


def test_group_commit_writer_stops_when_idle_and_restarts(sessions: sessionmaker[Session]) -> None:
    others = {t for t in threading.enumerate() if t.name == "group-commit"}
    commits = GroupCommit(sessions, idle_seconds=0.05)
    assert commits.run(lambda session: record_instance(session, _item("1.2.3.7.1"))) is True
    mine = [t for t in threading.enumerate() if t.name == "group-commit" and t not in others]
    for writer in mine:  # the writer may already have ended
        writer.join(timeout=5)
        assert not writer.is_alive(), "the idle writer thread did not end"
    assert commits.run(lambda session: record_instance(session, _item("1.2.3.7.2"))) is True
    assert _count(sessions, Instance.id) == 2


def test_group_commit_wait_bounded_hung_work_cancelled_never_committed(
    sessions: sessionmaker[Session],
) -> None:
    commits = GroupCommit(sessions, wait_seconds=0.5)
    release = threading.Event()

    def hung(session: Session) -> bool:
        release.wait(10)  # a statement that does not come back
        return record_instance(session, _item("1.2.3.6.0"))

    with ThreadPoolExecutor(max_workers=2) as pool:
        head = pool.submit(commits.run, hung)
        time.sleep(0.1)  # the writer is inside the hung work now
        queued = pool.submit(commits.run, lambda s: record_instance(s, _item("1.2.3.6.1")))
        started = time.monotonic()
        with pytest.raises(CommitTimeout) as first:
            head.result(timeout=5)
        with pytest.raises(CommitTimeout) as second:
            queued.result(timeout=5)
        assert time.monotonic() - started < 2
        release.set()
    assert not first.value.outcome_unknown and not second.value.outcome_unknown
    deadline = time.monotonic() + 5
    while commits.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert _count(sessions, Instance.id) == 0  # the callers gave up: nothing was committed
    assert commits.run(lambda session: record_instance(session, _item("1.2.3.6.2"))) is True


def test_postgresql_statement_timeout_ends_a_statement_blocked_by_a_lock(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    with database_url("postgresql", tmp_path) as url:
        factory = make_sessionmaker(url, timeouts=Timeouts(connect_seconds=5, statement_seconds=1))
        locker = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        try:
            locker.execute("LOCK TABLE instance IN ACCESS EXCLUSIVE MODE")  # held: no commit
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                GroupCommit(factory, wait_seconds=10).run(
                    lambda session: record_instance(session, _item("1.2.3.5.0"))
                )
            assert time.monotonic() - started < 5
        finally:
            locker.close()
            factory.kw["bind"].dispose()


def test_group_commit_queued_calls_share_one_fsync_of_their_folder(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db import group_commit

    synced: list[Path] = []
    real_fsync_dir = group_commit.fsync_dir

    def counting_fsync_dir(folder: Path) -> None:
        synced.append(folder)
        real_fsync_dir(folder)  # the real fsync still runs; this only counts it

    monkeypatch.setattr(group_commit, "fsync_dir", counting_fsync_dir)
    commits = GroupCommit(sessions)
    release = threading.Event()

    def first(session: Session) -> bool:
        release.wait(10)  # holds the writer while seven more calls queue up
        return record_instance(session, _item("1.2.3.5.0"))

    def record(index: int) -> bool:
        return commits.run(
            lambda session: record_instance(session, _item(f"1.2.3.5.{index}")),
            sync_folders=[tmp_path],
        )

    assert _one_then_seven_queued(commits, first, record, release, [tmp_path]) == [True] * 8
    assert synced == [tmp_path, tmp_path]  # once per transaction, not once per caller
    assert _count(sessions, Instance.id) == 8


def test_group_commit_folder_fsync_failing_reaches_only_its_caller_nothing_committed(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    commits = GroupCommit(sessions)
    gate = threading.Barrier(3)

    def work(index: int) -> str:
        folder = tmp_path / ("missing" if index == 1 else "")
        gate.wait()
        try:
            commits.run(
                lambda session: record_instance(session, _item(f"1.2.3.4.{index}")),
                sync_folders=[folder],
            )
        except OSError as exc:
            return type(exc).__name__
        return "ok"

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(work, range(3)))
    assert outcomes == ["ok", "FileNotFoundError", "ok"]
    with sessions() as session:
        sops = set(session.scalars(select(Instance.sop_instance_uid)))
    assert sops == {"1.2.3.4.0", "1.2.3.4.2"}  # the row whose folder was not synced: rolled back
