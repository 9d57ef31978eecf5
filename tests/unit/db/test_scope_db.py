"""Scope overrides and the assembly's scope verdicts, on SQLite and the real PostgreSQL."""

from sqlalchemy import select

from db import jobs, views
from db import scope as scope_db
from db.models import AuditEvent, Study, StudyState
from tests.unit.db.test_jobs import _study_with_model, sessions

__all__ = ["sessions"]


def _verdict(run: bool) -> dict[str, object]:
    return {
        "model": "ynet-busi@1.0.0",
        "run": run,
        "rule": "body_part=BREAST",
        "source": "spec",
        "reason": "no series matches the spec rule (US, body part PELVIS)",
    }


def test_out_of_scope_model_gets_no_job_and_the_audit_names_its_rule(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    with sessions.begin() as session:
        created = jobs.assemble_study(
            session, study_id, False, {"ynet-busi@1.0.0": _verdict(False)}
        )
    assert created == []
    with sessions() as session:
        study = session.get(Study, study_id)
        assert study.state == StudyState.READY
        assert study.scope == {"generation": 0, "models": [_verdict(False)]}
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "out_of_scope")
        ).all()
    assert [(e.entity_id, e.details["rule"], e.details["run"]) for e in refused] == [
        (str(study_id), "body_part=BREAST", False)
    ]
    with sessions() as session:
        (row,) = views.study_scope_rows(session)
    assert row["jobs"] == 0 and row["scope"][0]["reason"].startswith("no series matches")


def test_in_scope_model_queued_and_its_queue_audit_names_the_rule(sessions) -> None:  # type: ignore[no-untyped-def]
    study_id = _study_with_model(sessions)
    with sessions.begin() as session:
        (_job,) = jobs.assemble_study(session, study_id, False, {"ynet-busi@1.0.0": _verdict(True)})
    with sessions() as session:
        queued = session.scalars(select(AuditEvent).where(AuditEvent.action == "queue")).one()
    assert queued.details["rule"] == "body_part=BREAST" and queued.details["rule_source"] == "spec"


def test_set_override_changes_only_given_parts_audits_before_after_and_resets(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        scope_db.set_override(session, "ynet-busi", "alice", rule={})
    with sessions.begin() as session:
        scope_db.set_override(session, "ynet-busi", "bob", gate=False)
    with sessions() as session:
        assert scope_db.overrides(session) == {"ynet-busi": scope_db.Override({}, False)}
    with sessions.begin() as session:
        scope_db.set_override(session, "ynet-busi", "carol", reset=True)
    with sessions() as session:
        assert scope_db.overrides(session) == {"ynet-busi": scope_db.Override(None, None)}
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "scope_set").order_by(AuditEvent.id)
        ).all()
    assert [e.actor for e in events] == ["alice", "bob", "carol"]
    assert events[1].details == {
        "before": {"rule": {}, "gate": None},
        "after": {"rule": {}, "gate": False},
    }
