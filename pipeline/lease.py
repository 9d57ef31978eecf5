"""A worker's hold on the job it runs: a short lease, renewed while the job runs.

A claim (:func:`db.jobs.claim_job`) holds a job for ``settings.job_lease_seconds``. While the
job runs, a thread renews the hold every third of that time, up to the task time limit from
the claim (Celery ends a task there). A worker that dies (``kill -9``, out of memory) stops
renewing, so its job is free again within one lease and the sweeper re-sends it
(:func:`db.jobs.jobs_to_enqueue`), instead of waiting out the task time limit.

A worker that could not renew for a whole lease (frozen, or its database unreachable) may
have lost the job to another worker: :attr:`JobLease.lost` says so, and the job's stages stop
before any further output (:class:`LeaseLost`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import jobs

log = logging.getLogger(__name__)


class LeaseLost(RuntimeError):
    """The job's lease ran out while it ran: another worker may hold the job now."""


class JobLease:
    """Renews the lease of claim ``attempt`` of ``job_id`` while the ``with`` block runs."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: int,
        attempt: int,
        lease: timedelta,
        time_limit: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._attempt = attempt
        self._lease = lease
        self._clock = clock
        self._deadline = clock() + time_limit
        #: monotonic time of the claim or the last renewal (immune to clock changes)
        self._renewed = time.monotonic()
        self._lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-job-{job_id}", daemon=True
        )

    @property
    def lost(self) -> bool:
        """True once the lease may have run out: not renewed in time, or taken by another claim."""
        return self._lost or time.monotonic() - self._renewed >= self._lease.total_seconds()

    def check(self) -> None:
        """Raise :class:`LeaseLost` when the lease may have run out."""
        if self.lost:
            raise LeaseLost(f"job {self._job_id}: lease of claim {self._attempt} ran out")

    def renew(self) -> bool:
        """Extend the lease by one lease time (not past the time limit); False once it is lost."""
        started = time.monotonic()
        until = min(self._clock() + self._lease, self._deadline)
        try:
            with self._sessions() as session:
                held = jobs.renew_lease(session, self._job_id, self._attempt, until)
        except SQLAlchemyError as error:  # retried at the next tick; lost if it stays down
            log.warning("lease not renewed", extra={"job_id": self._job_id,
                                                    "error": type(error).__name__})
            return not self.lost
        if not held:
            self._lost = True
            log.warning("lease lost to another claim", extra={"job_id": self._job_id})
            return False
        self._renewed = started
        return True

    def _renew_until_stopped(self) -> None:
        interval = self._lease.total_seconds() / 3
        while not self._stop.wait(interval):
            if self._clock() >= self._deadline or not self.renew():
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
