"""The image sets a gate is fitted and measured on, and :func:`refit_gate`, which runs it all.

In-domain data of a model: an image folder (``labels.csv``, e.g. busi-dev) whose hold-out groups
are left out of the fit, or ``phantom``: phantom studies of the model's training kind (``phantom.study``) through the
node's input path, other seeds for the hold-out. Out-of-domain sets: other image
folders (e.g. ddti thyroid, busi-dev breast for a phantom model), real DICOM files (B-mode
chosen, cropped and resampled as the node does), phantom lymph-node studies and noise.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from inference.loading import load_network
from inference.networks.ensemble import member_layer
from inference.registry import ModelSpec
from kernel.errors import InvalidInput
from training.datasets import Row, load_grey, read_image_folder, usable_rows
from training.exclusion import model_holdout
from training.gate_fit import (
    DEFAULT_QUANTILE,
    GateFit,
    dicom_inputs,
    fit_gate,
    gate_features,
    grey_inputs,
    measure_gate,
    noise_images,
    write_gate,
)
from training.trainer import Cases

logger = logging.getLogger(__name__)

PHANTOM = "phantom"
INNER_SEED = 2026
INNER_FRACTION = 0.2
PHANTOM_FIT, PHANTOM_VALIDATION, PHANTOM_HOLDOUT = 192, 128, 96
#: share of phantom cases whose B-mode alone is ambiguous (``lnm-node phantom``'s default)
PHANTOM_AMBIGUOUS = 0.5
NOISE_IMAGES = 60


class UnknownLayer(ValueError):
    """A layer asked for as a gate feature that the model's network does not have."""


def split_groups(
    rows: list[Row], holdout: set[str], seed: int = INNER_SEED, fraction: float = INNER_FRACTION
) -> tuple[list[Row], list[Row], list[Row]]:
    """(inner-train, inner-validation, hold-out) rows; the inner split draws whole groups."""
    held = [row for row in rows if row.group in holdout]
    rest = [row for row in rows if row.group not in holdout]
    groups = sorted({row.group for row in rest})
    rng = np.random.default_rng(seed)
    size = min(len(groups), max(1, round(fraction * len(groups))))  # none: nothing to split
    chosen = set(rng.choice(groups, size=size, replace=False))
    return (
        [row for row in rest if row.group not in chosen],
        [row for row in rest if row.group in chosen],
        held,
    )


def _folder_batches(spec: ModelSpec, paths: list[Path]) -> Iterator[list[torch.Tensor]]:
    for path in paths:
        yield grey_inputs(spec, load_grey(path))


def _dicom_batches(spec: ModelSpec, paths: list[Path]) -> Iterator[list[torch.Tensor]]:
    for path in paths:
        try:
            yield dicom_inputs(spec, [path])
        except InvalidInput as error:  # no B-mode frame in it: nothing to score
            logger.info("gate: %s skipped: %s", path.name, error)


def _phantom_batches(spec: ModelSpec, seeds: range) -> Iterator[list[torch.Tensor]]:
    """Phantom studies of the model's training kind (``lnm-node phantom``'s generator, half of
    them ambiguous in B-mode), each through the node's own input path (``study_inputs``)."""
    from inference.registry import SelectionRule
    from inference.runner import study_inputs
    from phantom.node import is_ambiguous
    from phantom.study import write_phantom_study

    rules = {item.rule for item in spec.inputs}
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="lnm-gate-") as folder:
            paths, _ = write_phantom_study(
                Path(folder),
                seed,
                malignant=seed % 2 == 1,
                with_doppler=SelectionRule.DOPPLER in rules,
                with_cine=SelectionRule.CINE in rules,
                with_ceus=SelectionRule.CEUS in rules,
                ambiguous=is_ambiguous(seed, PHANTOM_AMBIGUOUS),
            )
            _, built = study_inputs(spec, paths)
        yield [tensor for tensor, _ in built]


