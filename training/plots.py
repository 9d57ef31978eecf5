"""Evaluation figures as PNG: ROC, reliability curve, decision curve, a contact sheet of cases.

Figures are drawn on ``matplotlib.figure.Figure`` (Agg canvas), never through pyplot's global
state, so nothing here chooses a backend for the process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve


@dataclass(frozen=True)
class SheetCase:
    """One case of the contact sheet: grey image, reference and predicted masks, the call."""

    grey: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray
    probability: float
    malignant: int | None
    title: str


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def roc_plot(
    y_true: Sequence[int],
    scores: Sequence[float],
    auc: float | None,
    ci: tuple[float | None, float | None],
    path: Path,
) -> Path:
    """ROC curve with the AUC and its 95% CI in the legend (a note when one class only)."""
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    y = np.asarray(y_true).astype(int)
    if auc is not None:
        fpr, tpr, _ = roc_curve(y, np.asarray(scores, dtype=float))
        axes.plot(fpr, tpr, lw=2, label=f"AUC {auc:.3f} (95% CI {_text(ci[0])}-{_text(ci[1])})")
    else:
        axes.text(0.5, 0.5, "ROC undefined: one class only", ha="center")
    axes.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    axes.set(
        xlabel="1 - specificity",
        ylabel="sensitivity",
        title=f"ROC (n={len(y)})",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    if auc is not None:
        axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def calibration_plot(table: Sequence[dict], path: Path) -> Path:
    """Reliability curve: observed positive fraction against mean predicted probability per bin."""
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    if table:
        predicted = [row["mean_predicted"] for row in table]
        observed = [row["observed_fraction"] for row in table]
        sizes = [20 + 4 * row["n"] for row in table]
        axes.plot(predicted, observed, marker="o", lw=1.5, label="model")
        axes.scatter(predicted, observed, s=sizes, alpha=0.3)
    axes.set(
        xlabel="mean predicted probability",
        ylabel="observed malignant fraction",
        title="Calibration",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    axes.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def decision_curve_plot(curve: Sequence[dict], path: Path) -> Path:
    """Net benefit of the model, of treating all and of treating none across thresholds."""
    figure = Figure(figsize=(5, 4))
    axes = figure.add_subplot()
    thresholds = [row["threshold"] for row in curve]
    model = [row["model"] for row in curve]
    treat_all = [row["treat_all"] for row in curve]
    axes.plot(thresholds, model, lw=2, label="model")
    axes.plot(thresholds, treat_all, lw=1, c="tab:orange", label="treat all")
    axes.axhline(0.0, c="grey", lw=1, label="treat none")
    finite = [v for v in model + treat_all if v is not None]
    top = max(finite) if finite else 0.1
    axes.set(
        xlabel="threshold probability",
        ylabel="net benefit",
        title="Decision curve",
        ylim=(-0.05, max(top, 0.05) * 1.1),
    )
    axes.legend(fontsize=8)
    return _save(figure, path)


def contact_sheet(cases: Sequence[SheetCase], path: Path, columns: int = 4) -> Path:
    """A grid of cases: reference outline green, predicted outline red, probability in the title."""
    rows = max(1, math.ceil(len(cases) / columns))
    figure = Figure(figsize=(3 * columns, 3.2 * rows))
    for index, case in enumerate(cases):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(case.grey, cmap="gray", vmin=0, vmax=1)
        if case.reference.any():
            axes.contour(case.reference, levels=[0.5], colors="lime", linewidths=1)
        if case.predicted.any():
            axes.contour(case.predicted, levels=[0.5], colors="red", linewidths=1)
        truth = {1: "malignant", 0: "benign"}.get(case.malignant, "unknown")
        axes.set_title(f"{case.title}\n{truth}, p={case.probability:.2f}", fontsize=8)
        axes.axis("off")
    figure.suptitle("green: reference mask, red: prediction", fontsize=9)
    return _save(figure, path)
