"""The admin commands (labels, dataset, train, compare, cv-summary, models ...) through typer's runner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from db.models import AuditEvent, Instance, ModelVersion, PathologyLabel, Series, Study
from db.session import make_sessionmaker
from inference.calibration import calibrate
from inference.registry import Registry
from kernel.settings import load_settings
from tests.support.models import package_model
from tests.unit.training.conftest import write_image_folder

runner = CliRunner()


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose registry holds tiny-ynet 0.1.0 and 0.2.0."""
    package_model(tmp_path / "models" / "tiny-ynet-0.1.0", seed=0)
    package_model(tmp_path / "models" / "tiny-ynet-0.2.0", seed=1, version="0.2.0")
    monkeypatch.setenv("LNM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LNM_DEFAULT_MODEL", "tiny-ynet")
    return tmp_path / "home"


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_labels_import_matches_received_study_reports_counts(node: Path, tmp_path: Path) -> None:
    _invoke("status", "--home", str(node))
    sessions = make_sessionmaker(_database_url(node))
    with sessions.begin() as session:
        session.add(Study(study_instance_uid="1.2.3"))
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,outcome,node_station,date\n1.2.3,metastatic,IV,2026-01-01\n"
                      "1.2.9,benign,,\n")  # fmt: skip
    assert "2 labels imported: 1 matched, 1 unmatched" in _invoke(
        "labels", "import", str(labels), "--home", str(node)
    )
    with sessions() as session:
        rows = session.scalars(select(PathologyLabel).order_by(PathologyLabel.id)).all()
        assert [r.study_id is not None for r in rows] == [True, False]


