"""Dice of ynet-busi@1.0.0's masks under other post-processing rules, on chosen busi-dev groups.

``python docs/results/mask-rule-ynet-busi/scripts/mask_rules.py DATASET GROUPS.json`` predicts
every image of the groups in GROUPS.json (``{"groups": [...]}``, e.g. the inner-validation
groups that ``scripts/ynet_busi_inner_validation.py`` writes) as ``lesion_mask`` is fed, and
prints the Dice of each rule: the whole thresholded mask, the node's rule (largest component),
components of at least a fraction of the largest, and other mask thresholds. A one-off
analysis for the model card; the node's rule is ``inference.measure.lesion_mask``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from skimage.measure import label

from inference.loading import load_network
from inference.measure import MASK_THRESHOLD, largest_component, lesion_mask
from inference.registry import Registry, default_models_dir
from inference.transforms import to_model_input, to_source_grid
from training.datasets import load_grey, load_mask, read_image_folder
from training.metrics import dice_scores
from training.trainer import split_outputs


def _components_of_at_least(
    probability: np.ndarray, fraction: float, threshold: float = MASK_THRESHOLD
) -> np.ndarray:
    """The components of ``probability > threshold`` with at least ``fraction`` of the largest
    one's pixels (fraction 1: the largest alone)."""
    mask = probability > threshold
    if fraction >= 1:
        return largest_component(mask)
    labels = label(mask, connectivity=2)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    if counts.max() == 0:
        return mask
    return np.isin(labels, np.flatnonzero(counts >= fraction * counts.max()))


def _whole(probability: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    return probability > threshold


RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "whole mask > 0.5": _whole,
    "largest component > 0.5 (the node's)": lesion_mask,
    **{
        f"components >= {f:g} x largest, > 0.5": partial(_components_of_at_least, fraction=f)
        for f in (0.05, 0.1, 0.25, 0.5)
    },
    **{f"whole mask > {t:g}": partial(_whole, threshold=t) for t in (0.3, 0.4, 0.6)},
    **{
        f"largest component > {t:g}": partial(_components_of_at_least, fraction=1, threshold=t)
        for t in (0.3, 0.4, 0.6)
    },
}


def main(dataset: Path, groups_file: Path) -> int:
    """Predict, apply every rule, print one line per rule; returns the exit status."""
    spec = Registry.load(default_models_dir()).get("ynet-busi@1.0.0", "ynet-busi")
    network = load_network(spec, "cpu").eval()
    groups = set(map(str, json.loads(groups_file.read_text())["groups"]))
    rows = [row for row in read_image_folder(dataset) if str(row.group) in groups]
    masks: dict[str, list[np.ndarray]] = {name: [] for name in RULES}
    references = []
    with torch.no_grad():
        for row in rows:
            grey = load_grey(row.image)
            references.append(load_mask(row.mask, grey.shape))
            seg, _ = split_outputs(network(to_model_input(grey, spec.input_size)))
            probability = to_source_grid(torch.sigmoid(seg.float()), grey.shape)
            for name, rule in RULES.items():
                masks[name].append(rule(probability))
    lesion = [i for i, reference in enumerate(references) if reference.any()]
    normal = [i for i, reference in enumerate(references) if not reference.any()]
    print(f"{len(rows)} images, {len(lesion)} with a lesion, {len(normal)} without")
    print("| rule | Dice mean (lesion) | Dice median (lesion) | Dice mean (all) | normal, no mask |")
    print("| --- | --- | --- | --- | --- |")
    for name, predicted in masks.items():
        dice = np.asarray(dice_scores(predicted, references))
        clean = sum(not predicted[i].any() for i in normal)
        print(
            f"| {name} | {dice[lesion].mean():.4f} | {np.median(dice[lesion]):.4f} "
            f"| {dice.mean():.4f} | {clean} of {len(normal)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))
