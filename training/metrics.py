"""Classification, calibration, decision-curve and segmentation metrics with defined degenerate cases.

Every function returns plain Python numbers; an undefined value (one class only, a zero
denominator) is ``None``, never a crash or a NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import DiceMetric
from scipy.stats import norm, wilcoxon
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    cohen_kappa_score,
    confusion_matrix,
    log_loss,
    roc_curve,
)


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _two_classes(y_true: np.ndarray) -> bool:
    return bool(np.any(y_true == 1) and np.any(y_true == 0))


def _midrank(x: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based, ties share their mean rank), as in Sun & Xu's fast DeLong."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    n = len(x)
    ranks = np.zeros(n, dtype=float)
    i = 0
    while i < n:
        j = i
        while j < n and sorted_x[j] == sorted_x[i]:
            j += 1
        ranks[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n, dtype=float)
    out[order] = ranks
    return out


def delong_auc(y_true: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """(AUC, DeLong variance) by the fast algorithm of Sun & Xu (IEEE SPL 2014).

    Raises ``ValueError`` unless both classes are present.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    positives, negatives = s[y == 1], s[y == 0]
    m, n = len(positives), len(negatives)
    if m == 0 or n == 0:
        raise ValueError("DeLong AUC needs at least one positive and one negative case")
    tx, ty = _midrank(positives), _midrank(negatives)
    tz = _midrank(np.concatenate([positives, negatives]))
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v01 = (tz[:m] - tx) / n  # structural components of the positives
    v10 = 1.0 - (tz[m:] - ty) / m  # structural components of the negatives
    s01 = float(np.var(v01, ddof=1)) if m > 1 else 0.0
    s10 = float(np.var(v10, ddof=1)) if n > 1 else 0.0
    return float(auc), s01 / m + s10 / n


def _placements(y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(AUC, positives' placement values, negatives' placement values) by Sun & Xu's mid-ranks."""
    positives, negatives = s[y == 1], s[y == 0]
    m, n = len(positives), len(negatives)
    tx, ty = _midrank(positives), _midrank(negatives)
    tz = _midrank(np.concatenate([positives, negatives]))
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    return float(auc), (tz[:m] - tx) / n, 1.0 - (tz[m:] - ty) / m


def delong_test(
    y_true: Sequence[int], scores_a: Sequence[float], scores_b: Sequence[float], level: float = 0.95
) -> dict:
    """DeLong's test of two correlated AUCs on the same cases (DeLong et al., Biometrics 1988).

    Returns ``auc_a``, ``auc_b``, ``difference`` (a - b), its ``variance``, ``z``, the two-sided
    ``p_value`` and the ``level`` interval of the difference (``ci_low``, ``ci_high``). Uses the
    fast structural components of Sun & Xu (2014). Raises ``ValueError`` unless both classes
    are present and the score lists match the labels in length.
    """
    y = np.asarray(y_true).astype(int)
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if not (len(y) == len(a) == len(b)):
        raise ValueError(f"delong_test: {len(y)} labels, {len(a)} and {len(b)} scores")
    m, n = int((y == 1).sum()), int((y == 0).sum())
    if m < 2 or n < 2:
        raise ValueError("delong_test needs at least two positive and two negative cases")
    auc_a, v01_a, v10_a = _placements(y, a)
    auc_b, v01_b, v10_b = _placements(y, b)
    s01 = np.cov(np.vstack([v01_a, v01_b]), ddof=1)
    s10 = np.cov(np.vstack([v10_a, v10_b]), ddof=1)
    covariance = s01 / m + s10 / n
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ covariance @ contrast)
    difference = auc_a - auc_b
    if variance <= 0.0:
        z = 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    else:
        z = difference / math.sqrt(variance)
    p_value = float(2.0 * norm.sf(abs(z)))
    half = float(norm.ppf(0.5 + level / 2.0)) * math.sqrt(max(variance, 0.0))
    return {
        "n": len(y),
        "n_positive": m,
        "n_negative": n,
        "auc_a": auc_a,
        "auc_b": auc_b,
        "difference": difference,
        "variance": variance,
        "z": z if math.isfinite(z) else None,
        "p_value": p_value,
        "ci_low": difference - half,
        "ci_high": difference + half,
    }


