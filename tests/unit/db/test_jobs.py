"""Job queries on SQLite and on the real PostgreSQL server of this machine."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from db import jobs, views
from db.models import AuditEvent, Job, JobState, Study, StudyState
from db.session import make_sessionmaker
from tests.support.databases import database_url, study_with_enabled_model

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    with database_url(request.param, tmp_path) as url:
        factory = make_sessionmaker(url)
        yield factory
        factory.kw["bind"].dispose()


def _study_with_model(sessions) -> int:  # type: ignore[no-untyped-def]
    return study_with_enabled_model(sessions, NOW)


def test_assemble_study_twice_creates_one_job(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    with sessions.begin() as session:
        assert len(jobs.assemble_study(session, study_id, forced=False)) == 1
    with sessions.begin() as session:
        assert jobs.assemble_study(session, study_id, forced=False) == []
        assert session.get(Study, study_id).state == StudyState.READY
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"assemble", "queue", "enable", "register"} <= actions


def test_assemble_study_new_generation_creates_new_job_version(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    with sessions.begin() as session:
        jobs.assemble_study(session, study_id, forced=False)
        study = session.get(Study, study_id)
        study.generation += 1  # a late instance arrived
        study.state = StudyState.RECEIVING
    with sessions.begin() as session:
        created = jobs.assemble_study(session, study_id, forced=False)
        assert [job.generation for job in created] == [1]


def test_claim_job_held_lease_is_refused_then_expired_lease_is_taken(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    with sessions.begin() as session:
        job_id = jobs.assemble_study(session, study_id, forced=False)[0].id
    lease = timedelta(minutes=30)
    with sessions() as session:
        job = jobs.claim_job(session, job_id, NOW, lease)
        assert job is not None and job.state == JobState.RUNNING and job.attempts == 1
    with sessions() as session:
        assert jobs.claim_job(session, job_id, NOW + timedelta(minutes=1), lease) is None
    with sessions() as session:
        again = jobs.claim_job(session, job_id, NOW + timedelta(minutes=31), lease)
        assert again is not None and again.attempts == 2


def test_jobs_to_enqueue_new_lost_and_held_jobs(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    requeue = timedelta(minutes=5)
    with sessions.begin() as session:
        job_id = jobs.assemble_study(session, study_id, forced=False)[0].id
        assert jobs.jobs_to_enqueue(session, NOW, requeue) == [job_id]
        jobs.mark_enqueued(session, [job_id], NOW)
    with sessions.begin() as session:
        assert jobs.jobs_to_enqueue(session, NOW + timedelta(minutes=1), requeue) == []
        assert jobs.jobs_to_enqueue(session, NOW + timedelta(minutes=6), requeue) == [job_id]
    with sessions() as session:
        jobs.claim_job(session, job_id, NOW + timedelta(minutes=6), timedelta(minutes=30))
    with sessions.begin() as session:
        assert jobs.jobs_to_enqueue(session, NOW + timedelta(minutes=20), requeue) == []
        assert jobs.jobs_to_enqueue(session, NOW + timedelta(minutes=40), requeue) == [job_id]


def test_dead_workers_lease_resends_job_once_it_runs_out_not_after_requeue_time(sessions) -> None:  # type: ignore[no-untyped-def]
    """A worker renews its short lease while it runs; one that died stops renewing, and its
    job is re-sent as soon as the lease runs out, not requeue_after later; once."""
    study_id = _study_with_model(sessions)
    requeue, lease = timedelta(minutes=5), timedelta(seconds=60)
    with sessions.begin() as session:
        job_id = jobs.assemble_study(session, study_id, forced=False)[0].id
        jobs.mark_enqueued(session, [job_id], NOW)
    with sessions() as session:
        claimed = jobs.claim_job(session, job_id, NOW, lease)
        assert claimed is not None
        attempt = claimed.attempts
    with sessions() as session:  # the live worker renews at 40 s: held at 90 s
        assert jobs.renew_lease(session, job_id, attempt, NOW + timedelta(seconds=100))
    with sessions.begin() as session:
        assert jobs.jobs_to_enqueue(session, NOW + timedelta(seconds=90), requeue) == []
    # it died: one resend just after the lease ran out (well before requeue_after), then none
    after = NOW + timedelta(seconds=101)
    with sessions.begin() as session:
        assert jobs.jobs_to_enqueue(session, after, requeue) == [job_id]
        jobs.mark_enqueued(session, [job_id], after)
    with sessions.begin() as session:
        assert jobs.jobs_to_enqueue(session, after + timedelta(seconds=10), requeue) == []
    with sessions() as session:  # a new claim takes it; the dead claim cannot renew any more
        assert jobs.claim_job(session, job_id, after + timedelta(seconds=1), lease) is not None
    with sessions() as session:
        assert not jobs.renew_lease(session, job_id, attempt, after + timedelta(seconds=60))
        assert jobs.renew_lease(session, job_id, attempt + 1, after + timedelta(seconds=60))


def test_released_job_lease_cannot_be_renewed(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    with sessions.begin() as session:
        job_id = jobs.assemble_study(session, study_id, forced=False)[0].id
    with sessions() as session:
        attempt = jobs.claim_job(session, job_id, NOW, timedelta(seconds=60)).attempts
    with sessions.begin() as session:
        jobs.release_job(session, session.get(Job, job_id))
    with sessions() as session:
        assert not jobs.renew_lease(session, job_id, attempt, NOW + timedelta(seconds=60))
        assert session.get(Job, job_id).lease_until is None


def test_counts_by_state_after_assembly(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    with sessions.begin() as session:
        jobs.assemble_study(session, study_id, forced=False)
    with sessions() as session:
        studies, queued = views.states(session, Study), views.states(session, Job)
    assert studies["READY"] == 1 and sum(studies.values()) == 1
    assert queued["QUEUED"] == 1 and sum(queued.values()) == 1
    assert session.scalar(select(Job.state)) == JobState.QUEUED
