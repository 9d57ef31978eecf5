"""`lnm-node backup` of a live embedded node while instances arrive, restored and checked."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from dicom_node.scp import start_scp
from dicom_node.scu import send_instances
from kernel.settings import Destination
from phantom.us_dicom import write_us_study
from pipeline.serve import prepare
from tests.integration.ops.test_check import counts, run_check
from tests.integration.pipeline.conftest import make_settings, receive

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_backup_while_receiving_restored_copy_has_every_rows_file(
    tmp_path: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, out = tmp_path / "home", tmp_path / "backup"
    ctx = prepare(make_settings(home, tiny_models_dir))
    server = start_scp(ctx.settings, ctx.spool, ctx.sessions)
    scp = Destination(ae_title=ctx.settings.ae_title, host="127.0.0.1", port=server.server_address[1])
    studies = [write_us_study(tmp_path / f"study-{i}", seed=20 + i, count=2) for i in range(40)]
    stop, sent = threading.Event(), []

    def sender() -> None:  # a modality sending study after study while the backup runs
        for paths in studies:
            if stop.is_set():
                break
            statuses = send_instances(scp, paths, "MODALITY")
            sent.extend(status for status in statuses.values())

    thread = threading.Thread(target=sender)
    try:
        thread.start()
        while len(sent) < 4:  # the node has received something before the backup starts
            time.sleep(0.05)
        result = runner.invoke(app, ["backup", "--out", str(out), "--home", str(home)])
        stop.set()
        thread.join(timeout=120)
    finally:
        stop.set()
        server.shutdown()
    assert result.exit_code == 0, (result.output, result.exception)
    assert sent and set(sent) == {0}
    manifest = json.loads((out / "backup.json").read_text())
    assert manifest["schema_revision"] and manifest["home"] == str(home)
    incoming = manifest["spool"]["incoming"]
    assert incoming["linked"] == incoming["files"] >= manifest["rows"]["instances"] >= 4
    assert (out / "lnm.sqlite3").stat().st_mode & 0o777 == 0o600

    # restore, as README says: the node stopped, the backup put where the home was
    ctx.sessions.kw["bind"].dispose()
    shutil.move(home, tmp_path / "home.broken")
    shutil.copytree(out, home)
    status, report = run_check(home, monkeypatch)
    found = counts(report)
    assert "missing_file" not in found and "outside_spool" not in found, report
    assert set(found) <= {"orphan_file"}  # instances that arrived after the database's copy
    assert report["counts"]["instance_rows"] == manifest["rows"]["instances"]
    assert report["counts"]["incoming_files"] == incoming["files"]
    assert found.get("orphan_file", 0) == incoming["files"] - manifest["rows"]["instances"]
    assert status == (1 if found else 0)


def test_backup_refuses_postgresql_node_pointing_to_pg_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("LNM_DATABASE_URL", "postgresql+psycopg://lnm@127.0.0.1:1/lnm")
    result = runner.invoke(app, ["backup", "--out", str(tmp_path / "b"), "--home", str(tmp_path / "home")])
    assert result.exit_code == 1
    assert "pg_dump" in result.output and "Backup and restore" in result.output
    assert not (tmp_path / "b").exists()


def test_backup_other_filesystem_copies_files(
    tmp_path: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's folder")
    home = tmp_path / "home"
    ctx = prepare(make_settings(home, tiny_models_dir))
    receive(ctx, write_us_study(tmp_path / "study", seed=7, count=2))
    out = Path(tempfile.mkdtemp(dir=shm)) / "backup"
    try:
        result = runner.invoke(app, ["backup", "--out", str(out), "--home", str(home)])
        assert result.exit_code == 0, (result.output, result.exception)
        incoming = json.loads((out / "backup.json").read_text())["spool"]["incoming"]
        assert (incoming["files"], incoming["copied"], incoming["linked"]) == (2, 2, 0)
        copies = sorted((out / "spool" / "incoming").rglob("*.dcm"))
        assert [p.stat().st_mode & 0o777 for p in copies] == [0o600, 0o600]
        originals = sorted((home / "spool" / "incoming").rglob("*.dcm"))
        assert [p.read_bytes() for p in copies] == [p.read_bytes() for p in originals]
        status, report = run_check(out, monkeypatch)  # the backup itself, checked where it is
        # its rows name the home's files: a node is restored into its home's path (README)
        assert (status, counts(report)) == (1, {"outside_spool": 2, "orphan_file": 2})
    finally:
        shutil.rmtree(out.parent)
