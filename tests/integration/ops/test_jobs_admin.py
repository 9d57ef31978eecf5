"""`lnm-node jobs requeue|cancel|replay` and `audit export`: real PACS, every change audited."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from db.models import AuditEvent, Delivery, DeliveryState, Job, JobState
from kernel.settings import Settings, settings_environment
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.network import free_port
from tests.support.orthanc import start_orthanc

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=settings_environment(settings))
    return result.exit_code, result.output


def _job(ctx: NodeContext, job_id: int) -> Job:
    with ctx.sessions() as session:
        return session.get(Job, job_id)


def _one_job(ctx: NodeContext, tmp_path: Path, seed: int) -> int:
    receive(ctx, write_us_study(tmp_path / f"study-{seed}", seed=seed, count=1))
    sweep(ctx, make_celery(ctx.settings))
    with ctx.sessions() as session:
        return max(session.scalars(select(Job.id)))


def _actions(ctx: NodeContext, entity: str, entity_id: object) -> list[str]:
    with ctx.sessions() as session:
        return list(session.scalars(select(AuditEvent.action).where(
            AuditEvent.entity == entity, AuditEvent.entity_id == str(entity_id)).order_by(AuditEvent.id)))


def test_jobs_requeue_dead_lettered_job_delivered_after_pacs_up(tmp_path: Path, tiny_models_dir: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path / "home", tiny_models_dir, destinations=f"ORTHANC@127.0.0.1:{port}",
                             max_delivery_attempts=1)
    ctx = prepare(settings)
    job_id = _one_job(ctx, tmp_path, seed=41)
    assert process_job(ctx, job_id) is Outcome.DELIVERY_PENDING
    job = _job(ctx, job_id)
    assert job.state == JobState.FAILED and job.reason == "delivery dead-lettered"
    with ctx.sessions() as session:
        assert session.scalars(select(Delivery.state)).one() == DeliveryState.FAILED

    pacs = start_orthanc(tmp_path / "orthanc", dicom_port=port)
    try:
        code, output = _cli(settings, "jobs", "requeue", str(job_id))
        assert code == 0 and "ENCODED" in output, output
        assert sweep(ctx, make_celery(settings)).enqueued == 1
        assert process_job(ctx, job_id) is Outcome.DELIVERED
        assert len(pacs.instance_ids()) == len(_job(ctx, job_id).outputs["sop_instance_uids"])
    finally:
        pacs.stop()
    actions = _actions(ctx, "job", job_id)
    assert actions.index("failed") < actions.index("requeue") < actions.index("delivered")
    code, output = _cli(settings, "jobs", "requeue", str(job_id))
    assert code == 1 and "only FAILED" in output


def test_jobs_cancel_queued_job_skipped_never_claimed(tmp_path: Path, tiny_models_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", tiny_models_dir)
    ctx = prepare(settings)
    job_id = _one_job(ctx, tmp_path, seed=42)
    code, output = _cli(settings, "jobs", "cancel", str(job_id))
    assert code == 0, output
    assert _job(ctx, job_id).state == JobState.SKIPPED
    assert process_job(ctx, job_id) is Outcome.NOT_CLAIMED
    assert _actions(ctx, "job", job_id)[-1] == "cancel"
    assert _cli(settings, "jobs", "cancel", str(job_id))[0] == 1
    assert _cli(settings, "jobs", "cancel", "9999")[0] == 1


def test_jobs_replay_delivered_job_to_named_pacs_same_uids(tmp_path: Path, tiny_models_dir: Path) -> None:
    first = start_orthanc(tmp_path / "first")
    second = start_orthanc(tmp_path / "second", dicomweb=True)
    try:
        settings = make_settings(tmp_path / "home", tiny_models_dir, destinations=first.destination)
        ctx = prepare(settings)
        job_id = _one_job(ctx, tmp_path, seed=43)
        assert process_job(ctx, job_id) is Outcome.DELIVERED
        outputs = set(_job(ctx, job_id).outputs["sop_instance_uids"].values())

        code, output = _cli(settings, "jobs", "replay", str(job_id), "--to", second.destination)
        assert code == 0 and "SENT" in output, output
        code, output = _cli(settings, "jobs", "replay", str(job_id), "--to", f"stow+{second.dicomweb_root}")
        assert code == 0, output
        # without --to: every destination the job has a delivery row for (three by now)
        code, output = _cli(settings, "jobs", "replay", str(job_id))
        assert code == 0 and first.destination in output, output
        for pacs in (first, second):
            stored = {pacs.get_json(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
                      for i in pacs.instance_ids()}
            assert stored == outputs
        assert _job(ctx, job_id).state == JobState.DELIVERED
        with ctx.sessions() as session:
            replays = session.scalars(select(AuditEvent).where(AuditEvent.action == "replay")).all()
        assert [e.actor for e in replays] == ["admin"] * 5
        code, output = _cli(settings, "jobs", "replay", str(job_id), "--to", "not a destination")
        assert code == 1
        # a PACS that is not there: the attempt's own error, not a state alone
        code, output = _cli(settings, "jobs", "replay", str(job_id), "--to", f"GONE@127.0.0.1:{free_port()}")
        assert code == 1 and "RETRY (" in output and "cannot connect" in output, output
    finally:
        first.stop()
        second.stop()


def test_audit_export_jsonl_and_csv_every_event_every_state_change(tmp_path: Path, tiny_models_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", tiny_models_dir)
    ctx = prepare(settings)
    job_id = _one_job(ctx, tmp_path, seed=44)
    assert process_job(ctx, job_id) is Outcome.DELIVERED
    # every state change of the study and the job is in the audit trail
    assert _actions(ctx, "study", _job(ctx, job_id).study_id) == ["receive", "assemble"]
    assert _actions(ctx, "job", job_id) == ["queue", "claim", "inferred", "encoded", "delivered"]

    code, output = _cli(settings, "audit", "export", "--out", str(tmp_path / "audit.jsonl"))
    assert code == 0, output
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    with ctx.sessions() as session:
        assert [e["id"] for e in events] == list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    assert {"at", "actor", "action", "entity", "entity_id", "details"} <= set(events[0])

    code, output = _cli(settings, "audit", "export", "--out", str(tmp_path / "audit.csv"))
    assert code == 0, output
    with open(tmp_path / "audit.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["id"]) for r in rows] == [e["id"] for e in events]
    assert json.loads(rows[-1]["details"]) == events[-1]["details"]

    future = "2999-01-01T00:00:00"
    code, _ = _cli(settings, "audit", "export", "--out", str(tmp_path / "none.jsonl"), "--since", future)
    assert code == 0 and (tmp_path / "none.jsonl").read_text() == ""
    assert _cli(settings, "audit", "export", "--out", str(tmp_path / "audit.txt"))[0] != 0
