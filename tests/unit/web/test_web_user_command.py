"""`lnm-node web-user NAME`: prints a NAME:HASH entry that settings accept and that verifies."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from kernel.settings import Settings
from web.passwords import verify_password


def test_web_user_password_stdin_prints_entry_settings_accept(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["web-user", "admin", "--password-stdin"],
                                input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    entry = result.stdout.strip()
    name, _, encoded = entry.partition(":")
    assert name == "admin" and verify_password("correct horse battery", encoded)
    assert "correct horse" not in entry
    assert Settings(home=tmp_path, web_users=entry).web_users == [entry]


def test_web_user_short_password_exits_2() -> None:
    result = CliRunner().invoke(app, ["web-user", "admin", "--password-stdin"], input="short\n")
    assert result.exit_code == 2


def test_web_user_bad_name_exits_2() -> None:
    result = CliRunner().invoke(app, ["web-user", "ad:min", "--password-stdin"],
                                input="correct horse battery\n")
    assert result.exit_code == 2
