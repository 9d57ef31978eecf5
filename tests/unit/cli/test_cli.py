"""The `lnm-node` command line, driven through typer's runner (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support.models import package_model

runner = CliRunner()


def test_models_list_json_packaged_default_model_listed(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    default = next(row for row in rows if row["key"] == "ynet-busi")
    assert default["family"] == "segcls" and default["inputs"][0]["rule"] == "bmode"


def test_models_verify_tiny_registry_passes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    package_model(tmp_path / "models" / "tiny-ynet")
    monkeypatch.setenv("LNM_MODELS_DIR", str(tmp_path / "models"))
    result = runner.invoke(app, ["models", "verify", "--home", str(tmp_path / "home")])
    assert result.exit_code == 0, result.output
    assert "tiny-ynet@0.1.0" in result.output


def test_models_verify_tampered_weights_fails(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    spec = package_model(tmp_path / "models" / "tiny-ynet")
    spec.weights_path.write_bytes(spec.weights_path.read_bytes() + b"x")
    monkeypatch.setenv("LNM_MODELS_DIR", str(tmp_path / "models"))
    result = runner.invoke(app, ["models", "verify", "--home", str(tmp_path / "home")])
    assert result.exit_code == 1


def test_models_list_and_verify_name_the_folders_left_out(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    package_model(tmp_path / "models" / "tiny-ynet")
    package_model(tmp_path / "home" / "models" / "tiny-ynet-copy")  # the same version, twice
    package_model(tmp_path / "home" / "models" / "tiny-other", key="tiny-other")
    monkeypatch.setenv("LNM_MODELS_DIR", str(tmp_path / "models"))

    listed = runner.invoke(app, ["models", "list", "--json", "--home", str(tmp_path / "home")])
    assert listed.exit_code == 0, listed.output
    assert [row["key"] for row in json.loads(listed.stdout)] == ["tiny-other"]
    assert listed.stderr.count("tiny-ynet@0.1.0 is registered twice") == 2
    verified = runner.invoke(app, ["models", "verify", "--home", str(tmp_path / "home")])
    assert verified.exit_code == 1
    output = "".join(verified.output.split())  # rich folds long lines anywhere
    assert "tiny-other@0.1.0" in output and "verificationfailed" in output
    assert output.count("registeredtwice") == 2 and "models/tiny-ynet-copy" in output


def test_status_json_fresh_home_counts_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"]["studies"] == {} and data["counts"]["jobs"] == {} and data["jobs"] == []


def test_status_counts_quarantined_instances(tmp_path: Path) -> None:
    """Refused instances were counted only by /metrics: status said nothing of them."""
    from kernel.spool import Spool

    spool = Spool.under(tmp_path)
    spool.quarantine(b"not dicom", "header does not parse", {"status": "0xC210"})
    result = runner.invoke(app, ["status", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["instances"] == {"RECEIVED": 0, "QUARANTINED": 1}
    text = runner.invoke(app, ["status", "--home", str(tmp_path)])
    assert "instances: RECEIVED 0, QUARANTINED 1" in text.output


def test_instances_json_fresh_home_is_empty_list(tmp_path: Path) -> None:
    result = runner.invoke(app, ["instances", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_instances_json_streamed_is_the_json_of_the_whole_list(tmp_path: Path) -> None:
    from db.instances import ReceivedInstance, record_instance
    from db.session import make_sessionmaker
    from db.views import instance_rows

    sessions = make_sessionmaker(f"sqlite:///{tmp_path / 'lnm.sqlite3'}")
    with sessions.begin() as session:
        for n in range(3):
            record_instance(session, ReceivedInstance(
                "1.2.3", "1.2.3.1", f"1.2.3.1.{n}", "1.2.840.10008.5.1.4.1.1.6.1",
                "1.2.840.10008.1.2.1", f"/spool/{n}.dcm", 10))
    with sessions() as session:
        whole = json.dumps(instance_rows(session), indent=2, default=str)
    sessions.kw["bind"].dispose()
    result = runner.invoke(app, ["instances", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == whole + "\n"


def test_serve_invalid_ae_title_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--home", str(tmp_path), "--ae-title", "WAY_TOO_LONG_AE_TITLE"])
    assert result.exit_code == 2
    assert "AE title" in result.output


@pytest.mark.parametrize(
    ("command", "env", "told"),
    [
        (["status"], {"LNM_QUIET_SECONDS": "-1", "LNM_PORT": "abc"},
         ["invalid setting LNM_PORT: Input should be a valid integer, unable to parse string as an integer",
          "invalid setting LNM_QUIET_SECONDS: Input should be greater than or equal to 0"]),
        (["serve", "--quiet-seconds", "-3"], {},
         [("invalid setting LNM_QUIET_SECONDS (given on the command line): Input should be greater "
           "than or equal to 0")]),
        (["deidentify", "{home}", "{home}/out"], {"LNM_QUIET_SECONDS": "-1"},
         ["invalid setting LNM_QUIET_SECONDS: Input should be greater than or equal to 0"]),
        (["send", "{home}", "--to", "PACS@127.0.0.1:23999"], {"LNM_QUIET_SECONDS": "-1"},
         ["invalid setting LNM_QUIET_SECONDS: Input should be greater than or equal to 0"]),
        (["status"], {"LNM_DESTINATIONS": "garbage"},
         ["invalid setting LNM_DESTINATIONS: destination 'garbage' is not of the form AE@HOST:PORT[+tls]"]),
    ],
)  # fmt: skip
def test_invalid_settings_one_line_each_naming_the_variable_exit_2(
    tmp_path: Path, command: list[str], env: dict[str, str], told: list[str]
) -> None:
    """pydantic's report took four lines per setting (its input, a link to its docs), and
    `deidentify` and `send` ended in a traceback."""
    args = [arg.format(home=tmp_path) for arg in command]
    result = runner.invoke(app, [*args, "--home", str(tmp_path)] if args[0] in ("status", "serve") else args,
                           env={**env, "COLUMNS": "80"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.splitlines() == told


def test_scope_test_help_names_its_argument_study_dir() -> None:
    """typer 0.29 prints an argument without a metavar under its parameter's name, where
    earlier versions upper-cased it: '{study_dir}' in the usage line, "Missing argument
    'study_dir'"."""
    result = runner.invoke(app, ["scope", "test", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    (usage,) = [line for line in result.output.splitlines() if "Usage:" in line]
    assert [word.strip("{}") for word in usage.split("[OPTIONS]")[1].split()] == ["STUDY_DIR"]
    assert "study_dir" not in result.output
    missing = runner.invoke(app, ["scope", "test"], env={"COLUMNS": "200"})
    assert missing.exit_code == 2 and "Missing argument 'STUDY_DIR'" in missing.output


def _leaf_commands(group, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_argument_is_shown_upper_case_in_its_usage_line() -> None:
    """A new command's arguments get a metavar too (``typer.Argument(metavar=...)``)."""
    import typer

    for path, command in _leaf_commands(typer.main.get_command(app)):
        names = [p.name.upper() for p in command.params if p.param_type_name == "argument"]
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300"})
        (usage,) = [line for line in result.output.splitlines() if "Usage:" in line]
        shown = [word.strip("{}[].") for word in usage.split("[OPTIONS]")[1].split()]
        assert shown == names, (path, usage)
