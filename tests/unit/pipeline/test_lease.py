"""pipeline.lease: a running job's short lease is renewed in the background; a lost one stops
the job's stages."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from db import jobs
from db.models import Job
from db.session import make_sessionmaker
from pipeline.lease import JobLease, LeaseLost
from tests.support.databases import study_with_enabled_model

LEASE = timedelta(seconds=3)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@pytest.fixture
def claimed(tmp_path: Path):  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    now = datetime.now(UTC)
    study_id = study_with_enabled_model(sessions, now)
    with sessions.begin() as session:
        job_id = jobs.assemble_study(session, study_id, forced=False)[0].id
    with sessions() as session:
        job = jobs.claim_job(session, job_id, now, LEASE)
        yield sessions, job.id, job.attempts
    sessions.kw["bind"].dispose()


def _lease_until(sessions, job_id: int) -> datetime:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return _aware(session.get(Job, job_id).lease_until)


def test_lease_renewed_while_job_runs_past_its_first_lease(claimed) -> None:  # type: ignore[no-untyped-def]
    sessions, job_id, attempt = claimed
    first = _lease_until(sessions, job_id)
    with JobLease(sessions, job_id, attempt, LEASE, timedelta(minutes=30), lambda: datetime.now(UTC)) as lease:
        time.sleep(LEASE.total_seconds() + 1.5)  # a job longer than one lease
        lease.check()
        assert not lease.lost
        assert _lease_until(sessions, job_id) > datetime.now(UTC) > first


def test_lease_not_renewed_past_the_task_time_limit(claimed) -> None:  # type: ignore[no-untyped-def]
    sessions, job_id, attempt = claimed
    start = datetime.now(UTC)
    with JobLease(sessions, job_id, attempt, LEASE, timedelta(seconds=2), lambda: datetime.now(UTC)) as lease:
        assert lease.renew()
        assert _lease_until(sessions, job_id) <= start + timedelta(seconds=2.5)


def test_lease_taken_by_another_claim_is_lost_and_stops_the_stages(claimed) -> None:  # type: ignore[no-untyped-def]
    sessions, job_id, attempt = claimed
    with JobLease(sessions, job_id, attempt, LEASE, timedelta(minutes=30), lambda: datetime.now(UTC)) as lease:
        with sessions() as session:  # the lease ran out (say the worker was frozen): reclaimed
            later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
            assert jobs.claim_job(session, job_id, later, LEASE) is not None
        assert not lease.renew()
        assert lease.lost
        with pytest.raises(LeaseLost):
            lease.check()
    with sessions() as session:
        assert session.get(Job, job_id).attempts == attempt + 1
