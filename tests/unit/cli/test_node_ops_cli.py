"""`lnm-node check` and `backup`: usage errors exit 2 and change nothing; a home without a
database exits 1 in one line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from cli.main import app
from db.session import alembic_config, make_sessionmaker

runner = CliRunner(env={"COLUMNS": "200"})


def test_check_home_missing_usage_error_nothing_made(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--home", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_check_home_without_database_fails_in_one_line_creates_none(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cli.main", "check", "--home", str(tmp_path)],
                            check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert "cannot use the database" in result.stdout and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database file made


def test_backup_out_not_empty_usage_error(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "earlier").write_text("x")
    result = runner.invoke(app, ["backup", "--out", str(tmp_path / "b"), "--home", str(tmp_path / "home")])
    assert result.exit_code == 2 and "not empty" in result.output


def test_backup_out_inside_home_usage_error(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    out = tmp_path / "home" / "backup"
    result = runner.invoke(app, ["backup", "--out", str(out), "--home", str(tmp_path / "home")])
    assert result.exit_code == 2 and "outside the home" in result.output
    assert not out.exists()


def test_check_database_not_a_nodes_fails_in_one_line(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "lnm.sqlite3") as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    result = runner.invoke(app, ["check", "--home", str(tmp_path)])
    assert result.exit_code == 1 and "no schema revision: not a node database" in result.output


def test_check_database_too_old_to_read_fails_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lnm.sqlite3'}"
    make_sessionmaker(url).kw["bind"].dispose()
    command.downgrade(alembic_config(url), "0001")  # before job.shadow
    result = runner.invoke(app, ["check", "--home", str(tmp_path)])
    assert result.exit_code == 1, (result.output, result.exception)
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert f"cannot read it at schema revision 0001 (this node's: {head})" in result.output
