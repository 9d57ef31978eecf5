"""Temperature and isotonic calibration fitted on validation cases; threshold policies."""

from __future__ import annotations

import numpy as np
import pytest

from inference.calibration import calibrate
from inference.registry import CalibrationMethod
from training.calibrate import (
    choose_operating_point,
    choose_threshold,
    fit_calibration,
    fit_temperature,
    validation_operating_point,
)
from training.metrics import binary_metrics, expected_calibration_error, log_loss_score


def _overconfident(n: int = 600, sharpen: float = 3.0, seed: int = 0):
    """Labels drawn from sigmoid(z), reported as sigmoid(sharpen * z): overconfident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(int)
    return y, 1.0 / (1.0 + np.exp(-sharpen * z))


def test_fit_temperature_recovers_the_sharpening_and_lowers_log_loss() -> None:
    y, p = _overconfident()
    temperature = fit_temperature(y, p)
    assert 2.3 < temperature < 3.8
    assert log_loss_score(y, calibrate_t(p, temperature)) < log_loss_score(y, p) - 0.05


def calibrate_t(p: np.ndarray, temperature: float) -> np.ndarray:
    from inference.registry import Calibration

    return calibrate(Calibration(method="temperature", temperature=temperature), p)


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_fit_calibration_records_figures_before_and_after(method: str) -> None:
    y, p = _overconfident()
    calibration = fit_calibration(method, y, p, "synthetic validation")
    f = calibration.figures
    assert calibration.method is CalibrationMethod(method) and calibration.fitted_on
    assert f["n"] == 600 and f["bins"] == 10
    assert f["log_loss_after"] < f["log_loss_before"] and f["ece_after"] < f["ece_before"]
    assert f["brier_after"] <= f["brier_before"]
    assert f["ece_before"] == pytest.approx(expected_calibration_error(y, p))


def test_fit_calibration_none_measures_only() -> None:
    y, p = _overconfident()
    calibration = fit_calibration("none", y, p, "x")
    assert calibration.temperature is None
    assert calibration.figures["ece_before"] == calibration.figures["ece_after"]


def test_fit_temperature_one_class_refused() -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        fit_temperature([1, 1, 1], [0.2, 0.7, 0.9])


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_sensitivity_policy_gives_at_least_the_target_with_the_best_specificity(target) -> None:
    y, p = _overconfident(seed=1)
    threshold = choose_threshold(f"sensitivity={target}", y, p)
    at = binary_metrics(y, p, threshold)
    assert at["sensitivity"] >= target
    above = np.unique(p[p > threshold])  # any higher threshold misses the target
    if len(above):
        assert binary_metrics(y, p, above[0])["sensitivity"] < target


def test_specificity_policy_gives_at_least_the_target_with_the_best_sensitivity() -> None:
    y, p = _overconfident(seed=2)
    threshold = choose_threshold("specificity=0.90", y, p)
    assert binary_metrics(y, p, threshold)["specificity"] >= 0.9
    below = np.unique(p[p < threshold])
    assert binary_metrics(y, p, below[-1])["specificity"] < 0.9


def test_youden_policy_maximises_j_and_operating_point_records_its_figures() -> None:
    y, p = _overconfident(seed=3)
    threshold, point = choose_operating_point("youden", y, p, "synthetic")
    j = lambda t: sum(binary_metrics(y, p, t)[k] for k in ("sensitivity", "specificity"))
    assert all(j(threshold) >= j(t) - 1e-12 for t in np.unique(p) if 0.001 < t < 0.999)
    at = binary_metrics(y, p, threshold)
    assert point.policy == "youden" and point.figures["n"] == len(y)
    assert point.figures["sensitivity"] == at["sensitivity"]


def test_validation_operating_point_from_trainer_file(tmp_path) -> None:
    y, p = _overconfident(n=200, seed=4)
    y[:5] = -1  # unlabelled cases are left out
    np.savez(tmp_path / "validation.npz", probability=p.astype(np.float32), malignant=y)
    threshold, calibration, point = validation_operating_point(
        tmp_path / "validation.npz", "temperature", "sensitivity=0.90", "fold 0 inner validation"
    )
    assert calibration is not None and calibration.figures["n"] == 195
    calibrated = calibrate(calibration, p[5:])
    assert binary_metrics(y[5:], calibrated, threshold)["sensitivity"] >= 0.9
    assert point.figures["sensitivity"] >= 0.9 and point.chosen_on == "fold 0 inner validation"
    _, none, _ = validation_operating_point(tmp_path / "validation.npz", "none", "youden", "x")
    assert none is None
