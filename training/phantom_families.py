"""Train one small demonstration model per family on synthetic phantom data and package it.

``python -m training.phantom_families OUT_DIR`` trains, briefly on the CPU, an image
classifier, a dual B-mode + Doppler model, a TIN cine model, a B-mode + CEUS fusion model and
a hybrid Swin segmentation + classification model on :mod:`training.synthetic_inputs`, and
writes each into ``OUT_DIR/<key>/`` with :func:`training.package_families.package_network`.
Each model's threshold is chosen on its training cases (Youden's J); its figures come from the
held-out cases at that threshold.
They demonstrate the node's path for every family; they have no clinical value.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from torch import nn

from inference.loading import build_network
from inference.registry import ModelSpec
from inference.scope import LYMPH_NODE_RULE
from inference.transforms import to_model_input
from training import synthetic_inputs as synthetic
from training.metrics import classification_summary, youden_threshold
from training.package_families import NetworkFacts, family_spec_fields, package_network

logger = logging.getLogger(__name__)

SIZE = 64
VERSION = "0.1.0"
TRAINED_ON = (
    "Synthetic phantom images only (training.synthetic_inputs on phantom.us_dicom.bmode_image): "
    "{n} generated cases, half 'malignant' (round node without hilum, plus the family's "
    "cartoon cue). No patient data."
)
EVALUATED_ON = "Synthetic held-out phantom cases only ({n}, other seeds); no patient data."
LIMITATIONS = (
    (
        "Trained on synthetic phantom images only: it demonstrates the node's path for its "
        "family and has no clinical value."
    ),
    "Metrics are on synthetic held-out data only and say nothing about lymph nodes in patients.",
    "Registered but not enabled: a site enables it only to test the pipeline.",
)


HELD_OUT_FIGURES = (
    "n",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "accuracy",
    "sensitivity",
    "specificity",
    "brier",
)
"""The figures of the held-out cases a package records (``training.metrics`` names)."""


@dataclass(frozen=True)
class Recipe:
    """One model to train: its key, facts and how to draw one synthetic case."""

    key: str
    facts: NetworkFacts
    case: Callable[[int, bool], tuple[np.ndarray, ...]]
    segmentation: bool = False
    epochs: int | None = None  # overrides the run's epochs (SqueezeNet starts slowly)
    lr: float = 1e-3  # AdamW learning rate
    version: str = VERSION


def _planes(array: np.ndarray) -> torch.Tensor:
    """``(S,S)`` or ``(C,S,S)`` in [0, 1] to ``[1,C,S,S]`` through ``to_model_input``."""
    stack = array[None] if array.ndim == 2 else array
    return torch.cat([to_model_input(plane, SIZE) for plane in stack], dim=1)


def _facts(
    name: str, family: str, architecture: str, backbone: str, layer: str, **extra: object
) -> NetworkFacts:
    return NetworkFacts(
        name=name,
        family=family,
        architecture=architecture,
        backbone=backbone,
        input_size=SIZE,
        heatmap_layer=layer,
        threshold=0.5,  # a placeholder: train_recipe chooses it on the training cases
        trained_on="synthetic phantom images",
        evaluated_on="synthetic phantom images",
        limitations=LIMITATIONS,
        scope_rule=LYMPH_NODE_RULE.model_dump(exclude_defaults=True),
        **extra,  # type: ignore[arg-type]
    )


def _image_case(seed: int, malignant: bool) -> tuple[np.ndarray, ...]:
    return (synthetic.bmode(SIZE, seed, malignant),)


def _segcls_case(seed: int, malignant: bool) -> tuple[np.ndarray, ...]:
    from phantom.us_dicom import bmode_image

    image, mask, _ = bmode_image(SIZE, SIZE, seed, malignant)
    return image.astype(np.float32) / 255.0, mask.astype(np.float32)


def _dual_case(seed: int, malignant: bool) -> tuple[np.ndarray, ...]:
    return synthetic.doppler(SIZE, seed, malignant)


def _video_case(seed: int, malignant: bool) -> tuple[np.ndarray, ...]:
    return (synthetic.cine(SIZE, 16, seed, malignant),)


def _ceus_case(seed: int, malignant: bool) -> tuple[np.ndarray, ...]:
    return synthetic.ceus(SIZE, 5, seed, malignant)


RECIPES = (
    Recipe(
        "image-squeezenet1_1-phantom",
        _facts(
            "SqueezeNet 1.1 B-mode classifier (synthetic phantom demo)",
            "image",
            "classifier",
            "squeezenet1_1",
            "features",
        ),
        _image_case,
        epochs=20,
        lr=3e-4,  # no batch norm: at 1e-3 its ReLUs die and it stays at chance
        version="0.2.0",  # 0.1.0: trained at 1e-3, called every case alike at threshold 0.5
    ),
    Recipe(
        "dual-crossattn-phantom",
        _facts(
            "B-mode + Doppler cross-attention (synthetic phantom demo)",
            "dual",
            "dual-crossattn",
            "resnet10-w16",
            "bmode_projection",
        ),
        _dual_case,
    ),
    Recipe(
        "video-tin-phantom",
        _facts(
            "Temporal interlacing cine classifier (synthetic phantom demo)",
            "video",
            "tin",
            "resnet10-w16",
            "to_clip",
            frames=16,
        ),
        _video_case,
    ),
    Recipe(
        "ceus-fusion-phantom",
        _facts(
            "B-mode + CEUS key-frame fusion (synthetic phantom demo)",
            "ceus",
            "ceus-fusion",
            "resnet10-w16",
            "bmode_features",
            frames=5,
        ),
        _ceus_case,
    ),
    Recipe(
        "segcls-hybrid-phantom",
        _facts(
            "Hybrid Swin-UNETR seg + classification (synthetic phantom demo)",
            "segcls",
            "hybrid-swin",
            "swin-f12",
            "encoder.encoder10",
        ),
        _segcls_case,
        segmentation=True,
        epochs=40,  # ~75 s on 2 CPU cores
        version="0.2.0",  # 0.1.0: one epoch in its time budget, held-out accuracy 0.53
    ),
)


def _batch(
    recipe: Recipe, seeds: list[int]
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """(network inputs, labels ``[N,1]``, masks ``[N,1,S,S]`` or None) of the cases ``seeds``."""
    malignant = [seed % 2 == 1 for seed in seeds]
    cases = [recipe.case(seed, flag) for seed, flag in zip(seeds, malignant, strict=True)]
    labels = torch.tensor([[float(flag)] for flag in malignant])
    if recipe.segmentation:
        images = torch.cat([_planes(c[0]) for c in cases])
        masks = torch.stack([torch.from_numpy(c[1])[None] for c in cases])
        return [images], labels, masks
    if recipe.facts.family == "video":
        clips = torch.cat([_planes(c[0])[None] for c in cases])  # [N,1,T,S,S]
        return [clips], labels, None
    inputs = [torch.cat([_planes(c[i]) for c in cases]) for i in range(len(cases[0]))]
    return inputs, labels, None


def synthetic_inputs(key: str, seeds: list[int]) -> list[torch.Tensor]:
    """The network inputs of the synthetic cases ``seeds`` of recipe ``key`` (its training kind)."""
    recipe = next((r for r in RECIPES if r.key == key), None)
    if recipe is None:
        raise ValueError(f"no phantom recipe is keyed {key!r}")
    return _batch(recipe, seeds)[0]


def _class_logits(output: object) -> torch.Tensor:
    return output[1] if isinstance(output, tuple) else output  # type: ignore[return-value,index]


def _probabilities(network: nn.Module, inputs: list[torch.Tensor]) -> np.ndarray:
    """Sigmoid of ``network``'s class logit per case, in eval mode, batches of 8."""
    network.eval()
    count = len(inputs[0])
    with torch.no_grad():
        logits = [
            _class_logits(network(*[x[i : i + 8] for x in inputs])) for i in range(0, count, 8)
        ]
    return torch.sigmoid(torch.cat(logits))[:, 0].numpy()