def test_labels_import_bad_row_exits_1_naming_row(node: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,outcome\n1.2.3,benign\n1.2.4,perhaps\n")
    result = runner.invoke(app, ["labels", "import", str(labels), "--home", str(node)])
    assert result.exit_code == 1 and "row 3" in result.output


@pytest.mark.parametrize("model", [[], ["--model", "tiny-ynet"]])
def test_dataset_build_dicom_folder_bad_label_row_exits_1_naming_row(
    node: Path, tmp_path: Path, model: list[str]
) -> None:
    """Without --model, a bad row of --labels ended in a LabelFileError traceback."""
    labels = tmp_path / "labels.csv"
    labels.write_text("study_instance_uid,outcome\n1.2.3,benign\n1.2.4,perhaps\n")
    (tmp_path / "dicom").mkdir()
    result = runner.invoke(app, ["dataset", "build", "--dicom-folder", str(tmp_path / "dicom"),
                                 "--labels", str(labels), *model, "--out", str(tmp_path / "ds"),
                                 "--home", str(node)], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.splitlines() == [
        f"{labels} row 3: outcome 'perhaps' must be metastatic, benign or unknown"
    ]
    assert not (tmp_path / "ds").exists()


def test_cv_summary_run_folder_missing_is_a_usage_error_exit_2(tmp_path: Path) -> None:
    """A run folder named that does not exist is a usage error (``cli.options.model_spec``), as
    typer's own ``exists=True`` makes it; it exited 1."""
    result = runner.invoke(app, ["cv-summary", str(tmp_path / "gone"), "--dataset", str(tmp_path)],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'gone'}: no such run folder" in result.output


def _database_url(home: Path) -> str:
    from kernel.settings import load_settings

    return load_settings(home=home).database_url


def test_models_promote_rollback_retire_audited(node: Path) -> None:
    home = ["--home", str(node)]
    _invoke("models", "promote", "tiny-ynet@0.1.0", *home)
    assert "was tiny-ynet@0.1.0" in _invoke("models", "promote", "tiny-ynet@0.2.0", *home)
    assert "rolled back tiny-ynet to 0.1.0" in _invoke("models", "rollback", "tiny-ynet", *home)
    _invoke("models", "retire", "tiny-ynet@0.2.0", *home)
    refused = runner.invoke(app, ["models", "promote", "tiny-ynet@0.2.0", *home])
    assert refused.exit_code == 1 and "retired" in refused.output
    sessions = make_sessionmaker(_database_url(node))
    with sessions() as session:
        live = session.scalars(select(ModelVersion).where(ModelVersion.enabled.is_(True))).all()
        assert [r.version for r in live] == ["0.1.0"]
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions.count("promote") == 2 and "rollback" in actions and "retire" in actions
    shown = json.loads(_invoke("models", "show", "tiny-ynet", "--json", *home))
    states = {v["version"]: (v["enabled"], v["retired"]) for v in shown["versions"]}
    assert states == {"0.1.0": (True, False), "0.2.0": (False, True)}


def test_models_shadow_live_version_refused_candidate_flagged(node: Path) -> None:
    home = ["--home", str(node)]
    _invoke("models", "promote", "tiny-ynet@0.1.0", *home)
    assert runner.invoke(app, ["models", "shadow", "tiny-ynet@0.1.0", *home]).exit_code == 1
    _invoke("models", "shadow", "tiny-ynet@0.2.0", *home)
    with make_sessionmaker(_database_url(node))() as session:
        row = session.scalars(select(ModelVersion).where(ModelVersion.version == "0.2.0")).one()
        assert row.shadow and not row.enabled


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "{ref}", "{folder}", "--out", "{out}"],
        ["compare", "{ref}", "tiny-ynet@0.1.0", "{folder}", "--out", "{out}"],
        ["models", "promote", "{ref}"],
        ["models", "retire", "{ref}"],
        ["models", "shadow", "{ref}"],
        ["models", "calibrate", "{ref}", "{folder}", "--version", "9.9.9", "--out", "{out}"],
        ["scope", "show", "{key}"],
        ["scope", "fit-gate", "{key}", "phantom"],
        ["models", "show", "{key}"],
    ],
)
@pytest.mark.parametrize(("ref", "key"), [("tiny-ynet@9.9.9", "nosuch"), ("Bad@1", "Bad")])
def test_model_reference_not_registered_exits_2_in_every_command(
    node: Path, tmp_path: Path, command: list[str], ref: str, key: str
) -> None:
    """A model reference or key the user typed that names no model is a usage error (exit 2);
    `evaluate` and `compare` exited 1, the `models` and `scope` commands 2."""
    folder = write_image_folder(tmp_path / "images")
    args = [a.format(ref=ref, key=key, folder=folder, out=tmp_path / "out") for a in command]
    result = runner.invoke(app, [*args, "--home", str(node)], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert ("not registered" in result.output or "not 'key'" in result.output
            or "neither in the database nor in the registry" in result.output)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_models_rollback_twice_goes_back_through_the_promotions(node: Path, tmp_path: Path) -> None:
    """A second rollback went back to the version just rolled back from (0.3.0, 0.2.0, 0.3.0 ...)."""
    package_model(tmp_path / "models" / "tiny-ynet-0.3.0", seed=2, version="0.3.0")
    home = ["--home", str(node)]
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        _invoke("models", "promote", f"tiny-ynet@{version}", *home)
    assert "rolled back tiny-ynet to 0.2.0" in _invoke("models", "rollback", "tiny-ynet", *home)
    assert "rolled back tiny-ynet to 0.1.0" in _invoke("models", "rollback", "tiny-ynet", *home)
    nowhere = runner.invoke(app, ["models", "rollback", "tiny-ynet", *home])
    assert nowhere.exit_code == 1
    assert "tiny-ynet@0.1.0 has no earlier enabled version" in nowhere.output
    _invoke("models", "promote", "tiny-ynet@0.3.0", *home)  # promoted again: back to 0.1.0
    assert "rolled back tiny-ynet to 0.1.0" in _invoke("models", "rollback", "tiny-ynet", *home)
    with make_sessionmaker(_database_url(node))() as session:
        live = session.scalars(select(ModelVersion).where(ModelVersion.enabled.is_(True))).all()
    assert [r.version for r in live] == ["0.1.0"]


def test_models_rollback_without_history_exits_1(node: Path) -> None:
    _invoke("models", "promote", "tiny-ynet@0.2.0", "--home", str(node))
    result = runner.invoke(app, ["models", "rollback", "tiny-ynet", "--home", str(node)])
    assert result.exit_code == 1 and "no earlier enabled version" in result.output


def test_dataset_build_then_train_packages_loadable_version(node: Path, tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "images")
    built = _invoke(
        "dataset",
        "build",
        "--image-folder",
        str(folder),
        "--out",
        str(tmp_path / "ds"),
        "--folds",
        "2",
    )
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["n"] == 12 and {r["fold"] for r in manifest["rows"]} == {0, 1}
    assert manifest["fold_balance"]["thin_folds"]  # 12 images in 2 folds: too few to measure
    assert manifest["fold_balance"]["warning"] in " ".join(built.split())
    out = _invoke("train", "tiny-ynet", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--folds", "2",
                  "--epochs", "1", "--batch-size", "4", "--package", "0.3.0",
                  "--operating-point", "sensitivity=0.90", "--calibration", "temperature",
                  "--home", str(node))  # fmt: skip
    assert "packaged tiny-ynet@0.3.0" in out and "one fold, not an ensemble" in " ".join(
        out.split()
    )
    assert "folds have fewer than 5 positive or negative test cases" in " ".join(out.split())
    spec = Registry.load(node / "models").get("tiny-ynet@0.3.0", "tiny-ynet")
    assert spec.architecture == "ynet" and "auc" in spec.metrics and "packaged_fold" in spec.metrics
    # calibration and threshold fitted on the packaged fold's inner validation split
    fold_dir = tmp_path / "run" / f"fold_{int(spec.metrics['packaged_fold'])}"
    with np.load(fold_dir / "validation.npz") as validation:
        y, p = validation["malignant"], validation["probability"]
    assert spec.calibration is not None and spec.calibration.temperature > 0
    assert (
        spec.calibration.figures["n"] == len(y) and "inner validation" in spec.calibration.fitted_on
    )
    assert spec.operating_point.policy == "sensitivity=0.90"
    called = calibrate(spec.calibration, p) >= spec.threshold
    assert called[y == 1].mean() >= 0.9
    assert spec.operating_point.figures["sensitivity"] == pytest.approx(called[y == 1].mean())
    card = spec.card_path.read_text()
    assert "## Calibration and operating point" in card and "`sensitivity=0.90`" in card
    assert "ECE (10 equal-width bins)" in card
    refused = runner.invoke(app, ["train", "tiny-ynet", str(tmp_path / "ds"), "--out",
                                  str(tmp_path / "run"), "--operating-point", "f1"])  # fmt: skip
    assert refused.exit_code == 2 and "--operating-point" in refused.output  # before training
    assert "tiny-ynet@0.3.0" in [
        s.ref for s in Registry.from_settings(load_settings(home=node)).specs()
    ]
    assert json.loads((tmp_path / "run" / "cv_metrics.json").read_text())["pooled"]["n"] == 12
    table = tmp_path / "table.md"
    _invoke("cv-summary", str(tmp_path / "run"), "--dataset", str(tmp_path / "ds"), "--size", "64",
            "--folds", "2", "--markdown", str(table), "--calibration", "temperature")  # fmt: skip
    assert table.read_text().startswith("| configuration | n | AUC (95% CI)")
    assert "| Brier | ECE |" in table.read_text()
    assert "| run (temperature, youden) | 12 |" in table.read_text()

    # another dataset never re-pools the run: before, its oof.npz was rewritten with other
    # images' names and labels under the run's probabilities; the fold count is the run's own
    other = write_image_folder(tmp_path / "other")
    labels = other / "labels.csv"
    labels.write_text(labels.read_text().replace(",g", ",other-g"))
    pooled = (tmp_path / "run" / "oof.npz").read_bytes()
    refused = runner.invoke(app, ["cv-summary", str(tmp_path / "run"), "--dataset", str(other),
                                  "--size", "64"])  # fmt: skip
    assert refused.exit_code == 1 and "notthedatasetitwastrainedon" in "".join(
        refused.output.split()
    )
    assert (tmp_path / "run" / "oof.npz").read_bytes() == pooled
    _invoke("cv-summary", str(tmp_path / "run"), "--dataset", str(tmp_path / "ds"), "--size", "64")


def test_compare_two_evaluate_outputs_pairs_the_dice_of_lesion_images(tmp_path: Path) -> None:
    import torch

    from inference.networks.ynet import YNet
    from training.evaluate import evaluate

    folder = write_image_folder(tmp_path / "images")
    metrics = {}
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        metrics[name] = evaluate(YNet(), folder, tmp_path / name, size=64)
    _invoke("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"))
    dice = json.loads((tmp_path / "cmp" / "compare.json").read_text())["dice"]
    assert dice["n"] == metrics["a"]["dice_n"] > 0
    assert dice["dice_mean_a"] == pytest.approx(metrics["a"]["dice_mean"], abs=1e-5)
    assert dice["dice_mean_b"] == pytest.approx(metrics["b"]["dice_mean"], abs=1e-5)
    assert dice["p_value"] is not None


