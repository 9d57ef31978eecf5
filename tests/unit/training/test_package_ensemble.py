"""`train --package --members all`: all k fold models as ONE model version (one weights file),
probabilities averaged; loads, verifies, explains and gates like any model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from inference.loading import build_network, load_network
from inference.networks.ensemble import Ensemble
from inference.registry import ModelSpec, verify_weights
from inference.scope import GateSpec, ModelScope
from inference.verify import verify_model
from training.evaluate import evaluate
from training.kfold import POOLED_FILE
from training.metrics import youden_threshold
from training.package_ensemble import member_spec, package_ensemble
from training.retrain import load_cases
from training.trainer import BEST_FILE, model_inputs

SIZE, FOLDS = 32, 2


@pytest.fixture(scope="module")
def trained(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, home) of a 2-fold CLI run packaged with ``--members all``."""
    root = tmp_path_factory.mktemp("ensemble")
    run, home = root / "run", root / "home"
    result = CliRunner().invoke(app, [
        "train", "tiny-ens", str(image_folder), "--network", "ynet", "--size", str(SIZE),
        "--folds", str(FOLDS), "--epochs", "1", "--batch-size", "4", "--out", str(run),
        "--package", "1.0.0", "--members", "all", "--home", str(home),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "an ensemble of all 2 folds" in " ".join(result.output.split())
    return run, home


def _packaged(trained: tuple[Path, Path]) -> ModelSpec:
    return ModelSpec.load(trained[1] / "models" / "tiny-ens-1.0.0")


def test_members_all_writes_one_weights_file_that_loads_and_verifies(
    trained: tuple[Path, Path],
) -> None:
    spec = _packaged(trained)

    assert spec.ensemble is not None and spec.ensemble.members == FOLDS
    assert sorted(p.name for p in spec.folder.glob("*.pt")) == ["weights.pt"]
    assert verify_weights(spec) == spec.weights_path
    network = load_network(spec, "cpu")
    assert isinstance(network, Ensemble) and len(network.members) == FOLDS
    result = verify_model(spec, "cpu")
    assert result.ok, result.error
    assert result.heatmap_shape == (1, 1, SIZE, SIZE)
    assert result.segmentation_shape == (1, 1, SIZE, SIZE)
    card = spec.card_path.read_text()
    assert f"an ensemble of all {FOLDS} fold models" in card and "mean of the members'" in card
    assert "Youden's J on the pooled out-of-fold predictions" in card


def test_ensemble_probability_is_the_mean_of_its_fold_members(
    trained: tuple[Path, Path], image_folder: Path
) -> None:
    run, _ = trained
    spec = _packaged(trained)
    ensemble = load_network(spec, "cpu")
    cases, _ = load_cases(image_folder, member_spec(spec))
    x = model_inputs(cases.images[:4])
    members = []
    for fold in range(FOLDS):
        member = build_network(member_spec(spec))
        member.load_state_dict(torch.load(run / f"fold_{fold}" / BEST_FILE, weights_only=True))
        members.append(member.eval())

    with torch.no_grad():
        seg, cls = ensemble(x)
        outputs = [member(x) for member in members]

    mean = torch.stack([torch.sigmoid(o[1]) for o in outputs]).mean(dim=0)
    torch.testing.assert_close(torch.sigmoid(cls), mean, atol=1e-6, rtol=1e-5)
    mean_seg = torch.stack([torch.sigmoid(o[0]) for o in outputs]).mean(dim=0)
    torch.testing.assert_close(torch.sigmoid(seg), mean_seg, atol=1e-6, rtol=1e-5)


def test_ensemble_threshold_is_youden_on_the_out_of_fold_predictions(
    trained: tuple[Path, Path],
) -> None:
    run, _ = trained
    with np.load(run / POOLED_FILE) as oof:
        expected = youden_threshold(oof["malignant"], oof["probability"])
    assert _packaged(trained).threshold == pytest.approx(min(max(expected, 0.01), 0.99))


def test_ensemble_gate_scores_member_zero_and_evaluate_applies_it(
    trained: tuple[Path, Path], image_folder: Path, tmp_path: Path
) -> None:
    from training.gate_data import fit_packaged_gate

    run, _ = trained
    base = member_spec(_packaged(trained))
    gate = GateSpec(method="mahalanobis", layers=["unet.conv_0"], reference="gate.npz",
                    reference_sha256="0" * 64, threshold=1.0, fitted_on="placeholder")  # fmt: skip
    gated = base.model_copy(update={"scope": ModelScope(gate=gate)})
    summary = json.loads((run / "cv_metrics.json").read_text())
    packaged = package_ensemble(gated, run, summary, "2.0.0", tmp_path, "tiny folder.")
    cases, _ = load_cases(image_folder, base)

    fitted = fit_packaged_gate(packaged, cases, None, "cpu")

    assert fitted.scope.gate is not None
    assert fitted.scope.gate.layers == ["members.0.unet.conv_0"]
    assert fitted.scope.gate.reference_sha256 != "0" * 64
    assert "features of member 0" in fitted.card_path.read_text()
    metrics = evaluate(fitted, image_folder, tmp_path / "eval", sheet_cases=2)
    assert metrics["n"] + metrics["n_declined_out_of_domain"] == 12


def test_member_spec_takes_the_gate_back_out_of_member_zero(trained: tuple[Path, Path]) -> None:
    spec = _packaged(trained)
    member = member_spec(spec)
    assert member.ensemble is None and spec.ensemble is not None
    assert isinstance(build_network(member), type(load_network(spec, "cpu").members[0]))


def test_refit_gate_of_an_ensemble_reads_member_zero(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    from tests.unit.training.conftest import write_image_folder
    from training.gate_data import refit_gate

    run, _ = trained
    summary = json.loads((run / "cv_metrics.json").read_text())
    spec = package_ensemble(member_spec(_packaged(trained)), run, summary, "3.0.0", tmp_path, "t.")
    (spec.folder / "holdout.json").write_text(json.dumps({"groups": ["g8", "g9"]}))

    folder = write_image_folder(tmp_path / "folder", count=24)  # enough images for a gate

    fitted = refit_gate(spec, str(folder), phantom_studies=0)

    assert fitted.spec.scope.gate is not None
    assert fitted.spec.scope.gate.layers == ["members.0.unet.down_4"]
    assert fitted.figures["holdout_n"] == 2 and "noise_auroc" in fitted.figures


def test_an_ensemble_takes_its_operating_point_out_of_fold_and_is_not_calibrated(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = trained
    spec, summary = member_spec(_packaged(trained)), json.loads((run / "cv_metrics.json").read_text())
    with pytest.raises(ValueError, match="models calibrate"):
        package_ensemble(spec, run, summary, "3.0.0", tmp_path, "tiny", calibration="temperature")
    packaged = package_ensemble(spec, run, summary, "3.0.0", tmp_path, "tiny",
                                operating_point="sensitivity=0.90")  # fmt: skip
    point = packaged.operating_point
    assert point is not None and point.policy == "sensitivity=0.90"
    assert point.figures["sensitivity"] >= 0.90 and "out-of-fold" in point.chosen_on
    assert packaged.calibration is None
