"""k-fold cross-validation with per-fold artefacts on disk (nnU-Net style) and pooled out-of-fold metrics.

``out_dir/fold_<i>/`` holds the fold's training artefacts (``trainer.train_network``) and
``predictions.npz`` (its test cases' probabilities, Dice and call); a fold with predictions is
done and skipped on a rerun. ``out_dir/oof.npz`` pools every fold's test predictions and
``out_dir/cv_metrics.json`` holds per-fold and pooled figures. No pydantic, pydicom or settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.datasets import TrainingArrays
from training.metrics import binary_metrics, classification_summary, dice_scores, dice_summary
from training.splits import fold_test_indices
from training.trainer import TrainConfig, model_inputs, predict, train_network

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.npz"
POOLED_FILE = "oof.npz"
CV_METRICS_FILE = "cv_metrics.json"
FOLDS_FILE = "folds.json"


def fold_indices(arrays: TrainingArrays, k: int, seed: int) -> list[np.ndarray]:
    """Test indices of each of ``k`` label-stratified group folds (groups never straddle)."""
    return fold_test_indices(arrays.groups.tolist(), arrays.malignant.tolist(), k, seed)


def _fold_predictions(
    network: nn.Module, arrays: TrainingArrays, device: str, threshold: float
) -> dict[str, np.ndarray]:
    probabilities, masks = predict(network, model_inputs(arrays.images), device)
    dice = np.full(len(arrays.images), np.nan)
    if masks is not None:
        dice = np.asarray(dice_scores(list(masks), list(arrays.masks)), dtype=float)
    return {
        "probability": probabilities.astype(np.float32),
        "dice": dice,
        "call": (probabilities >= threshold).astype(np.int8),
        "threshold": np.full(len(probabilities), threshold, np.float32),
    }


def run_fold(
    make_network: Callable[[], nn.Module],
    arrays: TrainingArrays,
    test_index: np.ndarray,
    fold_dir: Path,
    config: TrainConfig,
    fold: int,
) -> dict[str, np.ndarray]:
    """Train on all but ``test_index``, predict the test cases with the best epoch; resumable."""
    done = fold_dir / PREDICTIONS_FILE
    if done.is_file():
        with np.load(done) as saved:
            return {name: saved[name] for name in saved.files}
    train_index = np.setdiff1d(np.arange(len(arrays.images)), test_index)
    outcome = train_network(
        make_network, arrays.subset(train_index), fold_dir, config, label=f"fold {fold}"
    )
    network = make_network()
    network.load_state_dict(
        torch.load(outcome.best_state_path, map_location="cpu", weights_only=True)
    )
    network.to(config.device)
    result = _fold_predictions(network, arrays.subset(test_index), config.device, outcome.threshold)
    result["index"] = np.asarray(test_index, np.int64)
    temporary = fold_dir / "predictions.tmp.npz"
    np.savez(temporary, **result)
    temporary.replace(done)
    return result


def summarise(arrays: TrainingArrays, predictions: list[dict[str, np.ndarray]]) -> dict:
    """Per-fold and pooled out-of-fold figures (AUC with DeLong CI, calls at each fold's threshold, Dice)."""
    per_fold = []
    for fold, result in enumerate(predictions):
        per_fold.append({"fold": fold, **_figures(arrays, result)})
    pooled = {name: np.concatenate([r[name] for r in predictions]) for name in predictions[0]}
    summary = {"pooled": _figures(arrays, pooled), "folds": per_fold}
    for name in ("auc", "accuracy", "dice_mean"):
        values = [f[name] for f in per_fold if f.get(name) is not None]
        if values:
            summary["pooled"][f"{name}_fold_mean"] = float(np.mean(values))
            summary["pooled"][f"{name}_fold_sd"] = (
                float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            )
    return summary


def _figures(arrays: TrainingArrays, result: dict[str, np.ndarray]) -> dict:
    index = result["index"]
    y = arrays.malignant[index].astype(int)
    labelled = y >= 0
    figures = classification_summary(y[labelled], result["probability"][labelled], 0.5)
    # calls use each fold's own (inner-validation Youden) threshold
    calls = binary_metrics(y[labelled], result["call"][labelled].astype(float), 0.5)
    calls.pop("threshold")
    figures.update(calls)
    figures["threshold"] = float(np.mean(result["threshold"]))  # mean of the folds' thresholds
    lesion = arrays.masks[index].reshape(len(index), -1).any(axis=1)
    dice = result["dice"][lesion]
    figures.update(dice_summary([] if np.isnan(dice).all() else dice.tolist()))
    return figures


def cross_validate(
    make_network: Callable[[], nn.Module],
    arrays: TrainingArrays,
    out_dir: Path,
    config: TrainConfig,
    k: int = 5,
    folds: list[int] | None = None,
) -> dict:
    """Run (or resume) ``k``-fold CV; writes ``folds.json``, ``oof.npz`` and ``cv_metrics.json``.

    ``folds`` restricts the run to some folds (parallel runs); the pooled files are written
    once every fold has predictions. Returns the summary (empty when folds are missing).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tests = fold_indices(arrays, k, config.seed)
    (out_dir / FOLDS_FILE).write_text(
        json.dumps(
            {
                "k": k,
                "seed": config.seed,
                "groups": [sorted(set(arrays.groups[t].tolist())) for t in tests],
                "config": asdict(config),
            },
            indent=2,
        )
        + "\n"
    )
    for fold in folds if folds is not None else range(k):
        fold_config = replace(config, seed=config.seed + fold)
        run_fold(make_network, arrays, tests[fold], out_dir / f"fold_{fold}", fold_config, fold)
    return pool(arrays, out_dir, k)


def pool(arrays: TrainingArrays, out_dir: Path, k: int) -> dict:
    """Pool the folds' predictions under ``out_dir`` into ``oof.npz`` and ``cv_metrics.json``."""
    paths = [Path(out_dir) / f"fold_{fold}" / PREDICTIONS_FILE for fold in range(k)]
    if not all(path.is_file() for path in paths):
        return {}
    predictions = []
    for path in paths:
        with np.load(path) as saved:
            predictions.append({name: saved[name] for name in saved.files})
    summary = summarise(arrays, predictions)
    pooled = {name: np.concatenate([r[name] for r in predictions]) for name in predictions[0]}
    pooled["fold"] = np.concatenate(
        [np.full(len(r["index"]), f) for f, r in enumerate(predictions)]
    )
    pooled["malignant"] = arrays.malignant[pooled["index"]]
    pooled["names"] = arrays.names[pooled["index"]]
    np.savez(Path(out_dir) / POOLED_FILE, **pooled)
    (Path(out_dir) / CV_METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
