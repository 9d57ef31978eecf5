"""The retention pass on a node that really received studies (C-STORE over loopback)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydicom
from sqlalchemy import select

from db.models import (
    AuditEvent,
    Instance,
    LabelLevel,
    PathologyLabel,
    PathologyOutcome,
    Study,
    StudyState,
)
from phantom.us_dicom import write_us_study
from pipeline.context import NodeContext
from pipeline.retention import enforce_retention
from tests.integration.pipeline.conftest import make_settings, receive

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def _node(tmp_path: Path, **settings: object) -> NodeContext:
    ctx = NodeContext.build(make_settings(tmp_path / "home", tmp_path / "models", **settings))
    ctx.clock = lambda: NOW
    return ctx


def _received(ctx: NodeContext, tmp_path: Path, ages_days: dict[str, float], labelled: str) -> dict[str, int]:
    """One study per name, received for real, then dated ``ages_days`` back; one labelled."""
    ids = {}
    for seed, (name, age) in enumerate(ages_days.items(), start=40):
        paths = write_us_study(tmp_path / name, seed=seed, count=1)
        receive(ctx, paths)
        uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
        with ctx.sessions.begin() as session:
            study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).one()
            study.state = StudyState.READY
            study.last_received_at = NOW - timedelta(days=age)
            if name == labelled:
                session.add(PathologyLabel(level=LabelLevel.STUDY, uid=uid, study_id=study.id,
                                           outcome=PathologyOutcome.BENIGN, source="test"))
            ids[name] = study.id
    return ids


def _files_left(ctx: NodeContext, study_id: int) -> list[bool]:
    with ctx.sessions() as session:
        return [Path(p).is_file() for p in session.scalars(select(Instance.path).where(Instance.study_id == study_id))]


def _expire_events(ctx: NodeContext) -> list[tuple[str, str, str]]:
    with ctx.sessions() as session:
        return [(e.entity, e.entity_id, str(e.details.get("reason", e.details.get("by_size"))))
                for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "expire")
                                         .order_by(AuditEvent.id))]


def test_retention_old_studies_go_recent_and_labelled_stay_audited_once(tmp_path: Path) -> None:
    ctx = _node(tmp_path)
    ids = _received(ctx, tmp_path, {"old": 120, "recent": 30, "labelled": 400}, labelled="labelled")
    result = enforce_retention(ctx)
    assert result.studies == 1 and result.study_bytes > 0
    assert _files_left(ctx, ids["old"]) == [False]
    assert _files_left(ctx, ids["recent"]) == [True] and _files_left(ctx, ids["labelled"]) == [True]
    assert _expire_events(ctx) == [("study", str(ids["old"]), "age")]
    assert enforce_retention(ctx).studies == 0  # an expired study is not chosen again
    assert len(_expire_events(ctx)) == 1


def test_retention_size_cap_takes_oldest_unlabelled_before_the_age(tmp_path: Path) -> None:
    ctx = _node(tmp_path, spool_max_bytes=1024)
    ids = _received(ctx, tmp_path, {"older": 20, "newer": 10, "labelled": 30}, labelled="labelled")
    result = enforce_retention(ctx)
    assert result.studies == 2
    assert _files_left(ctx, ids["older"]) == [False] and _files_left(ctx, ids["newer"]) == [False]
    assert _files_left(ctx, ids["labelled"]) == [True]
    assert [reason for _, _, reason in _expire_events(ctx)] == ["size", "size"]


def test_retention_quarantine_by_age_then_size_audited(tmp_path: Path) -> None:
    ctx = _node(tmp_path, quarantine_max_age_days=30, quarantine_max_bytes=5000)
    records = [ctx.spool.quarantine(b"x" * 3000, f"reason {n}", {}) for n in range(4)]
    old = (NOW - timedelta(days=31)).timestamp()
    for path in (records[0], records[0].with_suffix(".dcm")):
        os.utime(path, (old, old))
    result = enforce_retention(ctx)
    assert result.quarantined == 3  # one by age, then the oldest until under 5000 bytes
    assert sorted(p.name for p in ctx.spool.quarantine_dir.iterdir()) == sorted(
        [records[3].name, records[3].with_suffix(".dcm").name])
    with ctx.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.entity == "quarantine")).one()
    assert event.details["by_age"] == 1 and event.details["by_size"] == 2
