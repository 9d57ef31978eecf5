"""The one-page HTML evaluation report: the figures of ``metrics.json`` and the plots, embedded."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path

from training.metrics import ECE_BINS

REPORT_FILE = "report.html"
PLOTS = (
    ("roc.png", "ROC curve"),
    ("calibration.png", "Reliability (calibration)"),
    ("decision_curve.png", "Decision curve (net benefit)"),
    ("cases.png", "Cases"),
)
FIGURES = (
    ("n", "images evaluated"),
    ("n_positive", "malignant"),
    ("n_negative", "benign or normal"),
    ("auc", "AUC"),
    ("accuracy", "accuracy"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("ppv", "PPV"),
    ("npv", "NPV"),
    ("lr_pos", "LR+"),
    ("lr_neg", "LR-"),
    ("f1", "F1"),
    ("kappa", "Cohen's kappa"),
    ("brier", "Brier score"),
    ("ece", f"ECE ({ECE_BINS} equal-width bins)"),
    ("calibration_method", "probability calibration"),
    ("threshold", "operating threshold"),
    ("dice_mean", "Dice mean (lesion images)"),
    ("dice_median", "Dice median (lesion images)"),
)


def figure_text(value: object) -> str:
    """One figure as the report and the model card print it: 3 decimals, a count as a whole
    number, ``n/a`` for a missing one."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float) and float(value).is_integer() and abs(value) > 1:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def figure_rows(metrics: Mapping[str, object]) -> list[tuple[str, str]]:
    """(label, text) of each figure of :data:`FIGURES` that ``metrics`` holds, in that order;
    the AUC with its DeLong 95% CI where ``metrics`` has it."""
    rows = []
    for key, label in FIGURES:
        if key not in metrics:
            continue
        text = figure_text(metrics[key])
        if key == "auc" and metrics.get("auc_ci_low") is not None:
            low, high = figure_text(metrics["auc_ci_low"]), figure_text(metrics["auc_ci_high"])
            text += f" (95% CI {low}-{high}, DeLong)"
        rows.append((label, text))
    return rows


def render_report(metrics: dict, images: dict[str, bytes]) -> str:
    """The HTML page of ``metrics`` with ``images`` (file name -> PNG bytes) embedded as data URIs."""
    rows = [
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
        for label, text in figure_rows(metrics)
    ]
    plots = []
    for name, title in PLOTS:
        if name in images:
            data = base64.b64encode(images[name]).decode("ascii")
            plots.append(
                f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(title)}</figcaption></figure>"
            )
    title = (
        f"Evaluation of {metrics.get('model', 'a model')} on {metrics.get('dataset', 'a dataset')}"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            (
                "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
                "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 10px;"
                "text-align:left}figure{display:inline-block;margin:8px;vertical-align:top}"
                "img{max-width:520px}</style></head><body>"
            ),
            f"<h1>{html.escape(title)}</h1>",
            (
                "<p><strong>Research use only. Not a medical device.</strong> "
                f"Subset: {html.escape(str(metrics.get('subset', 'all')))}; input size "
                f"{html.escape(str(metrics.get('input_size', 'n/a')))}; AUC interval by DeLong.</p>"
            ),
            "<table>",
            *rows,
            "</table>",
            *plots,
            "</body></html>",
            "",
        ]
    )


def write_report(metrics: dict, out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` from ``metrics`` and the PNGs beside it; returns its path."""
    out_dir = Path(out_dir)
    images = {
        name: (out_dir / name).read_bytes() for name, _ in PLOTS if (out_dir / name).is_file()
    }
    path = out_dir / REPORT_FILE
    path.write_text(render_report(metrics, images))
    return path
