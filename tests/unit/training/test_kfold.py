"""k-fold cross-validation of every trainable family on a tiny generated image folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.datasets import arrays_from_rows, read_image_folder
from training.kfold import CV_METRICS_FILE, POOLED_FILE, PREDICTIONS_FILE, cross_validate
from training.networks import draft_spec
from training.retrain import network_maker
from training.trainer import TrainConfig, lesion_cases, split_outputs, train_network

CONFIG = TrainConfig(epochs=1, batch_size=4, seed=3)


def _make(network: str, backbone: str | None = None):  # type: ignore[no-untyped-def]
    """A constructor of ``network`` at 64 px, built as inference builds it."""
    return network_maker(draft_spec("test", network, backbone, 64))


@pytest.fixture(scope="module")
def arrays(image_folder: Path):  # type: ignore[no-untyped-def]
    return arrays_from_rows(read_image_folder(image_folder), 64, root=image_folder)


def test_cross_validate_ynet_groups_never_straddle_and_pooled_written(
    arrays, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    summary = cross_validate(_make("ynet"), arrays, tmp_path, CONFIG, k=2)
    folds = json.loads((tmp_path / "folds.json").read_text())["groups"]
    assert not set(folds[0]) & set(folds[1])
    with np.load(tmp_path / POOLED_FILE) as pooled:
        assert sorted(pooled["index"].tolist()) == list(range(len(arrays.images)))
        lesion = lesion_cases(arrays)[pooled["index"]]
        assert pooled["lesion"].tolist() == lesion.tolist() and lesion.any()
    pooled = json.loads((tmp_path / CV_METRICS_FILE).read_text())["pooled"]
    assert pooled["n"] == len(arrays.images) and pooled["dice_mean"] is not None
    assert {"auc", "auc_ci_low", "accuracy", "lr_pos", "kappa", "threshold"} <= set(pooled)
    assert summary["pooled"]["n"] == pooled["n"] and len(summary["folds"]) == 2


def test_cross_validate_rerun_skips_finished_folds(arrays, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cross_validate(_make("ynet"), arrays, tmp_path, CONFIG, k=2)
    stamp = (tmp_path / "fold_0" / PREDICTIONS_FILE).stat().st_mtime_ns
    first = json.loads((tmp_path / CV_METRICS_FILE).read_text())

    def fail() -> torch.nn.Module:
        raise AssertionError("a finished fold was trained again")

    assert cross_validate(fail, arrays, tmp_path, CONFIG, k=2) == first
    assert (tmp_path / "fold_0" / PREDICTIONS_FILE).stat().st_mtime_ns == stamp


def test_cross_validate_refuses_to_resume_a_run_split_into_other_folds(
    arrays, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    cross_validate(_make("ynet"), arrays, tmp_path, CONFIG, k=2)
    other_seed = TrainConfig(epochs=1, batch_size=4, seed=4)
    with pytest.raises(ValueError, match="other folds"):
        cross_validate(_make("ynet"), arrays, tmp_path, other_seed, k=2)


def test_cross_validate_refuses_to_resume_with_other_training_settings(
    arrays, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """Folds left to train are trained with the run's settings or not at all (a rerun with other
    epochs or learning rate mixed them, or returned old results as if new); a finished run
    rerun (to package it) says its results are the old ones; the device may change."""
    first = cross_validate(_make("ynet"), arrays, tmp_path, CONFIG, k=2)
    other = TrainConfig(epochs=3, batch_size=4, seed=3, learning_rate=0.01)
    assert cross_validate(_make("ynet"), arrays, tmp_path, other, k=2) == first
    assert "nothing is retrained" in caplog.text and "epochs 1, not 3" in caplog.text
    assert json.loads((tmp_path / "folds.json").read_text())["config"]["epochs"] == 1
    (tmp_path / "fold_1" / PREDICTIONS_FILE).unlink()
    with pytest.raises(ValueError, match=r"other settings \(epochs 1, not 3; learning_rate 0.001, not 0.01\)"):
        cross_validate(_make("ynet"), arrays, tmp_path, other, k=2)
    moved = TrainConfig(epochs=1, batch_size=4, seed=3, device="cpu", num_workers=1)
    assert cross_validate(_make("ynet"), arrays, tmp_path, moved, k=2)


def test_cross_validate_classifier_no_dice(arrays, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    summary = cross_validate(
        _make("classifier", "resnet10-w4"), arrays, tmp_path, CONFIG, k=2
    )
    assert summary["pooled"]["dice_mean"] is None and summary["pooled"]["n"] == len(arrays.images)


def test_train_network_same_seed_same_weights(arrays, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make = _make("ynet")
    first = train_network(make, arrays, tmp_path / "a", CONFIG)
    second = train_network(make, arrays, tmp_path / "b", CONFIG)
    a = torch.load(first.best_state_path, weights_only=True)
    b = torch.load(second.best_state_path, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_hybrid_encoder_transfer_loads_pretrained_encoder(arrays, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make = _make("hybrid-swin", "swin-f12")
    outcome = train_network(make, arrays, tmp_path / "pretrain", CONFIG)
    source = make()
    source.load_state_dict(torch.load(outcome.best_state_path, weights_only=True))
    target = make()
    target.load_encoder_state_dict(source.encoder_state_dict())
    encoder = source.encoder_state_dict()
    assert all(torch.equal(v, target.encoder_state_dict()[k]) for k, v in encoder.items())
    seg, cls = split_outputs(target(torch.zeros(1, 1, 64, 64)))
    assert seg is not None and cls.shape == (1, 1)


def test_unknown_network_name_raises_listing_names() -> None:
    with pytest.raises(ValueError, match="lnm-node networks"):
        draft_spec("test", "classifier:densenet121", size=64)
