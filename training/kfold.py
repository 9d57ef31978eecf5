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

from training.metrics import binary_metrics, classification_summary, dice_scores, dice_summary
from training.splits import fold_test_indices
from training.trainer import Cases, TrainConfig, lesion_cases, predict, train_network

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.npz"
POOLED_FILE = "oof.npz"
CV_METRICS_FILE = "cv_metrics.json"
FOLDS_FILE = "folds.json"


def fold_indices(arrays: Cases, k: int, seed: int) -> list[np.ndarray]:
    """Test indices of each of ``k`` label-stratified group folds (groups never straddle)."""
    return fold_test_indices(arrays.groups.tolist(), arrays.malignant.tolist(), k, seed)


def frozen_folds(fold_of_case: np.ndarray) -> list[np.ndarray]:
    """Test indices per fold of a manifest's frozen folds (``fold_of_case[i]``: case i's fold)."""
    folds = np.asarray(fold_of_case)
    if (folds < 0).any():
        raise ValueError(
            f"{int((folds < 0).sum())} case(s) have no fold in the manifest: rebuild the dataset "
            "with fewer folds or more groups"
        )
    return [np.flatnonzero(folds == fold) for fold in range(int(folds.max()) + 1)]


def _fold_predictions(
    network: nn.Module, arrays: Cases, device: str, threshold: float
) -> dict[str, np.ndarray]:
    probabilities, masks = predict(network, arrays.network_inputs(), device)
    dice = np.full(len(arrays.malignant), np.nan)
    if masks is not None and arrays.masks is not None:
        dice = np.asarray(dice_scores(list(masks), list(arrays.masks)), dtype=float)
    return {
        "probability": probabilities.astype(np.float32),
        "dice": dice,
        "call": (probabilities >= threshold).astype(np.int8),
        "threshold": np.full(len(probabilities), threshold, np.float32),
    }


def run_fold(
    make_network: Callable[[], nn.Module],
    arrays: Cases,
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
    train_index = np.setdiff1d(np.arange(len(arrays.malignant)), test_index)
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


def summarise(arrays: Cases, predictions: list[dict[str, np.ndarray]]) -> dict:
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


def _figures(arrays: Cases, result: dict[str, np.ndarray]) -> dict:
    index = result["index"]
    y = arrays.malignant[index].astype(int)
    labelled = y >= 0
    figures = classification_summary(y[labelled], result["probability"][labelled], 0.5)
    # calls use each fold's own (inner-validation Youden) threshold
    calls = binary_metrics(y[labelled], result["call"][labelled].astype(float), 0.5)
    calls.pop("threshold")
    figures.update(calls)
    figures["threshold"] = float(np.mean(result["threshold"]))  # mean of the folds' thresholds
    lesion = lesion_cases(arrays)[index]
    dice = result["dice"][lesion]
    figures.update(dice_summary([] if np.isnan(dice).all() else dice.tolist()))
    return figures


RESULT_SETTINGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "classification_weight",
    "validation_fraction",
    "augment",
    "max_seconds",
    "time_schedule",
    "patience",
    "ema_decay",
)
"""The training settings a run's results depend on: a run resumed with others would mix them
(finished folds keep theirs), so it is refused (device and loader workers may change)."""


def write_folds(out_dir: Path, arrays: Cases, tests: list[np.ndarray], config: TrainConfig) -> Path:
    """Write ``out_dir/folds.json`` (each fold's test groups); ``ValueError`` when the run was
    split differently before (another dataset, seed or exclusion): its folds would not match."""
    groups = [sorted(set(arrays.groups[t].tolist())) for t in tests]
    path = Path(out_dir) / FOLDS_FILE
    if path.is_file():  # a resumed run keeps the record of the settings it was trained with
        if json.loads(path.read_text()).get("groups") != groups:
            raise ValueError(f"{out_dir} was split into other folds (another dataset, seed or "
                             "exclusion): use a new --out folder")  # fmt: skip
        return path
    record = {"k": len(tests), "seed": config.seed, "groups": groups, "config": asdict(config)}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def changed_settings(out_dir: Path, config: TrainConfig) -> list[str]:
    """The :data:`RESULT_SETTINGS` in which ``config`` differs from those the run at
    ``out_dir`` was trained with (``folds.json``), as "key old, not new"; [] for a new run."""
    record = _folds_record(out_dir)
    if record is None:
        return []
    old, new = record.get("config", {}), asdict(config)
    return [f"{key} {old[key]!r}, not {new[key]!r}" for key in RESULT_SETTINGS
            if key in old and old[key] != new[key]]  # fmt: skip


def fold_plan(
    arrays: Cases, tests: list[np.ndarray] | None, k: int, seed: int
) -> list[np.ndarray]:
    """Each fold's test indices as :func:`cross_validate` trains them: a manifest's frozen
    folds ``tests``, else ``k`` folds drawn from the groups with ``seed``."""
    return tests if tests is not None else fold_indices(arrays, k, seed)


