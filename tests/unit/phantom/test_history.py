"""The synthetic year of history the scale benchmark fills a database with: every state there,
live work only among the newest studies, old studies already expired by retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from db import jobs, retention, views
from db.models import AuditEvent, Delivery, Instance, Job, Mpps, Study
from db.session import make_sessionmaker
from phantom.history import RETENTION_DAYS, HistoryShape, populate

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_populate_writes_every_state_and_only_recent_work_is_live(tmp_path: Path) -> None:
    sessions = make_sessionmaker(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    shape = HistoryShape(studies=400, receiving=3, queued=2, running=1, retrying=2)
    with sessions() as session:
        counts = populate(session, shape, NOW)
    with sessions() as session:
        assert counts.rows["study"] == 400
        assert views.states(session, Study) == {"RECEIVING": 3, "READY": 397}
        job_states = views.states(session, Job)
        assert (job_states["QUEUED"], job_states["RUNNING"], job_states["ENCODED"]) == (2, 1, 2)
        assert min(job_states[s] for s in ("DELIVERED", "SKIPPED", "FAILED_INPUT", "FAILED")) > 0
        assert views.states(session, Delivery)["RETRY"] == 2
        per_study = session.scalars(
            select(func.count()).select_from(Instance).group_by(Instance.study_id)
        ).all()
        assert len(per_study) == 400 and max(per_study) <= 30
        assert session.scalar(select(func.count()).select_from(Mpps)) > 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) > 10 * 400
        # every study past the retention age went already; the queued jobs and one retry are due
        cutoff = NOW - timedelta(days=RETENTION_DAYS)
        assert retention.expirable_studies(session, received_before=cutoff) == []
        due = jobs.jobs_to_enqueue(session, NOW, timedelta(seconds=300))
        assert len(due) == 3
    sessions.kw["bind"].dispose()
