"""Read queries of the status page and /metrics, on SQLite and on the loopback PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from db import audit, views
from db.models import Delivery, DeliveryState, Instance, Job, JobState, Series, Study, StudyState
from db.session import make_sessionmaker
from tests.support.databases import database_url

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    with database_url(request.param, tmp_path) as url:
        factory = make_sessionmaker(url)
        yield factory
        factory.kw["bind"].dispose()


def _fill(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Two studies; jobs delivered after 12 s and 90 s, one queued, one failed; deliveries."""
    with sessions.begin() as session:
        study = Study(study_instance_uid="1.2.3", state=StudyState.READY,
                      first_received_at=T0, last_received_at=T0)
        other = Study(study_instance_uid="1.2.4", state=StudyState.RECEIVING,
                      first_received_at=T0, last_received_at=T0 + timedelta(minutes=1))
        session.add_all([study, other])
        session.flush()
        series = Series(study_id=study.id, series_instance_uid="1.2.3.1", modality="US")
        session.add(series)
        session.flush()
        for n in range(3):
            session.add(Instance(study_id=study.id, series_id=series.id, sop_instance_uid=f"1.2.3.1.{n}",
                                 sop_class_uid="1.2.840.10008.5.1.4.1.1.6.1", transfer_syntax_uid="1.2",
                                 path=f"/spool/{n}.dcm", size_bytes=10))
        fast = Job(study_id=study.id, model_key="m", model_version="1", generation=0,
                   state=JobState.DELIVERED, created_at=T0, updated_at=T0 + timedelta(seconds=12))
        slow = Job(study_id=study.id, model_key="m", model_version="1", generation=1,
                   state=JobState.DELIVERED, created_at=T0, updated_at=T0 + timedelta(seconds=90))
        queued = Job(study_id=other.id, model_key="m", model_version="1", generation=0,
                     state=JobState.QUEUED, created_at=T0, updated_at=T0)
        failed = Job(study_id=other.id, model_key="m", model_version="2", generation=0,
                     state=JobState.FAILED, reason="encode bug", created_at=T0, updated_at=T0)
        session.add_all([fast, slow, queued, failed])
        session.flush()
        session.add_all([
            Delivery(job_id=fast.id, destination="PACS@h:1", state=DeliveryState.SENT, attempts=1),
            Delivery(job_id=slow.id, destination="PACS@h:1", state=DeliveryState.RETRY, attempts=2,
                     last_error="association refused"),
        ])
        for action in ("deliver_retry", "deliver_retry", "deliver_failed", "deliver"):
            audit.record(session, "worker", action, "delivery", 1)
        return {"study": study.id, "other": other.id, "failed": failed.id}


def test_states_every_state_listed_with_zeros(sessions) -> None:  # type: ignore[no-untyped-def]
    _fill(sessions)
    with sessions() as session:
        jobs = views.states(session, Job)
        assert set(jobs) == {s.value for s in JobState}
        assert (jobs["DELIVERED"], jobs["QUEUED"], jobs["FAILED"], jobs["RUNNING"]) == (2, 1, 1, 0)
        assert views.states(session, Study) == {"RECEIVING": 1, "READY": 1}
        assert views.states(session, Delivery)["RETRY"] == 1
        assert views.queue_depth(session) == {"QUEUED": 1, "RUNNING": 0}
        assert views.instance_count(session) == 3


def test_job_latency_histogram_delivered_jobs_counted_per_bound(sessions) -> None:  # type: ignore[no-untyped-def]
    _fill(sessions)
    with sessions() as session:
        histogram = views.job_latency_histogram(session, [10, 30, 60, 120])
    assert histogram.count == 2
    assert histogram.total_seconds == pytest.approx(102.0, abs=0.01)
    assert histogram.buckets == [(10.0, 0), (30.0, 1), (60.0, 1), (120.0, 2)]


