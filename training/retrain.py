"""One training path for every family: load a dataset for a spec, cross-validate the spec's
network (built as inference builds it), optionally from a pretrained shared encoder, and
package the best fold where the node loads models from.

The datasets: a study-level dataset (``training.study_dataset``: every input of the spec),
an image-level manifest (``training.manifest``), a packed ``.npz`` or an image folder (one
B-mode input: image and segcls families). Frozen folds of a manifest are used as they are.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inference.loading import build_network
from inference.registry import (
    Calibration,
    ModelSpec,
    OperatingPoint,
    SelectionRule,
    parse_policy,
    sha256_file,
)
from kernel.errors import DatasetError
from training.kfold import cross_validate, frozen_folds
from training.learning_curves import fold_learning_curve, run_learning_curves
from training.torch_files import save_atomically
from training.trainer import (
    BEST_FILE,
    SUMMARY_FILE,
    VALIDATION_FILE,
    Cases,
    TrainConfig,
    train_network,
)

logger = logging.getLogger(__name__)

ENCODER_FILE = "encoder.pt"
PRETRAIN_DIR = "pretrain"
#: where a run records the encoder file its folds started from (path and sha256)
ENCODER_RECORD = "encoder.json"


PACKAGED_FIGURES = (
    "n", "n_positive", "auc", "auc_ci_low", "auc_ci_high", "accuracy", "sensitivity",
    "specificity", "ppv", "npv", "f1", "kappa", "brier", "ece", "dice_mean", "dice_median",
    "auc_fold_mean", "auc_fold_sd",
)  # fmt: skip
"""The pooled out-of-fold figures a packaged spec and card record."""


class DatasetMismatch(DatasetError):
    """A dataset that does not hold the inputs the spec's network takes (the message says why)."""


def _single_bmode(spec: ModelSpec) -> bool:
    return (
        len(spec.inputs) == 1
        and spec.inputs[0].rule is SelectionRule.BMODE
        and spec.inputs[0].contract.channels == 1
    )


def load_cases(dataset: Path, spec: ModelSpec) -> tuple[Cases, list[np.ndarray] | None]:
    """(cases for ``spec``, the manifest's frozen folds or None) of ``dataset``.

    ``dataset``: a study-level dataset folder, a ``manifest.json`` (or its folder), a packed
    ``.npz`` or an image folder. Image-level data feed only a spec with one grey B-mode input.
    """
    from training.manifest import MANIFEST_FILE, manifest_arrays
    from training.study_dataset import is_study_manifest, load_study_arrays

    dataset = Path(dataset)
    manifest_path = dataset if dataset.suffix == ".json" else dataset / MANIFEST_FILE
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if is_study_manifest(manifest):
            try:
                arrays, folds = load_study_arrays(manifest_path.parent, spec)
            except ValueError as error:
                raise DatasetMismatch(str(error)) from error
            return arrays, frozen_folds(folds)
    if not _single_bmode(spec):
        raise DatasetMismatch(
            f"{dataset} is an image-level dataset; {spec.key} ({spec.family.value}) takes "
            f"{', '.join(i.name for i in spec.inputs)}: build a study-level dataset with "
            f"`lnm-node dataset build --model {spec.key}`"
        )
    if manifest_path.is_file():
        labelled = [r for r in manifest["rows"] if r["malignant"] is not None]
        ordered = [r for r in labelled if r["kind"] == "image"]
        ordered += [r for r in labelled if r["kind"] == "dicom"]
        arrays = manifest_arrays(manifest, spec.input_size)
        has_mask = np.array([r.get("mask") is not None for r in ordered], bool)
        arrays = replace(arrays, has_mask=has_mask)
        return arrays, frozen_folds(np.array([r["fold"] for r in ordered]))
    if dataset.suffix == ".npz":
        from training.pack import load_arrays

        return load_arrays(dataset, spec.input_size), None
    from training.datasets import arrays_from_rows, read_image_folder

    rows = [r for r in read_image_folder(dataset) if not r.label_conflict]
    arrays = arrays_from_rows(rows, spec.input_size, root=dataset)
    return replace(arrays, has_mask=np.array([r.mask is not None for r in rows], bool)), None


def dataset_spec(dataset: Path, size: int) -> ModelSpec:
    """The spec a dataset was built for (a study-level one), else a Y-Net draft at ``size``
    (image-level data: one grey B-mode input)."""
    from training.manifest import MANIFEST_FILE
    from training.networks import draft_spec
    from training.study_dataset import is_study_manifest

    path = Path(dataset) / MANIFEST_FILE
    if path.is_file():
        manifest = json.loads(path.read_text())
        if is_study_manifest(manifest):
            return ModelSpec.model_validate(manifest["spec"])
    return draft_spec("dataset", "ynet", size=size)


