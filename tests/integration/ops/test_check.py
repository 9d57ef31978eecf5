"""`lnm-node check` on a real node home (SQLite and PostgreSQL): a study received by the real
SCP and processed into a pending delivery, then damaged one way at a time."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from db.models import Instance, Job, JobState
from kernel.spool import Spool
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.process import Outcome, process_job
from pipeline.retention import expire_studies
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.databases import database_url
from tests.support.network import free_port

pytestmark = pytest.mark.integration
runner = CliRunner()
#: files older than this have settled (a receive in progress commits its row within it)
SETTLE_ENV = {"LNM_COMMIT_WAIT_SECONDS": "0.2", "LNM_NETWORK_TIMEOUT_SECONDS": "0.2"}


def run_check(home: Path, monkeypatch: pytest.MonkeyPatch, settled: bool = True,
              database: str | None = None) -> tuple[int, dict[str, Any]]:
    """`lnm-node check --json --home HOME`: (exit status, report)."""
    for name, value in SETTLE_ENV.items():
        if settled:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    if database is not None:
        monkeypatch.setenv("LNM_DATABASE_URL", database)
    if settled:
        time.sleep(0.3)
    result = runner.invoke(app, ["check", "--json", "--home", str(home)])
    assert result.exit_code in (0, 1), (result.output, result.exception)
    assert result.stdout, (result.output, result.exception, result.exit_code)
    return result.exit_code, json.loads(result.stdout)


def counts(report: dict[str, Any]) -> dict[str, int]:
    """Problem kind -> count, for the kinds found."""
    return {kind: p["count"] for kind, p in report["problems"].items() if p["count"]}


def _node(tmp_path: Path, tiny_models_dir: Path, url: str | None = None) -> NodeContext:
    """A node that received a 3-instance study, and ran its job to a delivery pending (nothing
    listens on the PACS port): its outputs wait in the outbox."""
    overrides: dict[str, object] = {"destinations": [f"PACS@127.0.0.1:{free_port()}"]}
    if url is not None:
        overrides["database_url"] = url
    ctx = prepare(make_settings(tmp_path / "home", tiny_models_dir, **overrides))
    receive(ctx, write_us_study(tmp_path / "study", seed=3, count=3))
    sweep(ctx, make_celery(ctx.settings))
    with ctx.sessions() as session:
        (job_id,) = session.scalars(select(Job.id))
    assert process_job(ctx, job_id) is Outcome.DELIVERY_PENDING
    return ctx


@pytest.fixture
def node(tmp_path: Path, tiny_models_dir: Path) -> NodeContext:
    return _node(tmp_path, tiny_models_dir)


def _instances(ctx: NodeContext) -> list[Instance]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Instance).order_by(Instance.id)))


def _tree(home: Path) -> dict[str, tuple[int, float]]:
    """Every file under ``home`` but the SQLite side files, with its size and mtime."""
    return {str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime)
            for p in home.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def test_check_received_study_consistent_writes_nothing(
    node: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = node.settings.home
    before = _tree(home)
    status, report = run_check(home, monkeypatch)
    assert (status, report["consistent"], counts(report)) == (0, True, {})
    assert report["counts"]["instance_rows"] == report["counts"]["incoming_files"] == 3
    assert report["schema_revision"] == report["schema_head"]
    assert _tree(home) == before  # read-only: nothing made, changed or removed


def test_check_deleted_file_reported_missing_without_patient(
    node: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = _instances(node)[1]
    Path(gone.path).unlink()
    result = runner.invoke(app, ["check", "--home", str(node.settings.home)])
    assert result.exit_code == 1
    status, report = run_check(node.settings.home, monkeypatch)
    assert (status, counts(report)) == (1, {"missing_file": 1})
    assert report["problems"]["missing_file"]["examples"] == [f"{gone.sop_instance_uid}: {gone.path}"]
    assert "SYNTHETIC" not in result.output + json.dumps(report)  # the phantom's PatientName


def test_check_orphan_file_reported_once_settled(
    node: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Path(_instances(node)[0].path)
    orphan = source.parent / "1.2.826.0.1.3680043.99.1.dcm"
    shutil.copy(source, orphan)
    status, report = run_check(node.settings.home, monkeypatch, settled=False)
    # younger than the settle time: perhaps a receive about to commit its row
    assert (status, counts(report), report["counts"]["in_flight"]) == (0, {}, 1)
    status, report = run_check(node.settings.home, monkeypatch)
    assert (status, counts(report)) == (1, {"orphan_file": 1})
    assert report["problems"]["orphan_file"]["examples"] == [str(orphan)]


def test_check_size_differs_reported(node: NodeContext, monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = _instances(node)[2]
    with open(damaged.path, "ab") as handle:
        handle.write(b"\0" * 10)
    status, report = run_check(node.settings.home, monkeypatch)
    assert (status, counts(report)) == (1, {"size_mismatch": 1})
    (example,) = report["problems"]["size_mismatch"]["examples"]
    assert example.startswith(damaged.sop_instance_uid) and f"{damaged.size_bytes + 10} bytes" in example


def test_check_older_database_restored_lists_newer_files_as_orphans(
    node: NodeContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = node.settings.home / "lnm.sqlite3"
    older = tmp_path / "older.sqlite3"
    with sqlite3.connect(database) as live, sqlite3.connect(older) as copy:
        live.backup(copy)
    second = write_us_study(tmp_path / "second", seed=4, count=2)
    receive(node, second)
    with sqlite3.connect(older) as copy, sqlite3.connect(database) as live:
        copy.backup(live)  # the restore of a backup older than the spool
    status, report = run_check(node.settings.home, monkeypatch)
    assert (status, counts(report)) == (1, {"orphan_file": 2})
    assert report["counts"]["instance_rows"] == 3 and report["counts"]["incoming_files"] == 5


def test_check_expired_study_not_reported(node: NodeContext, monkeypatch: pytest.MonkeyPatch) -> None:
    with node.sessions.begin() as session:  # its job finished (retention waits for that)
        for job in session.scalars(select(Job)):
            job.state = JobState.FAILED
    later = replace(node, clock=lambda: node.clock() + timedelta(days=365))
    assert expire_studies(later)[0] == 1
    status, report = run_check(node.settings.home, monkeypatch)
    assert (status, counts(report)) == (0, {})
    assert report["counts"]["expired"] == 3 and report["counts"]["incoming_files"] == 0


def test_check_outputs_of_pending_delivery_gone_reported(
    node: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    with node.sessions() as session:
        (job,) = session.scalars(select(Job))
    sr = job.outputs["files"]["sr"]
    Path(sr).unlink()
    status, report = run_check(node.settings.home, monkeypatch)
    assert (status, counts(report)) == (1, {"pending_output_missing": 1})
    assert report["problems"]["pending_output_missing"]["examples"] == [f"job {job.id} sr: {sr}"]


def test_check_folders_of_missing_jobs_quarantine_and_tmp_reported(
    node: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool.of(node.settings.home)
    spool.outbox_dir(999)
    spool.work_dir(998)
    record = spool.quarantine(b"refused bytes", "test", {})
    (spool.area("quarantine") / json.loads(record.read_text())["file"]).unlink()
    (spool.area("quarantine") / "20260101T000000000000-abc.dcm").write_bytes(b"no record")
    (spool.area("tmp") / "left.part").write_bytes(b"partial")
    status, report = run_check(node.settings.home, monkeypatch)
    assert (status, counts(report)) == (
        1, {"folder_without_job": 2, "quarantine_unpaired": 2, "tmp_leftover": 1}
    )
    assert sorted(report["problems"]["folder_without_job"]["examples"]) == [
        str(spool.area("outbox") / "999"), str(spool.area("work") / "998")
    ]


def test_check_postgresql_deleted_file_reported(
    tmp_path: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with database_url("postgresql", tmp_path) as url:
        ctx = _node(tmp_path, tiny_models_dir, url)
        status, report = run_check(ctx.settings.home, monkeypatch, database=url)
        assert (status, counts(report)) == (0, {})
        gone = _instances(ctx)[0]
        Path(gone.path).unlink()
        os.makedirs(ctx.settings.home / "spool" / "outbox" / "777")
        status, report = run_check(ctx.settings.home, monkeypatch, database=url)
        assert (status, counts(report)) == (1, {"missing_file": 1, "folder_without_job": 1})
        ctx.sessions.kw["bind"].dispose()