def test_job_latency_histogram_no_delivered_job_gives_zeros(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        histogram = views.job_latency_histogram(session, [10])
    assert (histogram.count, histogram.total_seconds, histogram.buckets) == (0, 0.0, [(10.0, 0)])


def test_delivery_failure_count_counts_retried_and_dead_attempts(sessions) -> None:  # type: ignore[no-untyped-def]
    _fill(sessions)
    with sessions() as session:
        assert views.delivery_failure_count(session) == 3


def test_study_detail_lists_series_and_jobs_newest_first(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = _fill(sessions)
    with sessions() as session:
        detail = views.study_detail(session, ids["study"])
        assert views.study_detail(session, 9999) is None
    assert detail is not None
    assert detail.study.instances == 3 and detail.study.jobs == 2
    assert [(s.series_instance_uid, s.instances) for s in detail.series] == [("1.2.3.1", 3)]
    assert [j.generation for j in detail.jobs] == [1, 0]
    assert detail.jobs[0].deliveries[0].last_error == "association refused"


def test_failed_jobs_and_problem_deliveries_carry_reasons(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = _fill(sessions)
    with sessions() as session:
        failed = views.failed_jobs(session)
        problems = views.delivery_rows(session, only_states=views.PROBLEM_DELIVERY_STATES)
        everything = views.delivery_rows(session)
    assert [(j.job_id, j.reason) for j in failed] == [(ids["failed"], "encode bug")]
    assert [(d.state, d.last_error, d.study_id) for d in problems] == [
        ("RETRY", "association refused", ids["study"])
    ]
    assert len(everything) == 2


def test_study_rows_newest_first_with_counts(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = _fill(sessions)
    with sessions() as session:
        rows = views.study_rows(session)
    assert [r.study_id for r in rows] == [ids["other"], ids["study"]]
    assert [(r.instances, r.jobs) for r in rows] == [(0, 2), (3, 2)]


def _studies(sessions, count: int) -> None:  # type: ignore[no-untyped-def]
    """``count`` READY studies 1.9.<n>, one a minute, each with one delivered job."""
    with sessions.begin() as session:
        for n in range(count):
            study = Study(study_instance_uid=f"1.9.{n}", state=StudyState.READY,
                          first_received_at=T0 + timedelta(minutes=n),
                          last_received_at=T0 + timedelta(minutes=n))
            session.add(study)
            session.flush()
            job = Job(study_id=study.id, model_key="m", model_version="1", generation=0,
                      state=JobState.DELIVERED, created_at=T0, updated_at=T0)
            session.add(job)
            session.flush()
            session.add(Delivery(job_id=job.id, destination="PACS@h:1", state=DeliveryState.SENT))


def test_study_rows_offset_pages_newest_first_and_uid_prefix_finds(sessions) -> None:  # type: ignore[no-untyped-def]
    _studies(sessions, 12)
    with sessions() as session:
        first = views.study_rows(session, limit=5)
        third = views.study_rows(session, limit=5, offset=10)
        found = views.study_rows(session, uid="1.9.1")
        none = views.study_rows(session, uid="1.9_")  # LIKE wildcards are literal
    assert [r.study_instance_uid for r in first] == [f"1.9.{n}" for n in (11, 10, 9, 8, 7)]
    assert [r.study_instance_uid for r in third] == ["1.9.1", "1.9.0"]
    assert [r.study_instance_uid for r in found] == ["1.9.11", "1.9.10", "1.9.1"]
    assert none == []


def test_job_rows_statements_do_not_grow_with_jobs(sessions) -> None:  # type: ignore[no-untyped-def]
    """Each job's study and deliveries were loaded one job at a time (2 statements per row)."""
    _studies(sessions, 30)
    engine = sessions.kw["bind"]
    seen: list[str] = []

    def count(*args) -> None:  # type: ignore[no-untyped-def]
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        with sessions() as session:
            rows = views.job_rows(session, limit=30)
            failed = views.failed_jobs(session)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(rows) == 30 and failed == []
    assert rows[0].study_instance_uid == "1.9.29" and rows[0].deliveries[0].state == "SENT"
    assert len(seen) <= 4
