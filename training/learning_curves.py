"""Learning curves of a k-fold run as PNG, read from each fold's training summary.

``fold_<i>/learning_curve.png``: the fold's train and inner-validation loss and its
inner-validation AUC (and Dice, where masks exist) per epoch, the best epoch marked and why the
fold stopped in the title. ``learning_curves.png`` beside the folds: every fold on one pair of
axes. Drawn on ``matplotlib.figure.Figure`` (Agg canvas), as ``training.plots`` draws.
:func:`stops_markdown` tabulates what stopped each fold and how much its selection curve
wobbled (``python -m training.learning_curves RUN ... --stops stops.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from training.trainer import SUMMARY_FILE

FOLD_FIGURE = "learning_curve.png"
RUN_FIGURE = "learning_curves.png"


def _series(history: list[dict], name: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of ``name`` in ``history``, leaving out epochs without a value."""
    pairs = [(r["epoch"], r[name]) for r in history if r.get(name) is not None]
    return [e for e, _ in pairs], [float(v) for _, v in pairs]


def _value_at(history: list[dict], name: str, epoch: int) -> float | None:
    return next((r.get(name) for r in history if r["epoch"] == epoch), None)


def _title(summary: dict) -> str:
    stopped = summary.get("stopped", "not recorded")
    return f"best epoch {summary['best_epoch']} of {summary['epochs_run']}, stopped: {stopped}"


def _draw(loss_axes: Axes, score_axes: Axes, summary: dict, colour: str, label: str) -> None:
    """One fold's curves on the two axes (solid: train / AUC; dashed: validation / Dice)."""
    history, best = summary["history"], summary["best_epoch"]
    loss_axes.plot(*_series(history, "train_loss"), c=colour, label=f"{label}train loss")
    epochs, values = _series(history, "val_loss")
    if epochs:
        loss_axes.plot(epochs, values, c=colour, ls="--", label=f"{label}validation loss")
    score_axes.plot(*_series(history, "val_auc"), c=colour, label=f"{label}validation AUC")
    epochs, values = _series(history, "val_dice_mean")
    if epochs:
        score_axes.plot(epochs, values, c=colour, ls="--", label=f"{label}validation Dice")
    auc = _value_at(history, "val_auc", best)
    if auc is not None:
        score_axes.plot([best], [auc], marker="*", ms=12, c=colour, ls="none")
    for axes in (loss_axes, score_axes):
        axes.axvline(best, c=colour, lw=0.8, ls=":")


def _finish(loss_axes: Axes, score_axes: Axes) -> None:
    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss (dotted line: best epoch)")
    score_axes.set(xlabel="epoch", ylabel="inner validation", ylim=(0, 1.02),
                   title="AUC, dashed: Dice (star: best epoch)")  # fmt: skip
    for axes in (loss_axes, score_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(fontsize=7, loc="best")


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _fold_summaries(run: Path) -> list[Path]:
    """The training summaries of ``run``'s folds, in fold order."""
    return sorted(
        Path(run).glob("fold_*/" + SUMMARY_FILE), key=lambda p: int(p.parent.name.split("_")[1])
    )


def fold_learning_curve(fold_dir: Path) -> Path | None:
    """Draw ``fold_dir/learning_curve.png`` from its training summary (None without one)."""
    path = Path(fold_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    loss_axes, score_axes = figure.subplots(1, 2)
    _draw(loss_axes, score_axes, summary, "C0", "")
    _finish(loss_axes, score_axes)
    figure.suptitle(f"{Path(fold_dir).name}: {_title(summary)}", fontsize=10)
    return _save(figure, Path(fold_dir) / FOLD_FIGURE)


def run_learning_curves(run: Path) -> Path | None:
    """Draw every fold's curve, and all folds together in ``run/learning_curves.png``
    (None when no fold has a training summary)."""
    folds = _fold_summaries(run)
    if not folds:
        return None
    figure = Figure(figsize=(11, 5), layout="constrained")
    loss_axes, score_axes = figure.subplots(1, 2)
    lines = []
    for index, path in enumerate(folds):
        fold_learning_curve(path.parent)
        summary = json.loads(path.read_text())
        _draw(loss_axes, score_axes, summary, f"C{index}", f"{path.parent.name} ")
        lines.append(f"{path.parent.name}: {_title(summary)}")
    _finish(loss_axes, score_axes)
    figure.suptitle(f"{Path(run).name}\n" + "\n".join(lines), fontsize=9)
    return _save(figure, Path(run) / RUN_FIGURE)


def fold_stops(run: Path) -> list[dict]:
    """Per fold of ``run``: epochs run, best epoch, last rise of the selection score, what
    stopped it, median seconds per epoch, the best epoch's inner-validation AUC and the mean
    absolute change of the inner-validation AUC from one epoch to the next (its wobble)."""
    rows = []
    for path in _fold_summaries(run):
        summary = json.loads(path.read_text())
        history = summary["history"]
        aucs = np.array([r["val_auc"] for r in history if r.get("val_auc") is not None], float)
        seconds = [r["seconds"] for r in history if r.get("seconds") is not None]
        rows.append({
            "fold": int(path.parent.name.split("_")[1]),
            "epochs_run": summary["epochs_run"],
            "best_epoch": summary["best_epoch"],
            "improved_epoch": summary.get("improved_epoch", summary["best_epoch"]),
            "stopped": summary.get("stopped"),
            "seconds_per_epoch": float(np.median(seconds)) if seconds else None,
            "best_auc": summary.get("validation", {}).get("auc"),
            "auc_wobble": float(np.abs(np.diff(aucs)).mean()) if len(aucs) > 1 else None,
        })  # fmt: skip
    return rows


def stops_markdown(runs: list[Path]) -> str:
    """A markdown table of :func:`fold_stops` for every run (named by its folder)."""
    def cell(value: object, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = [
        (
            "| run | fold | epochs run | best epoch | last rise | stopped by | s / epoch "
            "| inner-val AUC (best) | mean epoch-to-epoch change of inner-val AUC |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        for row in fold_stops(run):
            lines.append(
                f"| {Path(run).name} | {row['fold']} | {row['epochs_run']} | {row['best_epoch']} "
                f"| {row['improved_epoch']} | {cell(row['stopped'])} "
                f"| {cell(row['seconds_per_epoch'], 1)} | {cell(row['best_auc'])} "
                f"| {cell(row['auc_wobble'])} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Redraw the learning curves of each run; ``--stops FILE`` also writes the stops table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--stops", type=Path, default=None, help="write the stops table here")
    args = parser.parse_args(argv)
    for run in args.runs:
        print(run_learning_curves(run))
    if args.stops is not None:
        args.stops.write_text(stops_markdown(args.runs))
        print(args.stops)


if __name__ == "__main__":
    main()
