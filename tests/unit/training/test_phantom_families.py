"""Tests of the phantom demonstration models' operating point and of the packaged SqueezeNet."""

from __future__ import annotations

import numpy as np
import pytest

from inference.loading import load_network
from inference.registry import ModelSpec, default_models_dir
from training.metrics import binary_metrics
from training.phantom_families import RECIPES, _batch, _probabilities, operating_point

TRAIN_TRUTH = np.array([0, 0, 0, 1, 1, 1])
TRAIN_SCORES = np.array([0.40, 0.45, 0.47, 0.48, 0.49, 0.50])  # a model stuck near 0.5


def test_operating_point_threshold_from_training_scores_midway() -> None:
    test_truth = np.array([0, 1, 0, 1])
    test_scores = np.array([0.46, 0.485, 0.476, 0.60])  # 0.476: a false positive

    threshold, figures = operating_point(TRAIN_TRUTH, TRAIN_SCORES, test_truth, test_scores)

    assert threshold == pytest.approx(0.475)  # between 0.47 (last benign) and 0.48
    assert figures["accuracy"] == 0.75 and figures["sensitivity"] == 1.0
    assert figures["specificity"] == 0.5 and figures["n"] == 4 and figures["auc"] == 1.0


def test_operating_point_test_cases_never_move_the_threshold() -> None:
    first, _ = operating_point(TRAIN_TRUTH, TRAIN_SCORES, np.array([0, 1]), np.array([0.1, 0.9]))
    second, figures = operating_point(
        TRAIN_TRUTH, TRAIN_SCORES, np.array([1, 0]), np.array([0.1, 0.9])
    )

    assert first == second
    assert figures["accuracy"] == 0.0


def test_operating_point_kept_inside_spec_range() -> None:
    threshold, _ = operating_point(
        np.array([0, 1]), np.array([0.0, 1.0]), np.array([0, 1]), np.array([0.0, 1.0])
    )

    assert 0.01 <= threshold <= 0.99


def test_packaged_squeezenet_threshold_and_figures_reproduce() -> None:
    """The packaged model's held-out figures at its threshold, recomputed from its weights."""
    recipe = next(r for r in RECIPES if r.key == "image-squeezenet1_1-phantom")
    spec = ModelSpec.load(default_models_dir() / recipe.key)
    network = load_network(spec, "cpu")
    inputs, labels, _ = _batch(recipe, list(range(100_000, 100_000 + int(spec.metrics["n"]))))

    figures = binary_metrics(labels[:, 0].numpy(), _probabilities(network, inputs), spec.threshold)

    assert spec.threshold != 0.5
    for name in ("accuracy", "sensitivity", "specificity"):
        assert figures[name] == pytest.approx(spec.metrics[name])
    assert 0.0 < figures["sensitivity"] and 0.0 < figures["specificity"]