def describe_dataset(dataset: Path, note: str = "") -> str:
    """A line for a card on what ``dataset`` holds (its manifest's source and counts)."""
    from training.manifest import MANIFEST_FILE

    path = Path(dataset) / MANIFEST_FILE
    text = f"dataset {Path(dataset).name}"
    if path.is_file():
        manifest = json.loads(path.read_text())
        text = (
            f"{text}: {manifest['n']} labelled cases ({manifest['n_positive']} positive, "
            f"{manifest['n_groups']} groups) from {manifest['source']}"
        )
    return f"{text}. {note}".strip() if note else f"{text}."


def has_shared_encoder(network: nn.Module) -> bool:
    """Whether the network exposes a shared encoder to transfer (``encoder_state_dict``)."""
    return hasattr(network, "encoder_state_dict") and hasattr(network, "load_encoder_state_dict")


def network_maker(spec: ModelSpec, encoder: Path | None = None) -> Callable[[], nn.Module]:
    """A constructor of ``spec``'s network (``build_network``), with ``encoder``'s weights
    loaded into its shared encoder when given."""
    state = None if encoder is None else torch.load(encoder, map_location="cpu", weights_only=True)

    def make() -> nn.Module:
        network = build_network(spec)
        if state is not None:
            network.load_encoder_state_dict(state)  # type: ignore[operator]
        return network

    return make


def check_encoder_file(spec: ModelSpec, path: Path) -> Path:
    """``path`` when it holds a shared-encoder state dict that ``spec``'s network loads
    (strictly); raises ``ValueError`` naming what does not fit."""
    network = build_network(spec)
    if not has_shared_encoder(network):
        raise ValueError(f"network {spec.architecture!r} has no shared encoder to load {path} into")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_encoder_state_dict(state)  # type: ignore[operator]
    except (RuntimeError, pickle.UnpicklingError, AttributeError, TypeError) as error:
        raise ValueError(
            f"{path} is not an encoder state dict for {spec.architecture} ({spec.backbone}) at "
            f"{spec.input_size} px: {' '.join(str(error).split())[:240]}"
        ) from error
    return Path(path)


def pretrain_encoder(spec: ModelSpec, cases: Cases, run: Path, config: TrainConfig) -> Path:
    """Train ``spec``'s network on ``cases`` (another organ's data) and save its shared
    encoder as ``run/pretrain/encoder.pt``; reused when it exists. Raises ``ValueError`` for
    a network without a shared encoder."""
    if not has_shared_encoder(build_network(spec)):
        raise ValueError(f"network {spec.architecture!r} has no shared encoder to pretrain")
    path = Path(run) / PRETRAIN_DIR / ENCODER_FILE
    if path.is_file():
        return path
    make = network_maker(spec)
    outcome = train_network(make, cases, path.parent, config, label="pretrain")
    network = make()
    network.load_state_dict(torch.load(outcome.best_state_path, weights_only=True))
    save_atomically(network.encoder_state_dict(), path)  # type: ignore[operator]
    return path


def record_encoder(run: Path, encoder: Path) -> Path:
    """Write ``run/encoder.json``: the encoder file every fold of ``run`` starts from, and its
    sha256."""
    Path(run).mkdir(parents=True, exist_ok=True)
    record = {"path": str(Path(encoder).resolve()), "sha256": sha256_file(Path(encoder))}
    path = Path(run) / ENCODER_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def retrain(
    spec: ModelSpec,
    cases: Cases,
    tests: list[np.ndarray] | None,
    run: Path,
    config: TrainConfig,
    k: int | None = None,
    encoder: Path | None = None,
) -> dict:
    """k-fold cross-validation of ``spec``'s network on ``cases`` (resumable); the summary.

    ``tests``: the manifest's frozen folds (then ``k`` defaults to their number). ``encoder``
    (recorded with its sha256 in ``run/encoder.json``) starts every fold's shared encoder.
    Each finished fold's learning curve is drawn (``training.learning_curves``), then all folds'.
    """
    k = k or (len(tests) if tests is not None else 5)
    if encoder is not None:
        record_encoder(run, encoder)
    summary = cross_validate(
        network_maker(spec, encoder), cases, run, config, k=k, tests=tests,
        after_fold=fold_learning_curve,
    )  # fmt: skip
    run_learning_curves(run)
    return summary


def pooled_figures(pooled: dict) -> dict[str, float]:
    """The finite :data:`PACKAGED_FIGURES` of a k-fold summary's pooled figures."""
    return {
        name: float(pooled[name])
        for name in PACKAGED_FIGURES
        if isinstance(pooled.get(name), int | float) and math.isfinite(pooled[name])
    }


