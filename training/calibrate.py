"""Fit a model's calibration and choose its operating point on labelled validation cases.

Calibration is fitted on inner-validation probabilities only (never on the cases a model is
measured on): temperature scaling by L-BFGS on the log loss (Guo et al., ICML 2017), or
scikit-learn's isotonic regression. The threshold is then chosen by the site's policy on the
calibrated probabilities; ``inference.calibration.calibrate`` applies the result at inference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_curve

from inference.calibration import calibrate, logits_of
from inference.registry import Calibration, CalibrationMethod, OperatingPoint, parse_policy
from training.kfold import read_pooled
from training.metrics import (
    ECE_BINS,
    binary_metrics,
    brier_score,
    classification_summary,
    expected_calibration_error,
    log_loss_score,
    youden_threshold,
)

#: the range a chosen threshold is kept in (a spec's threshold lies strictly inside (0, 1))
THRESHOLD_RANGE = (0.001, 0.999)


def fit_temperature(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    """The temperature T minimising the log loss of sigmoid(logit(p) / T) on the cases
    (L-BFGS on log T, so T stays positive). Raises ``ValueError`` unless both classes appear."""
    y = torch.as_tensor(np.asarray(y_true), dtype=torch.float64)
    if not (bool((y == 1).any()) and bool((y == 0).any())):
        raise ValueError("temperature scaling needs positive and negative cases")
    logits = torch.as_tensor(logits_of(probabilities), dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(logits / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item())


def fit_isotonic(y_true: ArrayLike, probabilities: ArrayLike) -> list[tuple[float, float]]:
    """The knots (uncalibrated, calibrated) of scikit-learn's isotonic regression of the
    labels on the probabilities (clipped to [0, 1] beyond the fitted range)."""
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(np.asarray(probabilities, dtype=float), np.asarray(y_true, dtype=float))
    x, y = model.X_thresholds_, model.y_thresholds_
    keep = np.concatenate([[True], np.diff(x) > 0])  # knots the registry accepts
    return [(float(a), float(b)) for a, b in zip(x[keep], y[keep], strict=True)]


def calibration_figures(y_true: ArrayLike, probabilities: ArrayLike, suffix: str) -> dict:
    """ECE (``ECE_BINS`` equal-width bins), Brier and log loss, keys ending in ``suffix``."""
    y, p = np.asarray(y_true).astype(int), np.asarray(probabilities, dtype=float)
    figures = {
        f"ece{suffix}": expected_calibration_error(y, p),
        f"brier{suffix}": brier_score(y, p),
        f"log_loss{suffix}": log_loss_score(y, p),
    }
    return {k: v for k, v in figures.items() if v is not None}


def fit_calibration(
    method: CalibrationMethod | str, y_true: ArrayLike, probabilities: ArrayLike, fitted_on: str
) -> Calibration:
    """The calibration of ``method`` fitted on the cases, with its figures before and after
    (for ``none``: the figures as measured, before = after)."""
    method = CalibrationMethod(method)
    y, p = np.asarray(y_true).astype(int), np.asarray(probabilities, dtype=float)
    if method is CalibrationMethod.TEMPERATURE:
        calibration = Calibration(method=method, temperature=fit_temperature(y, p))
    elif method is CalibrationMethod.ISOTONIC:
        calibration = Calibration(method=method, points=fit_isotonic(y, p))
    else:
        calibration = Calibration()
    figures = {"n": float(len(y)), "n_positive": float(y.sum()), "bins": float(ECE_BINS)}
    figures |= calibration_figures(y, p, "_before")
    figures |= calibration_figures(y, calibrate(calibration, p), "_after")
    return calibration.model_copy(update={"fitted_on": fitted_on, "figures": figures})


def choose_threshold(policy: str, y_true: ArrayLike, probabilities: ArrayLike) -> float:
    """The threshold (``p >= t`` is positive) ``policy`` picks on the cases.

    ``youden``: the highest score maximising sensitivity + specificity - 1;
    ``sensitivity=s``: the highest threshold whose sensitivity is at least s (the best
    specificity there); ``specificity=s``: the lowest threshold whose specificity is at least s
    (the best sensitivity there). Kept within ``THRESHOLD_RANGE``.
    """
    kind, target = parse_policy(policy)
    y, p = np.asarray(y_true).astype(int), np.asarray(probabilities, dtype=float)
    if not ((y == 1).any() and (y == 0).any()):
        raise ValueError("choosing an operating point needs positive and negative cases")
    low, high = THRESHOLD_RANGE
    if kind == "youden":
        return float(min(max(youden_threshold(y, p), low), high))
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    if kind == "sensitivity":
        best = int(np.flatnonzero(tpr >= target - 1e-12)[0])
    else:
        best = int(np.flatnonzero(1.0 - fpr >= target - 1e-12)[-1])
    return float(min(max(thresholds[best], low), high))


def choose_operating_point(
    policy: str, y_true: ArrayLike, probabilities: ArrayLike, chosen_on: str
) -> tuple[float, OperatingPoint]:
    """(threshold, the operating point recording it) of ``policy`` on the (calibrated)
    probabilities of the cases: sensitivity and specificity there at that threshold."""
    threshold = choose_threshold(policy, y_true, probabilities)
    at = binary_metrics(y_true, probabilities, threshold)
    figures = {
        name: float(at[name])
        for name in ("n", "n_positive", "sensitivity", "specificity")
        if at[name] is not None
    }
    return threshold, OperatingPoint(
        policy=policy.strip().lower(), chosen_on=chosen_on, figures=figures
    )


def validation_operating_point(
    validation_file: Path, method: CalibrationMethod | str, policy: str, where: str
) -> tuple[float, Calibration | None, OperatingPoint]:
    """(threshold, calibration or None, operating point) fitted on a trainer's
    ``validation.npz`` (the best epoch's inner-validation probabilities): the calibration of
    ``method`` first, then ``policy``'s threshold on the calibrated probabilities. ``where``
    names the cases (e.g. "fold 2's inner validation split: 69 cases")."""
    with np.load(validation_file) as saved:
        y, p = saved["malignant"].astype(int), saved["probability"].astype(float)
    labelled = y >= 0
    y, p = y[labelled], p[labelled]
    fitted = fit_calibration(method, y, p, where)
    calibration = None if fitted.method is CalibrationMethod.NONE else fitted
    threshold, point = choose_operating_point(policy, y, calibrate(calibration, p), where)
    return threshold, calibration, point


def calibrated_out_of_fold(run: Path, method: CalibrationMethod | str, policy: str) -> dict:
    """Pooled out-of-fold figures of a k-fold run (its ``oof.npz``) with each fold's test
    probabilities calibrated by ``method`` and called at ``policy``'s threshold, both fitted on
    that fold's own inner validation split (``fold_<i>/validation.npz``), as ``train
    --package`` would ship that fold. Raises ``FileNotFoundError`` for a fold without one."""
    oof = read_pooled(run)
    folds, y, p = oof["fold"], oof["malignant"].astype(int), oof["probability"].astype(float)
    calibrated, called = np.zeros_like(p), np.zeros(len(p), bool)
    for fold in np.unique(folds):
        validation = Path(run) / f"fold_{int(fold)}" / "validation.npz"
        where = f"fold {int(fold)} inner validation"
        threshold, calibration, _ = validation_operating_point(validation, method, policy, where)
        members = folds == fold
        calibrated[members] = calibrate(calibration, p[members])
        called[members] = calibrated[members] >= threshold
    labelled = y >= 0
    y, calibrated, called = y[labelled], calibrated[labelled], called[labelled]
    figures = classification_summary(y, calibrated, 0.5)
    calls = binary_metrics(y, called.astype(float), 0.5)  # each fold's own threshold
    calls.pop("threshold")
    return {**figures, **calls}