def test_compare_two_oof_runs_delong_p_value_and_paired_dice(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    lesion = np.arange(40) % 4 != 0  # 30 lesion images; the Dice of the others does not count
    dice = {"a": rng.uniform(0.6, 0.9, 40), "b": rng.uniform(0.3, 0.6, 40)}
    for name, noise in (("a", 0.5), ("b", 2.0)):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "oof.npz", index=np.arange(40)[::-1], malignant=y[::-1],
                 probability=(y + rng.normal(0, noise, 40))[::-1], dice=dice[name][::-1],
                 lesion=lesion[::-1])  # fmt: skip
    _invoke("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"))
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert (
        result["n"] == 40 and 0.0 <= result["p_value"] <= 1.0 and result["auc_a"] > result["auc_b"]
    )
    assert result["dice"]["n"] == 30 and result["dice"]["p_value"] < 0.001
    assert result["dice"]["dice_mean_a"] == pytest.approx(float(dice["a"][lesion].mean()))
    for name in ("a", "b"):  # pooled before runs kept lesion flags: AUC only
        with np.load(tmp_path / name / "oof.npz") as oof:
            kept = {k: oof[k] for k in oof.files if k != "lesion"}
        np.savez(tmp_path / name / "oof.npz", **kept)
    _invoke("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "old"))
    assert "dice" not in json.loads((tmp_path / "old" / "compare.json").read_text())


def test_train_hybrid_with_pretrain_encoder_saved_and_folds_run(node: Path, tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    _invoke("train", "hyb", str(folder), "--network", "hybrid-swin", "--backbone", "swin-f12",
            "--pretrain", str(folder),
            "--out", str(run), "--folds", "2", "--epochs", "1", "--size", "64", "--batch-size", "4",
            "--home", str(node))  # fmt: skip
    assert (run / "pretrain" / "encoder.pt").is_file()
    assert json.loads((run / "cv_metrics.json").read_text())["pooled"]["dice_mean"] is not None


def test_models_calibrate_repackages_same_weights_as_new_version_not_live(
    node: Path, tmp_path: Path
) -> None:
    folder = write_image_folder(tmp_path / "images")
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"groups": ["g0", "g1", "g2", "g3", "g8", "g9", "g10", "g11"]}))
    out = _invoke("models", "calibrate", "tiny-ynet@0.1.0", str(folder), "--version", "0.1.1",
                  "--groups", str(groups), "--operating-point", "specificity=0.75",
                  "--out", str(tmp_path / "fit"), "--home", str(node))  # fmt: skip
    assert "packaged tiny-ynet@0.1.1" in out and "(not live)" in out
    registry = Registry.from_settings(load_settings(home=node))
    base, new = registry.get("tiny-ynet@0.1.0", "x"), registry.get("tiny-ynet@0.1.1", "x")
    assert new.folder.parent == node / "models" and new.weights_sha256 == base.weights_sha256
    assert new.calibration.method.value == "temperature" and new.calibration.figures["n"] == 12
    assert new.operating_point.policy == "specificity=0.75"
    with (tmp_path / "fit" / "cases.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    y = np.array([int(r["malignant"]) for r in rows])
    p = calibrate(new.calibration, [float(r["network_probability"]) for r in rows])
    assert ((p < new.threshold)[y == 0]).mean() >= 0.75
    assert "Re-packaged from tiny-ynet@0.1.0" in new.card_path.read_text()
    again = runner.invoke(app, ["models", "calibrate", "tiny-ynet@0.1.0", str(folder), "--version",
                                "0.1.1", "--out", str(tmp_path / "fit2"), "--home", str(node)])  # fmt: skip
    assert again.exit_code == 2 and "registered already" in again.output
    # the version of the packaged model itself, in the other models folder: refused before any
    # work (it was packaged, and every later load of the registry failed: "registered twice")
    same = runner.invoke(app, ["models", "calibrate", "tiny-ynet@0.1.0", str(folder), "--version",
                               "0.1.0", "--out", str(tmp_path / "fit3"), "--home", str(node)])  # fmt: skip
    assert same.exit_code == 2 and "tiny-ynet@0.1.0 is registered already" in same.output
    assert not (tmp_path / "fit3").exists() and not (node / "models" / "tiny-ynet-0.1.0").exists()
    reloaded = Registry.from_settings(load_settings(home=node))  # still loads
    assert reloaded.get("tiny-ynet@0.1.0", "x").folder == base.folder


@pytest.mark.parametrize(
    ("text", "code", "told"),
    [
        ('{"groups": [', 1, "not a hold-out file with a 'groups' list (Expecting value: line 1"),
        ('{"group": ["g0"]}', 1, "not a hold-out file with a 'groups' list ('groups')"),
        (None, 2, "does not exist"),
    ],
)
def test_models_calibrate_groups_file_not_usable_one_line_nothing_packaged(
    node: Path, tmp_path: Path, text: str | None, code: int, told: str
) -> None:
    """Malformed JSON (or no 'groups' list) ended in a JSONDecodeError (KeyError) traceback."""
    folder = write_image_folder(tmp_path / "images")
    groups = tmp_path / "groups.json"
    if text is not None:
        groups.write_text(text)
    result = runner.invoke(app, ["models", "calibrate", "tiny-ynet@0.1.0", str(folder), "--version",
                                 "0.1.1", "--groups", str(groups), "--out", str(tmp_path / "fit"),
                                 "--home", str(node)], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    output = " ".join(result.output.split())
    assert str(groups) in output and told in output
    assert not (tmp_path / "fit").exists() and not (node / "models").exists()


def _receive(home: Path, files: list[Path]) -> None:
    """Record ``files`` in the node's database as the receive stage does (study, series,
    instance rows with their paths and patient keys)."""
    import pydicom

    from kernel.patient import patient_key

    with make_sessionmaker(_database_url(home)).begin() as session:
        for path in files:
            header = pydicom.dcmread(path, stop_before_pixels=True)
            study = session.scalar(select(Study).where(
                Study.study_instance_uid == header.StudyInstanceUID)) or Study(
                study_instance_uid=header.StudyInstanceUID)  # fmt: skip
            series = session.scalar(select(Series).where(
                Series.series_instance_uid == header.SeriesInstanceUID)) or Series(
                study=study, series_instance_uid=header.SeriesInstanceUID)  # fmt: skip
            session.add(Instance(study=study, series=series, sop_instance_uid=header.SOPInstanceUID,
                                 sop_class_uid=header.SOPClassUID, transfer_syntax_uid="1.2.840.10008.1.2.1",
                                 path=str(path), size_bytes=path.stat().st_size,
                                 patient_key=patient_key(header)))  # fmt: skip


def test_dataset_build_from_node_lists_what_it_left_out_by_uid_patient_ids_keyed(
    node: Path, tmp_path: Path
) -> None:
    """Received studies without a label and labels matching no study were in no list; labels
    imported before their study arrived were never matched (rematch was never called); the
    PatientID was the group, in clear (found last session)."""
    import pydicom

    from phantom.us_dicom import write_us_study

    _invoke("status", "--home", str(node))
    studies = [
        write_us_study(tmp_path / "dicom" / f"s{seed}", seed=seed, count=2) for seed in range(3)
    ]
    uids = [str(pydicom.dcmread(files[0]).StudyInstanceUID) for files in studies]
    labels = tmp_path / "labels.csv"
    labels.write_text(f"study_instance_uid,outcome\n{uids[0]},benign\n{uids[1]},metastatic\n"
                      "1.2.826.99,benign\n")  # fmt: skip
    assert "3 labels imported: 0 matched, 3 unmatched" in _invoke(
        "labels", "import", str(labels), "--home", str(node)
    )  # before the studies arrived
    _receive(node, [path for files in studies for path in files])
    out = _invoke("dataset", "build", "--from-node", "--out", str(tmp_path / "ds"), "--folds", "2",
                  "--home", str(node))  # fmt: skip
    assert "4 rows (2 positive)" in out
    assert "left out: 1 study without a label, 1 label matching no study" in " ".join(out.split())
    text = (tmp_path / "ds" / "manifest.json").read_text()
    left_out = json.loads(text)["left_out"]
    assert left_out["studies_without_label"] == {"n": 1, "uids": [uids[2]]}
    assert left_out["labels_without_study"]["labels"] == [{"level": "study", "uid": "1.2.826.99"}]
    for files in studies:
        patient = str(pydicom.dcmread(files[0]).PatientID)
        assert patient and patient not in text
        assert patient not in (tmp_path / "ds" / "manifest.csv").read_text()


def test_labels_reimport_changing_a_known_outcome_needs_replace_reported_and_audited(
    node: Path, tmp_path: Path
) -> None:
    """A second import overwrote metastatic with benign silently (found last session)."""
    _invoke("status", "--home", str(node))
    sessions = make_sessionmaker(_database_url(node))
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("study_instance_uid,outcome\n1.2.3,metastatic\n1.2.4,unknown\n1.2.5,benign\n")
    second.write_text("study_instance_uid,outcome\n1.2.3,benign\n1.2.4,metastatic\n1.2.5,benign\n")
    _invoke("labels", "import", str(first), "--home", str(node))

    refused = runner.invoke(app, ["labels", "import", str(second), "--home", str(node)],
                            env={"COLUMNS": "200"})  # fmt: skip
    assert refused.exit_code == 1, refused.output
    assert "outcome would change: study 1.2.3: metastatic -> benign" in refused.output
    assert "1.2.4" not in refused.output  # unknown filled in: not a correction
    assert "--replace" in refused.output

    def outcomes() -> dict[str, str]:
        with sessions() as session:
            return {r.uid: r.outcome.value for r in session.scalars(select(PathologyLabel))}

    assert outcomes() == {"1.2.3": "metastatic", "1.2.4": "unknown", "1.2.5": "benign"}

    out = _invoke("labels", "import", str(second), "--replace", "--home", str(node))
    assert "outcome changed: study 1.2.3: metastatic -> benign" in out
    assert "outcome changed: study 1.2.4: unknown -> metastatic" in out
    assert "2 outcome(s) changed" in out
    assert outcomes() == {"1.2.3": "benign", "1.2.4": "metastatic", "1.2.5": "benign"}
    with sessions() as session:
        changes = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "change_label_outcome")
            .order_by(AuditEvent.id)).all()  # fmt: skip
        assert [(e.entity_id, e.details["old"], e.details["new"]) for e in changes] == [
            ("1.2.3", "metastatic", "benign"), ("1.2.4", "unknown", "metastatic")]  # fmt: skip
        assert {e.actor for e in changes} == {"admin"}