def best_fold(summary: dict) -> int:
    """The fold whose own test cases gave the highest AUC (the first on a tie)."""
    aucs = [f.get("auc") for f in summary["folds"]]
    scores = [a if a is not None and math.isfinite(a) else -1.0 for a in aucs]
    return int(np.argmax(scores))


def fold_operating_point(
    fold_dir: Path, fold: int, calibration: str, policy: str
) -> tuple[float, Calibration | None, OperatingPoint]:
    """(threshold, calibration or None, operating point) of a fold, fitted on its inner
    validation split (``training.calibrate``). A run trained before the trainer kept its
    validation probabilities gives its recorded Youden threshold, uncalibrated, only."""
    from training.calibrate import validation_operating_point

    validation = fold_dir / VALIDATION_FILE
    if validation.is_file():
        with np.load(validation) as saved:
            n = int((saved["malignant"] >= 0).sum())
        where = f"fold {fold}'s inner validation split ({n} cases)"
        return validation_operating_point(validation, calibration, policy, where)
    if calibration != "none" or parse_policy(policy)[0] != "youden":
        raise ValueError(
            f"{fold_dir} has no {VALIDATION_FILE} (trained before it was kept): retrain the run "
            "to calibrate it or choose another operating point"
        )
    threshold = json.loads((fold_dir / SUMMARY_FILE).read_text())["threshold"]
    where = f"fold {fold}'s inner validation split"
    return (
        min(max(float(threshold), 0.01), 0.99),
        None,
        OperatingPoint(policy="youden", chosen_on=where),
    )


def package_run(
    spec: ModelSpec,
    run: Path,
    summary: dict,
    version: str,
    models_dir: Path,
    dataset: str,
    calibration: str = "none",
    operating_point: str = "youden",
) -> ModelSpec:
    """Package the best fold's weights (by its out-of-fold AUC) of ``run`` as ``spec.key``
    ``version`` into ``models_dir/<key>-<version>/``; returns the packaged spec.

    The spec keeps ``spec``'s identity, inputs and output codes; its threshold is that fold's
    inner-validation Youden threshold, its metrics the pooled out-of-fold figures of every
    fold (plus ``packaged_fold``). One fold's weights, not an ensemble; the card says so.
    """
    from training.package import write_package
    from training.package_families import NetworkFacts, render_card

    fold = best_fold(summary)
    fold_dir = Path(run) / f"fold_{fold}"
    target = Path(models_dir) / f"{spec.key}-{version}"
    if (target / "spec.json").exists():
        raise FileExistsError(f"{target} exists: package under another version")
    threshold, fitted, point = fold_operating_point(fold_dir, fold, calibration, operating_point)
    pooled, k = summary["pooled"], len(summary["folds"])
    fold_auc = summary["folds"][fold].get("auc")
    metrics = {**pooled_figures(pooled), "packaged_fold": float(fold)}
    facts = NetworkFacts.of_spec(
        spec,
        threshold=threshold,
        trained_on=f"{dataset} Trained on the training part of fold {fold} of a {k}-fold "
        "cross-validation.",
        evaluated_on=f"The same dataset: out-of-fold predictions of all {k} folds, pooled.",
        metrics=metrics,
        training=(
            f"Weights: fold {fold} alone (the fold with the best out-of-fold AUC, "
            f"{'n/a' if fold_auc is None else f'{fold_auc:.3f}'}), not an ensemble of the "
            f"folds. Trained with `lnm-node train` (run folder {Path(run).name})."
        ),
        evaluation=(
            f"Threshold {threshold:.3f}: {point.policy} on fold {fold}'s inner validation split"
            f"{'' if fitted is None else ' (calibrated probabilities)'}. Figures: every fold's "
            "test cases (uncalibrated probabilities) at that fold's own Youden threshold, pooled."
        ),
        limitations=(
            (
                "Cross-validated on the training data's own labelled cases only; no external test "
                "set: evaluate it on other studies (`lnm-node evaluate`) before promoting it."
            ),
            (
                "Registered beside the live version but not enabled: `lnm-node models shadow` runs "
                "it without sending results, `models promote` makes it live."
            ),
        ),
    )
    state = torch.load(fold_dir / BEST_FILE, map_location="cpu", weights_only=True)

    def fields(sha256: str) -> dict:
        base = spec.model_dump(mode="json")
        return {
            **base,
            "version": version,
            "threshold": threshold,
            "weights_sha256": sha256,
            "trained_on": facts.trained_on,
            "evaluated_on": facts.evaluated_on,
            "metrics": metrics,
            "calibration": None if fitted is None else fitted.model_dump(mode="json"),
            "operating_point": point.model_dump(mode="json"),
        }

    packaged = write_package(state, target, fields, lambda s: render_card(s, facts))
    logger.info("packaged %s (fold %d) into %s", packaged.ref, fold, target)
    return ModelSpec.load(target)