def cross_validate(
    make_network: Callable[[], nn.Module],
    arrays: Cases,
    out_dir: Path,
    config: TrainConfig,
    k: int = 5,
    folds: list[int] | None = None,
    tests: list[np.ndarray] | None = None,
    after_fold: Callable[[Path], object] | None = None,
) -> dict:
    """Run (or resume) ``k``-fold CV; writes ``folds.json``, ``oof.npz`` and ``cv_metrics.json``.

    ``tests`` are the frozen folds of a manifest (test indices per fold; :func:`frozen_folds`);
    without them the folds are drawn from the groups with ``config.seed``. ``folds`` restricts
    the run to some folds (parallel runs); the pooled files are written once every fold has
    predictions. ``after_fold(fold_dir)`` runs after each fold (trained or resumed). Returns
    the summary (empty when folds are missing).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tests is not None and len(tests) != k:
        raise ValueError(f"the manifest froze {len(tests)} folds, not {k}")
    tests = fold_plan(arrays, tests, k, config.seed)
    changed = changed_settings(out_dir, config)
    write_folds(out_dir, arrays, tests, config)
    todo = [f for f in (folds if folds is not None else range(k))
            if not (out_dir / f"fold_{f}" / PREDICTIONS_FILE).is_file()]  # fmt: skip
    if changed and todo:  # the folds left would be trained otherwise than the finished ones
        raise ValueError(f"{out_dir} was trained with other settings ({'; '.join(changed)}): "
                         "rerun with those to resume it, or use a new --out folder")  # fmt: skip
    if changed:
        logger.warning("every fold of %s was already trained, with other settings (%s): "
                       "nothing is retrained, the run's results are those", out_dir, "; ".join(changed))  # fmt: skip
    for fold in folds if folds is not None else range(k):
        fold_config = replace(config, seed=config.seed + fold)
        run_fold(make_network, arrays, tests[fold], out_dir / f"fold_{fold}", fold_config, fold)
        if after_fold is not None:
            after_fold(out_dir / f"fold_{fold}")
    return pool(arrays, out_dir, k)


def read_pooled(run: Path) -> dict[str, np.ndarray]:
    """A run's pooled out-of-fold arrays (``oof.npz``: index, malignant, probability, dice,
    lesion ...), every array in the order of the case index."""
    with np.load(Path(run) / POOLED_FILE) as oof:
        order = np.argsort(oof["index"])
        return {name: oof[name][order] for name in oof.files}


def _folds_record(out_dir: Path) -> dict | None:
    path = Path(out_dir) / FOLDS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def run_folds(out_dir: Path) -> int | None:
    """How many folds the run at ``out_dir`` was split into (``folds.json``), or None."""
    record = _folds_record(out_dir)
    return None if record is None else int(record["k"])


def _check_dataset(
    arrays: Cases, out_dir: Path, frozen: list[list[str]], predictions: list[dict]
) -> None:
    """``ValueError`` unless every fold's predicted cases are, in ``arrays``, of the groups
    ``frozen`` (``folds.json``) for that fold: predictions index the training dataset's cases,
    so another dataset would pool other images under these probabilities."""
    for fold, (groups, result) in enumerate(zip(frozen, predictions, strict=True)):
        index = np.asarray(result["index"])
        if index.size and (index.min() < 0 or index.max() >= len(arrays.groups)):
            raise ValueError(f"{out_dir}: fold {fold} predicts cases this dataset does not hold: "
                             "not the dataset the run was trained on")  # fmt: skip
        if not set(arrays.groups[index].tolist()) <= set(groups):
            raise ValueError(f"{out_dir}: fold {fold}'s cases are of other groups in this "
                             "dataset than the run froze: not the dataset it was trained on")  # fmt: skip


def pool(arrays: Cases, out_dir: Path, k: int) -> dict:
    """Pool the folds' predictions under ``out_dir`` into ``oof.npz`` and ``cv_metrics.json``.

    Raises ValueError (writing nothing) when ``arrays`` is not the dataset the run was
    trained on, or ``k`` is not the run's number of folds."""
    record = _folds_record(out_dir)
    if record is not None and int(record["k"]) != k:
        raise ValueError(f"{out_dir} was split into {record['k']} folds, not {k}")
    paths = [Path(out_dir) / f"fold_{fold}" / PREDICTIONS_FILE for fold in range(k)]
    if not all(path.is_file() for path in paths):
        return {}
    predictions = []
    for path in paths:
        with np.load(path) as saved:
            predictions.append({name: saved[name] for name in saved.files})
    if record is not None:
        _check_dataset(arrays, out_dir, record["groups"], predictions)
    summary = summarise(arrays, predictions)
    pooled = {name: np.concatenate([r[name] for r in predictions]) for name in predictions[0]}
    pooled["fold"] = np.concatenate(
        [np.full(len(r["index"]), f) for f, r in enumerate(predictions)]
    )
    pooled["malignant"] = arrays.malignant[pooled["index"]]
    pooled["names"] = arrays.names[pooled["index"]]
    pooled["lesion"] = lesion_cases(arrays)[pooled["index"]]  # where the Dice counts
    np.savez(Path(out_dir) / POOLED_FILE, **pooled)
    (Path(out_dir) / CV_METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
