"""evaluate(): the figures the literature reports, the HTML report, and classifier families."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from inference.networks.classifier import ImageClassifier
from inference.networks.ynet import YNet
from training.evaluate import METRICS_FILE, evaluate
from training.report import REPORT_FILE

REQUIRED = {"n", "auc", "auc_ci_low", "auc_ci_high", "accuracy", "sensitivity", "specificity",
            "ppv", "npv", "lr_pos", "lr_neg", "f1", "kappa", "threshold", "dice_mean", "dice_median"}  # fmt: skip


def test_evaluate_segmenter_required_figures_and_report(image_folder: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    metrics = evaluate(YNet(), image_folder, tmp_path, size=64)
    saved = json.loads((tmp_path / METRICS_FILE).read_text())
    assert REQUIRED <= set(saved) and saved["dice_mean"] is not None and metrics["n"] == 12
    page = (tmp_path / REPORT_FILE).read_text()
    assert "DeLong" in page and page.count("data:image/png;base64,") == 4


def test_evaluate_classifier_no_dice_still_reports(image_folder: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    metrics = evaluate(ImageClassifier("resnet10-w4"), image_folder, tmp_path, size=64)
    assert metrics["dice_mean"] is None and metrics["auc"] is not None
    assert (tmp_path / REPORT_FILE).is_file()