def test_train_with_an_old_holdout_naming_patient_ids_packages_a_holdout_of_keys(
    node: Path, tmp_path: Path
) -> None:
    """holdout.json beside a packaged model, which may be shared, named PatientIDs in clear;
    an old hold-out written so still keeps its patient out of every fold (found last session)."""
    import pydicom

    from phantom.us_dicom import write_us_study
    from training.groups import GroupKey

    rows, patients = ["study_instance_uid,outcome"], []
    for seed in range(8):
        (path, *_) = write_us_study(tmp_path / "dicom" / f"s{seed}", seed=seed, count=2)
        header = pydicom.dcmread(path, stop_before_pixels=True)
        rows.append(f"{header.StudyInstanceUID},{'metastatic' if seed % 2 else 'benign'}")
        patients.append(str(header.PatientID))
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    _invoke("dataset", "build", "--dicom-folder", str(tmp_path / "dicom"), "--labels", str(labels),
            "--out", str(tmp_path / "ds"), "--folds", "2", "--home", str(node))  # fmt: skip
    old = tmp_path / "old-holdout.json"
    old.write_text(json.dumps({"groups": [patients[0], "SYN-NOT-HERE"]}))
    out = _invoke("train", "tiny-ynet", str(tmp_path / "ds"), "--out", str(tmp_path / "run"),
                  "--epochs", "1", "--batch-size", "4", "--exclude-groups", str(old),
                  "--package", "0.4.0", "--members", "all", "--home", str(node))  # fmt: skip
    said = " ".join(out.split())
    assert "excluded 2 case(s) of 2 hold-out group(s)" in said
    assert "warning: 1 hold-out group(s) match no case" in said
    shipped = (node / "models" / "tiny-ynet-0.4.0" / "holdout.json").read_text()
    pseudonym = GroupKey.of_home(node).legacy(patients[0])  # the home's key, made by the build
    assert patients[0] not in shipped and pseudonym in json.loads(shipped)["groups"]
    recorded = (tmp_path / "run" / "exclusion.json").read_text() + (
        tmp_path / "run" / "folds.json"
    ).read_text()
    assert not any(patient in recorded for patient in patients)
