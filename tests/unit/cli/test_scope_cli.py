"""`lnm-node scope show|set|test` through typer's runner, on a tiny model with a breast rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from db.models import AuditEvent
from db.session import make_sessionmaker
from inference.scope import BREAST_RULE
from phantom.us_dicom import write_us_study
from tests.support.models import package_model

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node whose only model, tiny-ynet, asks for breast studies (no gate)."""
    rule = BREAST_RULE.model_dump(exclude_defaults=True)
    package_model(tmp_path / "models" / "tiny-ynet", seed=0, scope={"rule": rule})
    monkeypatch.setenv("LNM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LNM_DEFAULT_MODEL", "tiny-ynet")
    return tmp_path / "home"


def _json(*args: str) -> list[dict]:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_show_prints_the_spec_rule_and_gate(home: Path) -> None:
    (row,) = _json("scope", "show", "--home", str(home))
    assert row["model"] == "tiny-ynet@0.1.0" and row["rule"] == BREAST_RULE.text()
    assert row["rule_source"] == "spec" and row["gate"] == "off"


def test_set_rule_all_is_audited_and_shown_as_the_site_rule(home: Path) -> None:
    (row,) = _json(
        "scope",
        "set",
        "tiny-ynet",
        "--rule",
        "all",
        "--gate",
        "off",
        "--home",
        str(home),
        "--actor",
        "alice",
    )
    assert (row["rule"], row["rule_source"]) == ("all", "site")
    assert _json("scope", "show", "tiny-ynet", "--home", str(home))[0]["rule"] == "all"
    with make_sessionmaker(f"sqlite:///{home / 'lnm.sqlite3'}")() as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "scope_set"))
    assert event.actor == "alice" and event.details["after"] == {"rule": {}, "gate": False}
    (back,) = _json("scope", "set", "tiny-ynet", "--reset", "--home", str(home))
    assert back["rule_source"] == "spec"


def test_set_refuses_a_bad_rule_naming_the_problem(home: Path) -> None:
    result = runner.invoke(
        app, ["scope", "set", "tiny-ynet", "--rule", "colour=red", "--home", str(home)]
    )
    assert result.exit_code != 0 and "name=value" in result.output


def test_scope_test_says_why_a_study_would_not_run_and_that_it_would_once_opened(
    home: Path, tmp_path: Path
) -> None:
    study = tmp_path / "neck"
    write_us_study(study, seed=5, count=1, body_part="NECK")
    (row,) = _json("scope", "test", str(study), "--home", str(home))
    assert row["run"] is False and "NECK" in row["reason"] and row["rule"] == BREAST_RULE.text()
    _json("scope", "set", "tiny-ynet", "--rule", "all", "--home", str(home))
    (row,) = _json("scope", "test", str(study), "--home", str(home))
    assert (
        row["run"] is True and row["reason"] == "runs (gate off)" and row["missing_input"] is None
    )


def test_scope_test_study_of_two_patients_runs_no_model_as_the_node_would(
    home: Path, tmp_path: Path
) -> None:
    import pydicom

    study = tmp_path / "mixed"
    paths = write_us_study(study, seed=6, count=2, body_part="BREAST")
    stray = pydicom.dcmread(paths[1])
    stray.PatientID = "ANOTHER"
    stray.save_as(paths[1], enforce_file_format=True)
    (row,) = _json("scope", "test", str(study), "--home", str(home))
    assert row["run"] is False and row["rule"] == "one patient per study"
    assert "name 2 patients" in row["reason"] and "ANOTHER" not in row["reason"]


def test_show_table_prints_a_rule_with_brackets_as_written(home: Path) -> None:
    """A description pattern's character class is text: rich once dropped '[a-z]' as markup."""
    rule = "description=(?i)\\b[a-z]*lymph[/a-z]*"
    result = runner.invoke(app, ["scope", "set", "tiny-ynet", "--rule", rule, "--home", str(home)])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["scope", "show", "--home", str(home)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert rule in shown.output


def test_scope_test_folder_that_does_not_exist_exits_2(home: Path, tmp_path: Path) -> None:
    """It printed every model's "no readable series" and exited 0."""
    missing = tmp_path / "no-such-study"
    result = runner.invoke(app, ["scope", "test", str(missing), "--home", str(home)],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.output and "no readable series" not in result.output


@pytest.mark.parametrize(
    ("case", "code", "told"),
    [
        ("--limit 0", 2, "--limit"),
        ("--layer nosuch", 2, "its network has no layer 'nosuch'"),
        ("empty out-of-domain folder", 1, "no gate fitted: out-of-domain set empty ("),
        ("empty in-domain folder", 1, "no gate fitted: the inner-train images of "),
    ],
)
def test_fit_gate_bad_input_one_line_nothing_written(
    home: Path, tmp_path: Path, case: str, code: int, told: str
) -> None:
    """Each ended in a traceback (ZeroDivisionError, AttributeError, ValueError)."""
    from tests.unit.training.conftest import write_image_folder

    model = tmp_path / "models" / "tiny-ynet"
    (model / "holdout.json").write_text(json.dumps({"groups": ["g0"]}))
    spec_before = (model / "spec.json").read_text()
    images = write_image_folder(tmp_path / "images", count=40)
    (tmp_path / "empty").mkdir()
    args = {
        "--limit 0": [str(images), "--limit", "0", "--ood-images", f"other={images}"],
        "--layer nosuch": [str(images), "--layer", "nosuch"],
        "empty out-of-domain folder": [str(images), "--ood-dicom", f"empty={tmp_path / 'empty'}"],
        "empty in-domain folder": [str(tmp_path / "empty")],
    }[case]
    if case == "empty in-domain folder":
        (tmp_path / "empty" / "labels.csv").write_text("image,malignant\n")
    result = runner.invoke(app, ["scope", "fit-gate", "tiny-ynet", *args, "--home", str(home)],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert told in " ".join(result.output.split())
    assert (model / "spec.json").read_text() == spec_before
    assert not list(model.glob("gate-*"))
