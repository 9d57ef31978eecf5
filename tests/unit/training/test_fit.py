"""Tests of training.fit on a tiny generated image folder (12 phantom images, 64x64)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from inference.networks.ynet import YNet
from training.fit import FitConfig, fit, load_training_data

CONFIG = FitConfig(epochs=3, batch_size=3, learning_rate=3e-3, validation_fraction=0.25, seed=0)


def test_fit_tiny_folder_three_epochs_reduces_loss(image_folder: Path, tmp_path: Path) -> None:
    result = fit(image_folder, tmp_path / "run", CONFIG, size=64)
    losses = [record["train_loss"] for record in result.history]
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    assert 1 <= result.best_epoch <= 3 and 0.0 < result.threshold <= 1.0
    state = torch.load(result.best_state_path, weights_only=True)
    YNet().load_state_dict(state)  # the best weights fit the inference network
    summary = json.loads((tmp_path / "run" / "fit.json").read_text())
    assert summary["n_train"] + summary["n_validation"] == 12
    assert summary["best_epoch"] == result.best_epoch


def test_fit_checkpoint_resume_continues_after_last_epoch(
    image_folder: Path, tmp_path: Path
) -> None:
    arrays = load_training_data(image_folder, 64)
    first = fit(arrays, tmp_path / "run", FitConfig(**{**CONFIG.__dict__, "epochs": 2}))
    assert [r["epoch"] for r in first.history] == [1, 2]
    resumed = fit(arrays, tmp_path / "run", CONFIG)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == first.history


def test_fit_same_seed_same_losses(image_folder: Path, tmp_path: Path) -> None:
    arrays = load_training_data(image_folder, 64)
    config = FitConfig(**{**CONFIG.__dict__, "epochs": 1, "resume": False})
    a = fit(arrays, tmp_path / "a", config).history[0]["train_loss"]
    b = fit(arrays, tmp_path / "b", config).history[0]["train_loss"]
    assert a == b
