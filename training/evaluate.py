"""Run a network over an image folder exactly as inference does and write metrics and figures."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from torch import nn

from inference.calibration import calibrate
from inference.gate import FeatureTap, GateReference, OutOfDomain, check, load_reference
from inference.loading import load_network
from inference.measure import lesion_mask
from inference.registry import ModelSpec
from inference.selection import CeusRule
from inference.transforms import to_model_input, to_source_grid
from inference.tta import with_tta
from training.datasets import Row, load_grey, load_mask, read_image_folder
from training.metrics import (
    calibration_table,
    classification_summary,
    dice_scores,
    dice_summary,
    net_benefit,
)
from training.plots import (
    SheetCase,
    calibration_plot,
    contact_sheet,
    decision_curve_plot,
    roc_plot,
)
from training.report import write_report
from training.trainer import split_outputs

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CASES_FILE = "cases.csv"
DECISION_THRESHOLDS = tuple(np.round(np.arange(0.02, 0.96, 0.02), 2).tolist())


def _select(rows: list[Row], subset_groups: Collection[str] | None) -> tuple[list[Row], int]:
    usable = [row for row in rows if not row.label_conflict]
    excluded = len(rows) - len(usable)
    if subset_groups is not None:
        wanted = set(subset_groups)
        usable = [row for row in usable if row.group in wanted]
    return usable, excluded


def _sheet_indices(rows: list[Row], count: int) -> set[int]:
    """The first ``count/2`` malignant and first benign rows (deterministic, row order)."""
    chosen: list[int] = []
    for label in (1, 0):
        chosen += [i for i, row in enumerate(rows) if row.malignant == label][: count // 2]
    return set(chosen)


@torch.no_grad()
def _gated(
    spec: ModelSpec,
    network: nn.Module,
    reference: GateReference,
    rows: list[Row],
    size: int,
    device: str,
) -> tuple[list[Row], list[str]]:
    """(rows the gate accepts, names of those it declines), scored as the node scores them."""
    kept, declined = [], []
    with FeatureTap(network, spec.scope.gate.layers) as tap:  # type: ignore[union-attr]
        for row in rows:
            network(to_model_input(load_grey(row.image), size).to(device))
            try:
                check(spec, reference, tap.last())
            except OutOfDomain as error:
                logger.info("declined %s: %s", row.image.name, error)
                declined.append(row.image.name)
                continue
            kept.append(row)
    return kept, declined


@torch.no_grad()
def evaluate(
    network_or_spec: nn.Module | ModelSpec,
    dataset_dir: Path,
    out_dir: Path,
    subset_groups: Collection[str] | None = None,
    threshold: float | None = None,
    device: str = "cpu",
    size: int | None = None,
    sheet_cases: int = 8,
    gate: bool = True,
) -> dict:
    """Evaluate on ``dataset_dir`` (optionally only ``subset_groups``); returns the metrics.

    Images go through ``to_grey_unit``/``to_model_input`` at the spec's input size; the
    probability is the network's through the spec's calibration (``inference.calibration``, as
    ``run_model`` reports it; ``cases.csv`` also keeps the network's own); the mask is
    ``sigmoid(seg)`` brought back with ``to_source_grid`` and made the mask the node delivers
    (``inference.measure.lesion_mask``: its largest component), so Dice is on the image grid and
    of the outline a radiologist sees. Rows of conflicting-label groups are excluded.
    ``threshold`` defaults to the spec's (0.5 for a bare network); ``size`` to the spec's input
    size (256 for a bare network).
    Writes ``metrics.json``, ``cases.csv``, ``roc.png``, ``calibration.png``,
    ``decision_curve.png``, ``cases.png`` and the one-page ``report.html`` into ``out_dir``.

    A spec with a gate (``inference.gate``) applies it as the node does, unless ``gate`` is
    False: images it declines get no prediction and are left out of every figure;
    ``n_declined_out_of_domain`` counts them (``n`` counts the images evaluated). The spec's
    test-time augmentations are averaged in as ``run_model`` does (``inference.tta``).
    """
    gate_reference, calibration = None, None
    if isinstance(network_or_spec, ModelSpec):
        spec = network_or_spec
        network = load_network(spec, device)
        gate_reference = load_reference(spec) if gate else None
        size = size or spec.input_size
        threshold = spec.threshold if threshold is None else threshold
        calibration = spec.calibration
        model_ref = spec.ref
        augmentations = list(spec.tta)
    else:
        augmentations = []
        network = network_or_spec.to(device)
        size = size or 256
        threshold = 0.5 if threshold is None else threshold
        model_ref = type(network).__name__
    network.eval()
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, excluded = _select(read_image_folder(dataset_dir), subset_groups)
    if not rows:
        raise ValueError(
            f"no rows of {dataset_dir} to evaluate (subset: {subset_groups is not None})"
        )
    declined: list[str] = []
    if gate_reference is not None:
        rows, declined = _gated(spec, network, gate_reference, rows, size, device)
        if not rows:
            raise ValueError(f"the gate of {spec.ref} declined every image of {dataset_dir}")
    sheet_at = _sheet_indices(rows, sheet_cases)
    probabilities, network_probabilities, predicted, reference, sheet = [], [], [], [], []
    with Progress(disable=not Console().is_terminal) as progress:
        task = progress.add_task("evaluate", total=len(rows))
        for index, row in enumerate(rows):
            grey = load_grey(row.image)
            truth = load_mask(row.mask, grey.shape)
            output = with_tta(network, [to_model_input(grey, size).to(device)], augmentations)
            seg_logits, cls_logits = split_outputs(output)
            network_probability = float(torch.sigmoid(cls_logits.double())[0, 0])
            probability = float(calibrate(calibration, network_probability))  # as run_model
            if seg_logits is None:  # a classifier: no mask, no Dice
                mask = np.zeros(grey.shape, bool)
            else:
                mask = lesion_mask(to_source_grid(torch.sigmoid(seg_logits.float()), grey.shape))
            probabilities.append(probability)
            network_probabilities.append(network_probability)
            predicted.append(mask)
            reference.append(truth)
            if index in sheet_at:
                sheet.append(
                    SheetCase(grey, truth, mask, probability, row.malignant, row.image.name)
                )
            progress.advance(task)
    segmenter = seg_logits is not None
    dice = dice_scores(predicted, reference) if segmenter else [float("nan")] * len(rows)
    # a row without a mask file has no reference: no Dice (an empty mask file is "no lesion")
    dice = [float("nan") if row.mask is None else d for row, d in zip(rows, dice, strict=True)]
    lesion = [i for i, truth in enumerate(reference) if truth.any()]
    labelled = [i for i, row in enumerate(rows) if row.malignant is not None]
    y = np.array([rows[i].malignant for i in labelled], dtype=int)
    p = np.array([probabilities[i] for i in labelled], dtype=float)
    metrics = classification_summary(y, p, threshold)
    metrics.pop("n")
    lesion_dice = dice_summary([dice[i] for i in lesion] if segmenter else [])
    all_dice = dice_summary([d for d in dice if not np.isnan(d)] if segmenter else [])
    metrics.update(
        model=model_ref,
        dataset=dataset_dir.name,
        subset="groups" if subset_groups is not None else "all",
        n=len(rows),
        n_labelled=len(labelled),
        n_excluded_label_conflict=excluded,
        n_declined_out_of_domain=len(declined),
        gate_threshold=None if gate_reference is None else spec.scope.gate.threshold,  # type: ignore[union-attr]
        input_size=size,
        calibration_method="none" if calibration is None else calibration.method.value,
        tta=[str(a) for a in augmentations],
        **lesion_dice,
        dice_mean_all_images=all_dice["dice_mean"],
        dice_note="dice_* over images with a non-empty reference mask; "
        "dice_mean_all_images also counts empty masks (1 when the prediction is empty too); "
        "an image without a mask file has no Dice",
        calibration=calibration_table(y, p),
        decision_curve=net_benefit(y, p, DECISION_THRESHOLDS),
    )
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    with (out_dir / CASES_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "group", "malignant", "probability", "dice", "reference_empty",
                         "network_probability"])  # fmt: skip
        for row, probability, score, truth, raw in zip(
            rows, probabilities, dice, reference, network_probabilities, strict=True
        ):
            writer.writerow(
                [
                    row.image.relative_to(dataset_dir),
                    row.group,
                    "" if row.malignant is None else row.malignant,
                    f"{probability:.6f}",
                    f"{score:.6f}",
                    "" if row.mask is None else int(not truth.any()),
                    f"{raw:.8f}",
                ]
            )
    _write_plots(metrics, y, p, out_dir)
    contact_sheet(sheet, out_dir / "cases.png")
    write_report(metrics, out_dir)
    logger.info(
        "evaluated %s on %d images: auc %s dice_mean %s",
        model_ref,
        len(rows),
        metrics["auc"],
        metrics["dice_mean"],
    )
    return metrics


def evaluate_studies(
    spec: ModelSpec,
    dataset_dir: Path,
    out_dir: Path,
    device: str = "cpu",
    ceus: CeusRule | None = None,
) -> dict:
    """Run ``spec`` on every study of a study-level dataset through ``run_model`` (the node's
    inference path: selection, crop, resampling, the spec's threshold); returns the metrics.

    Writes ``metrics.json``, ``cases.csv`` (unit, group, malignant, probability, call),
    ``roc.png``, ``calibration.png``, ``decision_curve.png`` and ``report.html``.
    """
    from inference.runner import run_model
    from training.study_dataset import changed_files

    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    changed = changed_files(manifest)
    if changed:
        raise ValueError(
            f"{len(changed)} file(s) changed since the dataset was built: {changed[0]}"
        )
    network = load_network(spec, device)
    rows = manifest["rows"]
    probabilities = []
    with Progress(disable=not Console().is_terminal) as progress:
        for row in progress.track(rows, description="evaluate"):
            paths = [Path(f["path"]) for f in row["files"]]
            probabilities.append(run_model(spec, network, paths, device, ceus=ceus).probability)
    y = np.array([r["malignant"] for r in rows], dtype=int)
    p = np.array(probabilities, dtype=float)
    metrics = classification_summary(y, p, spec.threshold)
    metrics.update(
        model=spec.ref,
        dataset=dataset_dir.name,
        subset="all",
        n_excluded=manifest.get("n_excluded", 0),
        input_size=spec.input_size,
        tta=[str(a) for a in spec.tta],
        calibration=calibration_table(y, p),
        decision_curve=net_benefit(y, p, DECISION_THRESHOLDS),
    )
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    with (out_dir / CASES_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["unit", "group", "malignant", "probability", "call"])
        for row, probability in zip(rows, probabilities, strict=True):
            call = int(probability >= spec.threshold)
            writer.writerow(
                [row["uid"], row["group"], row["malignant"], f"{probability:.6f}", call]
            )
    _write_plots(metrics, y, p, out_dir)
    write_report(metrics, out_dir)
    logger.info("evaluated %s on %d studies: auc %s", spec.ref, len(rows), metrics["auc"])
    return metrics


def _write_plots(metrics: dict, y: np.ndarray, p: np.ndarray, out_dir: Path) -> None:
    """ROC, calibration and decision-curve plots of ``metrics`` into ``out_dir``."""
    roc_plot(
        y, p, metrics["auc"], (metrics["auc_ci_low"], metrics["auc_ci_high"]), out_dir / "roc.png"
    )
    calibration_plot(metrics["calibration"], out_dir / "calibration.png")
    decision_curve_plot(metrics["decision_curve"], out_dir / "decision_curve.png")