def auc_with_ci(
    y_true: Sequence[int], scores: Sequence[float], level: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """(AUC, low, high): DeLong normal interval clipped to [0, 1]; all None with one class."""
    y = np.asarray(y_true).astype(int)
    if not _two_classes(y):
        return None, None, None
    auc, variance = delong_auc(y, scores)
    half = float(norm.ppf(0.5 + level / 2.0)) * math.sqrt(max(variance, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def youden_threshold(
    y_true: Sequence[int], scores: Sequence[float], default: float = 0.5, *, midpoint: bool = False
) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (``default`` with one class).

    The threshold is the highest observed score giving the best J. With ``midpoint`` it is
    halfway between that score and the next lower observed one (the same calls on these
    cases, clear of both): the choice for scores of the cases a model was fitted on, which
    sit at the extremes.
    """
    y = np.asarray(y_true).astype(int)
    if not _two_classes(y):
        return float(default)
    fpr, tpr, thresholds = roc_curve(
        y, np.asarray(scores, dtype=float), drop_intermediate=not midpoint
    )
    finite = np.isfinite(thresholds)
    best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    threshold = float(thresholds[best])
    if midpoint and best + 1 < len(thresholds):
        threshold = (threshold + float(thresholds[best + 1])) / 2.0
    return min(threshold, 1.0)


def binary_metrics(y_true: Sequence[int], scores: Sequence[float], threshold: float) -> dict:
    """Confusion-matrix figures at ``score >= threshold``: accuracy ... kappa; undefined -> None."""
    y = np.asarray(y_true).astype(int)
    predicted = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    counts = confusion_matrix(y, predicted, labels=[0, 1]).ravel() if len(y) else np.zeros(4)
    tn, fp, fn, tp = (int(v) for v in counts)
    sensitivity, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    ppv, npv = _ratio(tp, tp + fp), _ratio(tn, tn + fn)
    lr_pos = lr_neg = None
    if sensitivity is not None and specificity is not None:
        lr_pos = _ratio(sensitivity, 1.0 - specificity)
        lr_neg = _ratio(1.0 - sensitivity, specificity)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    kappa = None
    if len(y) and len(set(y.tolist()) | set(predicted.tolist())) > 1:
        kappa = _finite(float(cohen_kappa_score(y, predicted)))
    return {
        "n": len(y),
        "n_positive": int((y == 1).sum()),
        "n_negative": int((y == 0).sum()),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, predicted)) if len(y) else None,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "ppv": ppv,
        "npv": npv,
        "lr_pos": lr_pos,
        "lr_neg": lr_neg,
        "f1": f1,
        "kappa": kappa,
    }


def brier_score(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Mean squared error of the probabilities (None when there are no cases)."""
    y = np.asarray(y_true).astype(int)
    if len(y) == 0:
        return None
    return float(brier_score_loss(y, np.asarray(scores, dtype=float), pos_label=1))


def calibration_table(y_true: Sequence[int], scores: Sequence[float], bins: int = 10) -> list[dict]:
    """Equal-width probability bins: count, mean predicted probability, observed positive fraction.

    Empty bins are omitted.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(scores, dtype=float)
    if len(y) == 0:
        return []
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    observed, predicted = (
        calibration_curve(y, p, n_bins=bins, strategy="uniform")
        if _two_classes(y)
        else (None, None)
    )
    table, filled = [], 0
    for b in range(bins):
        members = index == b
        if not members.any():
            continue
        row = {
            "bin_low": round(float(edges[b]), 10),
            "bin_high": round(float(edges[b + 1]), 10),
            "n": int(members.sum()),
            "mean_predicted": float(p[members].mean()),
            "observed_fraction": float(y[members].mean()),
        }
        if observed is not None:  # sklearn's figures for the same bins, as a cross-check
            row["observed_fraction"] = float(observed[filled])
            row["mean_predicted"] = float(predicted[filled])
        table.append(row)
        filled += 1
    return table


ECE_BINS = 10
"""Equal-width bins of the expected calibration error every report and card gives."""


def expected_calibration_error(
    y_true: Sequence[int], scores: Sequence[float], bins: int = ECE_BINS
) -> float | None:
    """ECE over ``bins`` equal-width probability bins (Naeini et al., AAAI 2015): the
    case-weighted mean gap between mean predicted probability and observed positive fraction,
    the bins of :func:`calibration_table`. None with no cases."""
    table = calibration_table(y_true, scores, bins)
    total = sum(row["n"] for row in table)
    if not total:
        return None
    return float(
        sum(row["n"] * abs(row["mean_predicted"] - row["observed_fraction"]) for row in table)
        / total
    )


def log_loss_score(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Mean negative log-likelihood of the labels (scikit-learn's ``log_loss``); None unless
    both classes are present."""
    y = np.asarray(y_true).astype(int)
    if not _two_classes(y):
        return None
    return float(log_loss(y, np.asarray(scores, dtype=float), labels=[0, 1]))


def net_benefit(
    y_true: Sequence[int], scores: Sequence[float], thresholds: Sequence[float]
) -> list[dict]:
    """Decision-curve net benefit of the model, of treating all and of treating none per threshold.

    NB = TP/n - FP/n * t/(1-t) (Vickers & Elkin 2006); thresholds must lie in (0, 1).
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(scores, dtype=float)
    n = len(y)
    prevalence = float(y.mean()) if n else 0.0
    curve = []
    for t in thresholds:
        if not 0.0 < t < 1.0:
            raise ValueError(f"decision-curve thresholds must lie in (0, 1), got {t}")
        odds = t / (1.0 - t)
        predicted = p >= t
        tp = int(np.sum(predicted & (y == 1)))
        fp = int(np.sum(predicted & (y == 0)))
        curve.append(
            {
                "threshold": float(t),
                "model": (tp - fp * odds) / n if n else None,
                "treat_all": prevalence - (1.0 - prevalence) * odds if n else None,
                "treat_none": 0.0,
            }
        )
    return curve


def dice_scores(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> list[float]:
    """Per-image Dice (MONAI ``DiceMetric``); both masks empty counts as 1, one empty as 0."""
    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    scores = []
    for pred, ref in zip(predicted, reference, strict=True):
        if pred.shape != ref.shape:
            raise ValueError(f"dice_scores: shapes differ {pred.shape} vs {ref.shape}")
        a = torch.from_numpy(np.asarray(pred) > 0).float()[None, None]
        b = torch.from_numpy(np.asarray(ref) > 0).float()[None, None]
        scores.append(float(metric(a, b).item()))
    return scores


def dice_summary(scores: Sequence[float]) -> dict:
    """``dice_mean``/``dice_median``/``dice_n`` of per-image Dice scores (None when empty)."""
    values = np.asarray(scores, dtype=float)
    if len(values) == 0:
        return {"dice_mean": None, "dice_median": None, "dice_n": 0}
    return {
        "dice_mean": float(values.mean()),
        "dice_median": float(np.median(values)),
        "dice_n": len(values),
    }


def paired_dice_test(dice_a: Sequence[float], dice_b: Sequence[float]) -> dict:
    """Two segmenters' per-image Dice on the same images: means, the mean and median of the
    paired differences (a - b) and the two-sided Wilcoxon signed-rank p-value (zero differences
    dropped; 1.0 when every pair ties). ``p_value`` is None below two images."""
    a, b = np.asarray(dice_a, dtype=float), np.asarray(dice_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_dice_test: {len(a)} and {len(b)} scores")
    differences = a - b
    result: dict = {
        "n": len(a),
        "dice_mean_a": _finite(float(a.mean())) if len(a) else None,
        "dice_mean_b": _finite(float(b.mean())) if len(b) else None,
        "difference_mean": _finite(float(differences.mean())) if len(a) else None,
        "difference_median": _finite(float(np.median(differences))) if len(a) else None,
        "p_value": None,
        "test": "Wilcoxon signed-rank, two-sided",
    }
    if len(a) >= 2:
        result["p_value"] = (
            1.0 if not differences.any() else float(wilcoxon(a, b, zero_method="wilcox").pvalue)
        )
    return result


def classification_summary(
    y_true: Sequence[int], scores: Sequence[float], threshold: float
) -> dict:
    """AUC with its 95% DeLong CI, the figures of ``binary_metrics``, the Brier score and the
    ECE (``ece_bins`` equal-width bins)."""
    auc, low, high = auc_with_ci(y_true, scores)
    summary = {"auc": auc, "auc_ci_low": low, "auc_ci_high": high}
    summary.update(binary_metrics(y_true, scores, threshold))
    summary["brier"] = brier_score(y_true, scores)
    summary["ece"] = expected_calibration_error(y_true, scores)
    summary["ece_bins"] = ECE_BINS
    return summary
