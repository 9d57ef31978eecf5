"""Group commit: short write transactions from many threads, run on one thread, sharing commits.

The receive stage answers a C-STORE only after its row is committed. With several
associations at once, one commit (one fsync of the database's log) per instance makes the
database the bottleneck, and SQLite writers in different threads queue on its file lock by
sleeping. Here every caller hands its work to one writer thread and blocks; the writer runs
whatever has queued up in one transaction and commits once, then wakes each caller with its
own result. A single caller pays only the hand-over.

If the shared transaction fails, each piece of work is rerun alone in its own transaction,
so an error reaches only the caller it belongs to (work must therefore leave no trace
outside the session: it is rolled back and may run twice). An ``IntegrityError`` alone is
retried once (another process inserted the same row first; the rerun finds it).

The writer thread starts on the first call and ends after ``idle_seconds`` without work, so
an instance needs no start or stop.

A caller may name folders to fsync before its commit (``sync_folders``: the receive stage's
newly linked files, see :meth:`kernel.spool.Spool.place`): the writer fsyncs each distinct
folder once per transaction, then commits, so a file's name is durable before its row and
concurrent instances of one series share one folder fsync. A folder fsync that fails fails
the transaction like an error of the work.

A caller waits at most ``wait_seconds`` (a hung connection or statement must not block every
caller behind it), then raises :class:`CommitTimeout`. Work not yet begun is cancelled then
(it never runs); work already in a transaction is cancelled if that transaction has not
started committing (the writer rolls it back and reruns the others), else the outcome is
unknown (``CommitTimeout.outcome_unknown``): the commit may still land.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kernel.spool import fsync_dir

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CommitTimeout(TimeoutError):
    """The work was not committed within the caller's wait."""

    def __init__(self, seconds: float, outcome_unknown: bool) -> None:
        state = "its commit had begun, the outcome is unknown" if outcome_unknown else "cancelled"
        super().__init__(f"no commit within {seconds:g} s; {state}")
        self.outcome_unknown = outcome_unknown


class _Cancelled(Exception):
    """Raised inside a transaction to roll it back: a caller gave up before the commit."""


@dataclass
class _Request(Generic[T]):
    work: Callable[[Session], T]
    #: folders to fsync before the commit
    sync_folders: tuple[Path, ...] = ()
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None
    #: set under the GroupCommit lock: the caller gave up / the writer began committing
    cancelled: bool = False
    committing: bool = False

    def finish(self, result: T | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class GroupCommit:
    """Run ``work(session)`` in a committed transaction shared with concurrent callers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        max_batch: int = 64,
        idle_seconds: float = 5.0,
        wait_seconds: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._wait_seconds = wait_seconds
        self._queue: queue.SimpleQueue[_Request[Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def run(self, work: Callable[[Session], T], sync_folders: Iterable[Path] = ()) -> T:
        """``work``'s result once its transaction is committed, after ``sync_folders`` were
        fsynced; re-raises its error (or the fsync's ``OSError``)."""
        request: _Request[T] = _Request(work, tuple(sync_folders))
        with self._lock:
            self._queue.put(request)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._serve, name="group-commit", daemon=True
                )
                self._writer.start()
        if not request.done.wait(self._wait_seconds):
            with self._lock:
                if not request.done.is_set():
                    request.cancelled = not request.committing
                    raise CommitTimeout(self._wait_seconds, outcome_unknown=request.committing)
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def pending(self) -> int:
        """How many calls wait for the writer (approximate, for monitoring)."""
        return self._queue.qsize()

    def _serve(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:  # a caller queues under this lock: nothing can be left behind
                    if self._queue.empty():
                        self._writer = None
                        return
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _live(self, batch: list[_Request[Any]]) -> list[_Request[Any]]:
        """The requests of ``batch`` whose callers still wait."""
        with self._lock:
            return [request for request in batch if not request.cancelled]

    def _begin_commit(self, batch: list[_Request[Any]]) -> bool:
        """Mark ``batch`` as committing, unless a caller gave up meanwhile (then False)."""
        with self._lock:
            if any(request.cancelled for request in batch):
                return False
            for request in batch:
                request.committing = True
            return True

    def _commit(self, batch: list[_Request[Any]]) -> None:
        batch = self._live(batch)
        if not batch:
            return
        try:
            with self._sessions() as session, session.begin():
                results = [request.work(session) for request in batch]
                _fsync_folders(batch)
                if not self._begin_commit(batch):
                    raise _Cancelled
        except _Cancelled:
            for request in self._live(batch):
                self._commit_alone(request, tries=2)
            return
        except BaseException as exc:  # noqa: BLE001 (every caller must be woken)
            if len(batch) > 1:
                logger.debug("shared transaction of %d failed; running each alone", len(batch))
                for request in batch:
                    self._commit_alone(request, tries=2)
            elif isinstance(exc, IntegrityError):
                self._commit_alone(batch[0], tries=1)
            else:
                batch[0].finish(error=exc)
            return
        for request, result in zip(batch, results, strict=True):
            request.finish(result)

    def _commit_alone(self, request: _Request[Any], tries: int) -> None:
        """Run one request in its own transaction; only an IntegrityError is tried again."""
        error: BaseException | None = None
        for _ in range(tries):
            if request.cancelled:
                return
            try:
                with self._sessions() as session, session.begin():
                    result = request.work(session)
                    _fsync_folders([request])
                    if not self._begin_commit([request]):
                        raise _Cancelled
            except _Cancelled:
                return
            except BaseException as exc:  # noqa: BLE001 (the caller must be woken)
                error = exc
                if isinstance(exc, IntegrityError):
                    continue
                break
            request.finish(result)
            return
        request.finish(error=error)


def _fsync_folders(batch: list[_Request[Any]]) -> None:
    """fsync each folder the requests of ``batch`` name, once."""
    for folder in dict.fromkeys(folder for request in batch for folder in request.sync_folders):
        fsync_dir(folder)
