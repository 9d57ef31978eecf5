"""db/instances.py on SQLite and on the loopback PostgreSQL (a database of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.instances import (
    ReceivedInstance,
    patient_key_count,
    patient_keys,
    record_instance,
    study_counts_by_state,
)
from db.models import AuditEvent, Instance, Series, Study, StudyState
from db.session import make_sessionmaker
from db.views import instance_rows
from tests.support.databases import postgres_database

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        factory = make_sessionmaker(f"sqlite:///{tmp_path / 'lnm.sqlite3'}")
        yield factory
        factory.kw["bind"].dispose()
        return
    with postgres_database() as url:
        factory = make_sessionmaker(url)
        yield factory
        factory.kw["bind"].dispose()


def _item(sop: str, study: str = "1.2.3", series: str = "1.2.3.1") -> ReceivedInstance:
    return ReceivedInstance(
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.6.1",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        path=f"/spool/{sop}.dcm",
        size_bytes=1000,
        modality="US",
        calling_ae_title="MODALITY",
    )


def _record(sessions: sessionmaker[Session], item: ReceivedInstance, now: datetime = T0) -> bool:
    with sessions() as session, session.begin():
        return record_instance(session, item, now=now)


def test_record_instance_new_study_creates_rows_and_one_audit_event(
    sessions: sessionmaker[Session],
) -> None:
    assert _record(sessions, _item("1.2.3.1.1")) is True
    assert _record(sessions, _item("1.2.3.1.2"), T0 + timedelta(seconds=5)) is True
    with sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        assert study.state is StudyState.RECEIVING
        assert study.last_received_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=5)
        assert (study.generation, study.assembled_generation) == (0, -1)
        assert session.scalar(select(func.count(Series.id))) == 1
        assert session.scalar(select(func.count(Instance.id))) == 2
        events = session.execute(select(AuditEvent)).scalars().all()
        assert [(e.action, e.entity, e.entity_id) for e in events] == [
            ("receive", "study", str(study.id))
        ]


def test_record_instance_same_sop_twice_false_and_one_row(sessions: sessionmaker[Session]) -> None:
    assert _record(sessions, _item("1.2.3.1.1")) is True
    assert _record(sessions, _item("1.2.3.1.1"), T0 + timedelta(minutes=1)) is False
    with sessions() as session:
        assert session.scalar(select(func.count(Instance.id))) == 1
        assert (
            session.execute(select(Study.last_received_at)).scalar_one().replace(tzinfo=UTC) == T0
        )


def test_record_instance_after_assembly_bumps_generation_once(
    sessions: sessionmaker[Session],
) -> None:
    _record(sessions, _item("1.2.3.1.1"))
    with sessions() as session, session.begin():
        session.execute(update(Study).values(assembled_generation=0, state=StudyState.READY))
    assert _record(sessions, _item("1.2.3.1.2")) is True
    assert _record(sessions, _item("1.2.3.1.3")) is True  # not yet assembled again: no bump
    with sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        assert (study.generation, study.assembled_generation, study.state) == (
            1,
            0,
            StudyState.RECEIVING,
        )
        reopen = session.execute(select(AuditEvent).where(AuditEvent.action == "reopen")).scalars().all()
        assert [(event.entity_id, event.details["generation"]) for event in reopen] == [(str(study.id), 1)]


def test_record_instance_after_assembly_not_an_input_stored_without_reopening(
    sessions: sessionmaker[Session],
) -> None:
    """A late report, or the node's own result forwarded back, is stored; the study stays READY
    at its generation (no new job), with no "reopen" event."""
    _record(sessions, _item("1.2.3.1.1"))
    with sessions() as session, session.begin():
        session.execute(update(Study).values(assembled_generation=0, state=StudyState.READY))
    late = replace(_item("1.2.3.2.1", series="1.2.3.2"), may_be_input=False)
    assert _record(sessions, late, T0 + timedelta(minutes=5)) is True
    with sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        assert (study.generation, study.assembled_generation, study.state) == (0, 0, StudyState.READY)
        assert session.scalar(select(func.count(Instance.id))) == 2
        assert session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "reopen")) == 0


def test_instance_rows_and_counts_two_studies_listed(sessions: sessionmaker[Session]) -> None:
    _record(sessions, _item("1.2.3.1.1"))
    _record(
        sessions, _item("1.2.4.1.1", study="1.2.4", series="1.2.4.1"), T0 + timedelta(seconds=1)
    )
    with sessions() as session, session.begin():
        session.execute(
            update(Study).where(Study.study_instance_uid == "1.2.4").values(state=StudyState.READY)
        )
    with sessions() as session:
        rows = instance_rows(session)
        counts = study_counts_by_state(session)
    assert [(r["sop_instance_uid"], r["study_instance_uid"], r["state"]) for r in rows] == [
        ("1.2.3.1.1", "1.2.3", "RECEIVED"),
        ("1.2.4.1.1", "1.2.4", "RECEIVED"),
    ]
    assert rows[0]["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.6.1"
    assert rows[0]["received_at"].replace(tzinfo=UTC) == T0
    assert counts == {"RECEIVING": 1, "READY": 1}


def test_patient_key_count_distinct_keys_of_the_study_and_rows_without_one(
    sessions: sessionmaker[Session],
) -> None:
    for sop, key in [("1.2.3.1.1", "a" * 64), ("1.2.3.1.2", "a" * 64), ("1.2.3.1.3", "b" * 64)]:
        _record(sessions, replace(_item(sop), patient_key=key))
    other = replace(_item("1.2.4.1.1", study="1.2.4", series="1.2.4.1"), patient_key="c" * 64)
    _record(sessions, other)
    with sessions() as session:
        study = session.scalars(select(Study.id).where(Study.study_instance_uid == "1.2.3")).one()
        assert patient_key_count(session, study) == (2, 0)
        assert patient_keys(session, study) == ({"a" * 64, "b" * 64}, [])
        assert patient_key_count(session, study + 100) == (0, 0)  # no such study

    _record(sessions, _item("1.2.3.1.4"))  # recorded without a key: as before migration 0005
    _record(sessions, _item("1.2.3.1.5"))
    with sessions() as session:
        assert patient_key_count(session, study) == (2, 2)
        assert patient_keys(session, study) == (
            {"a" * 64, "b" * 64},
            ["/spool/1.2.3.1.4.dcm", "/spool/1.2.3.1.5.dcm"],
        )