def operating_point(
    train_truth: np.ndarray,
    train_probability: np.ndarray,
    test_truth: np.ndarray,
    test_probability: np.ndarray,
) -> tuple[float, dict[str, float | None]]:
    """(threshold, held-out figures) of a model's training and test predictions.

    The threshold maximises Youden's J on the training predictions, halfway to the next lower
    training score (fitted cases sit at the extremes), kept within [0.01, 0.99]; the test
    cases never move it. AUC with its DeLong CI, accuracy, sensitivity, specificity and the
    Brier score come from the test cases at that threshold.
    """
    threshold = youden_threshold(train_truth, train_probability, midpoint=True)
    threshold = min(max(threshold, 0.01), 0.99)
    summary = classification_summary(test_truth, test_probability, threshold)
    return threshold, {name: summary[name] for name in HELD_OUT_FIGURES}


def train_recipe(
    recipe: Recipe, train: int, test: int, epochs: int, max_seconds: float
) -> tuple[nn.Module, float, dict[str, float | None]]:
    """Train ``recipe``'s network on ``train`` synthetic cases; returns (network, threshold,
    figures): the threshold by :func:`operating_point` on the training cases, the figures on
    ``test`` other cases at that threshold (plus ``epochs`` run)."""
    torch.manual_seed(0)
    draft = ModelSpec.model_validate(
        family_spec_fields(recipe.key, recipe.version, recipe.facts, "0" * 64)
    )
    network = build_network(draft)
    inputs, labels, masks = _batch(recipe, list(range(train)))
    optimiser = torch.optim.AdamW(network.parameters(), lr=recipe.lr, weight_decay=1e-4)
    bce, dice = nn.BCEWithLogitsLoss(), DiceCELoss(sigmoid=True)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for epoch in range(epochs):
        network.train()
        for index in torch.randperm(train, generator=generator).split(8):
            output = network(*[x[index] for x in inputs])
            loss = bce(_class_logits(output), labels[index])
            if masks is not None:
                loss = loss + dice(output[0], masks[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        logger.info("%s epoch %d loss %.3f", recipe.key, epoch, loss.item())
        if time.perf_counter() - started > max_seconds:
            break
    test_inputs, test_labels, _ = _batch(recipe, list(range(100_000, 100_000 + test)))
    threshold, metrics = operating_point(
        labels[:, 0].numpy(),
        _probabilities(network, inputs),
        test_labels[:, 0].numpy(),
        _probabilities(network, test_inputs),
    )
    metrics["epochs"] = float(epoch + 1)
    return network, threshold, metrics


def package_phantom_models(
    out_dir: Path,
    train: int = 64,
    test: int = 32,
    epochs: int = 6,
    max_seconds: float = 180.0,
    only: tuple[str, ...] = (),
) -> list[Path]:
    """Train and package every recipe (or those keyed in ``only``) into ``out_dir/<key>/``."""
    folders = []
    for recipe in RECIPES:
        if only and recipe.key not in only:
            continue
        network, threshold, metrics = train_recipe(
            recipe, train, test, recipe.epochs or epochs, max_seconds
        )
        facts = replace(
            recipe.facts,
            threshold=threshold,
            trained_on=TRAINED_ON.format(n=train),
            evaluated_on=EVALUATED_ON.format(n=test),
            metrics=metrics,
            training=(
                f"AdamW {recipe.lr:g}, batch 8, {int(metrics['epochs'])} epoch(s) on the CPU, "
                "seed 0 (training.phantom_families)."
            ),
            evaluation=(
                f"Threshold {threshold:.3f}: best Youden's J on the {train} training cases' "
                "predictions (midway to the next lower score). AUC (95% DeLong CI), "
                "accuracy, sensitivity, specificity and Brier score on the "
                f"{test} held-out cases at that threshold."
            ),
        )
        folders.append(
            package_network(network, out_dir / recipe.key, recipe.key, recipe.version, facts)
        )
        logger.info("packaged %s: %s", recipe.key, metrics)
    return folders


def main(argv: list[str] | None = None) -> int:
    """``python -m training.phantom_families OUT_DIR [--train N --test N --epochs N]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--test", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--only", action="append", default=[], help="train only this key")
    parser.add_argument("--max-seconds", type=float, default=180.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    for folder in package_phantom_models(
        args.out_dir, args.train, args.test, args.epochs, args.max_seconds, tuple(args.only)
    ):
        print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