def _phantom_study_files(folder: Path, count: int) -> list[Path]:
    from phantom.study import write_phantom_study

    paths = []
    for seed in range(count):
        written, _ = write_phantom_study(
            folder / f"s{seed}",
            5000 + seed,
            malignant=seed % 2 == 1,
            with_doppler=False,
            with_cine=False,
            with_ceus=False,
        )
        paths += written
    return paths


def _every(paths: list[Path], limit: int) -> list[Path]:
    step = max(1, len(paths) // limit)
    return paths[::step][:limit]


def _in_network(spec: ModelSpec, layer: str) -> str:
    """``layer``'s module name in ``spec``'s network: an ensemble's gate reads member 0."""
    if spec.ensemble is None or layer.startswith("members."):
        return layer
    return member_layer(0, layer)


def _gate_layers(spec: ModelSpec, network: torch.nn.Module, layers: list[str]) -> list[str]:
    """The module names of ``layers`` in ``network``; :class:`UnknownLayer` names those it lacks."""
    names = [_in_network(spec, layer) for layer in layers]
    modules = dict(network.named_modules())
    unknown = [layer for layer, name in zip(layers, names, strict=True) if name not in modules]
    if unknown:
        raise UnknownLayer(f"{spec.ref}: its network has no layer {', '.join(map(repr, unknown))}")
    return names


def _features(network: torch.nn.Module, layers: list[str], batches: Iterator[list[torch.Tensor]],
              what: str) -> np.ndarray:  # fmt: skip
    """``gate_features`` of one set of images; ``ValueError`` naming ``what`` when it is empty."""
    try:
        return gate_features(network, layers, batches)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from error


def refit_gate(
    spec: ModelSpec,
    dataset: str,
    *,
    out_of_domain_folders: dict[str, Path] | None = None,
    dicom_folders: dict[str, Path] | None = None,
    phantom_studies: int = 24,
    folder_limit: int = 200,
    quantile: float = DEFAULT_QUANTILE,
    layers: list[str] | None = None,
    device: str = "cpu",
) -> GateFit:
    """(Re)compute ``spec``'s gate from ``dataset`` and write it into the package; measure it.

    ``dataset``: an image folder (its hold-out groups, from ``holdout.json`` beside the weights,
    are left out of the fit and the threshold) or ``phantom``. Out-of-domain sets: each image
    folder (``labels.csv``; at most ``folder_limit`` images, evenly spaced), each folder of DICOM
    files, ``phantom_studies`` phantom lymph-node studies (an image-folder model only) and noise.
    ``layers``: the network layers whose pooled outputs are the features (default: the layer
    Grad-CAM hooks); an ensemble's are taken inside member 0. Raises :class:`UnknownLayer`
    before any work, ``ValueError`` when there is too little to fit on or a set gives no image
    (nothing is written then).
    """
    network = load_network(spec, device)
    layers = _gate_layers(spec, network, layers or [spec.outputs.heatmap.layer])
    if dataset == PHANTOM:
        fit = range(PHANTOM_FIT)
        validation = range(200_000, 200_000 + PHANTOM_VALIDATION)
        holdout = range(300_000, 300_000 + PHANTOM_HOLDOUT)
        batches = [_phantom_batches(spec, seeds) for seeds in (fit, validation, holdout)]
        fitted_on = (
            f"{PHANTOM_FIT} synthetic phantom cases of the model's training kind (inner-train), "
            f"threshold at the {quantile:g} quantile of {PHANTOM_VALIDATION} others "
            f"(inner-validation); hold-out: {PHANTOM_HOLDOUT} further cases"
        )
    else:
        folder = Path(dataset)
        holdout_groups = set(model_holdout(spec.folder).groups)
        parts = split_groups(usable_rows(read_image_folder(folder)), holdout_groups)
        batches = [_folder_batches(spec, [row.image for row in part]) for part in parts]
        fitted_on = (
            f"{folder.name}: {len(parts[0])} images of the non-hold-out groups (inner-train), "
            f"threshold at the {quantile:g} quantile of {len(parts[1])} images of "
            f"{INNER_FRACTION:.0%} of those groups (inner-validation, seed {INNER_SEED}); "
            f"hold-out: the {len(parts[2])} images of holdout.json's groups"
        )
    train, val, held = (
        _features(network, layers, b, f"the {part} images of {dataset}")
        for b, part in zip(batches, ("inner-train", "inner-validation", "hold-out"), strict=True)
    )
    reference, threshold = fit_gate(spec, train, val, fitted_on, quantile)

    ood: dict[str, np.ndarray] = {}
    for name, path in (out_of_domain_folders or {}).items():
        images = _every([row.image for row in read_image_folder(path)], folder_limit)
        ood[name] = _features(network, layers, _folder_batches(spec, images),
                              f"out-of-domain set {name} ({path})")  # fmt: skip
    for name, path in (dicom_folders or {}).items():
        files = sorted(p for p in path.rglob("*.dcm") if p.is_file())
        ood[name] = _features(network, layers, _dicom_batches(spec, files),
                              f"out-of-domain set {name} ({path})")  # fmt: skip
    if dataset != PHANTOM and phantom_studies:
        with tempfile.TemporaryDirectory() as tmp:
            files = _phantom_study_files(Path(tmp), phantom_studies)
            ood["phantom_lymph_node"] = gate_features(network, layers, _dicom_batches(spec, files))
    noise = noise_images(NOISE_IMAGES, spec.input_size * 2)
    ood["noise"] = gate_features(network, layers, (grey_inputs(spec, n) for n in noise))
    figures = measure_gate(reference, threshold, held, ood)
    figures["threshold"] = threshold
    written = write_gate(spec, layers, reference, threshold, fitted_on, figures)
    return GateFit(written, figures)


def fit_packaged_gate(
    spec: ModelSpec,
    cases: Cases,
    held_out: np.ndarray | None,
    device: str = "cpu",
    quantile: float = DEFAULT_QUANTILE,
) -> ModelSpec:
    """Fit the gate of a freshly packaged ``spec`` (``train --package``) on its own training
    cases, so the new weights carry a reference of what they were trained on; returns the spec.

    ``held_out``: the packaged fold's test cases, left out (None for an ensemble of every
    fold: each case trained some member). The rest is split at random into
    inner-train (the reference) and inner-validation (the threshold). A spec whose base had no
    gate keeps none; with fewer than 8 + 4 cases the gate is removed, and the log says so (fit
    one later with ``lnm-node scope fit-gate``).
    """
    gate = spec.scope.gate
    if gate is None:
        return spec
    rest = np.setdiff1d(np.arange(len(cases.malignant)), held_out if held_out is not None else [])
    order = np.random.default_rng(INNER_SEED).permutation(rest)
    n_validation = max(4, round(INNER_FRACTION * len(order)))
    validation, train = order[:n_validation], order[n_validation:]
    if len(train) < 8:
        logger.warning("%s: %d training cases are too few for a gate; packaged without one",
                       spec.ref, len(rest))  # fmt: skip
        ungated = spec.model_copy(update={"scope": spec.scope.model_copy(update={"gate": None})})
        ModelSpec.model_validate(ungated.model_dump()).save(spec.folder)
        return ModelSpec.load(spec.folder)

    def batches(indices: np.ndarray) -> Iterator[list[torch.Tensor]]:
        inputs = cases.subset(indices).network_inputs()
        for index in range(len(indices)):
            yield [x[index : index + 1] for x in inputs]

    network = load_network(spec, device)
    layers = list(gate.layers)
    fitted_on = (
        f"{len(train)} of the packaged model's training cases (inner-train), threshold at the "
        f"{quantile:g} quantile of {len(validation)} others (inner-validation)"
    )
    reference, threshold = fit_gate(
        spec,
        gate_features(network, layers, batches(train)),
        gate_features(network, layers, batches(validation)),
        fitted_on,
        quantile,
    )
    return write_gate(spec, layers, reference, threshold, fitted_on, figures={})
