"""training/trainer.py: the one training loop, its resume and its batch sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.datasets import TrainingArrays, arrays_from_rows, read_image_folder
from training.networks import draft_spec
from training.retrain import network_maker
from training.trainer import (
    CHECKPOINT_FILE,
    STOPPED_EPOCHS,
    STOPPED_PATIENCE,
    STOPPED_TIME,
    SUMMARY_FILE,
    Batch,
    TensorBatches,
    TrainConfig,
    predict,
    train_network,
)

CONFIG = TrainConfig(epochs=3, batch_size=4, seed=5)


def _make(network: str, backbone: str | None = None):  # type: ignore[no-untyped-def]
    """A constructor of ``network`` at 64 px, built as inference builds it."""
    return network_maker(draft_spec("test", network, backbone, 64))


@pytest.fixture(scope="module")
def arrays(image_folder: Path) -> TrainingArrays:
    return arrays_from_rows(read_image_folder(image_folder), 64, root=image_folder)


class _Killed(RuntimeError):
    pass


class _DiesInThirdEpoch(TensorBatches):
    """The default source, but the run dies as the third epoch starts (as a killed job would)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._epochs = 0

    def epoch(self) -> Iterator[Batch]:
        self._epochs += 1
        if self._epochs == 3:
            raise _Killed
        yield from super().epoch()


def test_train_network_resumed_run_equals_uninterrupted_run(
    arrays: TrainingArrays, tmp_path: Path
) -> None:
    make = _make("ynet")
    whole = train_network(make, arrays, tmp_path / "whole", CONFIG)
    with pytest.raises(_Killed):
        train_network(make, arrays, tmp_path / "split", CONFIG, batches=_DiesInThirdEpoch)
    resumed = train_network(make, arrays, tmp_path / "split", CONFIG)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    a = torch.load(tmp_path / "whole" / CHECKPOINT_FILE, weights_only=False)["model"]
    b = torch.load(tmp_path / "split" / CHECKPOINT_FILE, weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


class _CountingBatches(TensorBatches):
    """The default source, counting the epochs and batches it gives."""

    epochs = 0
    batches = 0

    def epoch(self) -> Iterator[Batch]:
        type(self).epochs += 1
        for batch in super().epoch():
            type(self).batches += 1
            yield batch


def test_train_network_trains_on_the_given_batch_source(
    arrays: TrainingArrays, tmp_path: Path
) -> None:
    outcome = train_network(
        _make("ynet"),
        arrays,
        tmp_path / "run",
        replace(CONFIG, epochs=2),
        batches=_CountingBatches,
        summary_file="custom.json",
    )
    assert _CountingBatches.epochs == 2 and _CountingBatches.batches >= 2
    assert (tmp_path / "run" / "custom.json").is_file()
    assert [r["epoch"] for r in outcome.history] == [1, 2]
    assert outcome.history[0]["learning_rate"] > outcome.history[1]["learning_rate"] >= 0


def _flat_score(*_: object) -> dict:
    """A selection score that never rises after the first epoch."""
    return {"auc": 0.5, "dice_mean": None, "dice_median": None, "dice_n": 0, "score": 0.5}


def test_train_network_patience_stops_early_and_records_reason(
    arrays: TrainingArrays, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("training.trainer.score_predictions", _flat_score)
    config = replace(CONFIG, epochs=10, patience=2)
    outcome = train_network(_make("ynet"), arrays, tmp_path / "run", config)
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert [r["epoch"] for r in outcome.history] == [1, 2, 3]
    assert summary["stopped"] == STOPPED_PATIENCE and summary["epochs_run"] == 3
    assert summary["improved_epoch"] == 1 and summary["best_epoch"] == 3  # a tie: the later
    assert all(r["val_loss"] > 0 for r in summary["history"])
    _CountingBatches.epochs = 0
    again = train_network(_make("ynet"), arrays, tmp_path / "run", config, batches=_CountingBatches)
    assert _CountingBatches.epochs == 0 and len(again.history) == 3  # stopped runs stay stopped


def test_train_network_summary_records_where_it_ran(arrays: TrainingArrays, tmp_path: Path) -> None:
    train_network(_make("ynet"), arrays, tmp_path / "run", replace(CONFIG, epochs=1))
    ran = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())["platform"]
    assert ran["torch"] == torch.__version__ and ran["device"] == CONFIG.device
    assert ran["torch_threads"] == torch.get_num_threads() and ran["cpu"]
    assert ran["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert ran["onednn"] == torch.backends.mkldnn.enabled


def test_train_network_without_patience_records_epoch_cap_or_time_budget(
    arrays: TrainingArrays, tmp_path: Path
) -> None:
    train_network(_make("ynet"), arrays, tmp_path / "cap", replace(CONFIG, epochs=2))
    budget = replace(CONFIG, epochs=50, max_seconds=0.01)
    train_network(_make("ynet"), arrays, tmp_path / "budget", budget)
    cap = json.loads((tmp_path / "cap" / SUMMARY_FILE).read_text())
    timed = json.loads((tmp_path / "budget" / SUMMARY_FILE).read_text())
    assert cap["stopped"] == STOPPED_EPOCHS and cap["epochs_run"] == 2
    assert timed["stopped"] == STOPPED_TIME and timed["epochs_run"] == 1


def test_train_config_patience_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)


def test_train_network_with_ema_validates_and_keeps_the_averaged_weights(
    arrays: TrainingArrays, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("training.trainer.score_predictions", _flat_score)  # best = last (ties)
    train_network(_make("ynet"), arrays, tmp_path / "run", replace(CONFIG, epochs=2, ema_decay=0.5))
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=False)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    averaged = {k.removeprefix("module."): v for k, v in checkpoint["averaged"].items()}
    assert int(averaged.pop("n_averaged")) > 1  # updated after every optimiser step
    assert best.keys() == checkpoint["model"].keys() == averaged.keys()
    assert all(torch.equal(best[k], averaged[k].float()) for k in best)
    assert any(not torch.equal(best[k], checkpoint["model"][k].float()) for k in best)


def test_train_network_with_ema_resumes_to_the_uninterrupted_average(
    arrays: TrainingArrays, tmp_path: Path
) -> None:
    make, config = _make("ynet"), replace(CONFIG, ema_decay=0.9)
    train_network(make, arrays, tmp_path / "whole", config)
    with pytest.raises(_Killed):
        train_network(make, arrays, tmp_path / "split", config, batches=_DiesInThirdEpoch)
    train_network(make, arrays, tmp_path / "split", config)
    a = torch.load(tmp_path / "whole" / CHECKPOINT_FILE, weights_only=False)["averaged"]
    b = torch.load(tmp_path / "split" / CHECKPOINT_FILE, weights_only=False)["averaged"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_train_config_ema_decay_outside_zero_one_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=decay)


def test_train_network_resuming_without_an_average_starts_it_from_the_saved_weights(
    arrays: TrainingArrays, tmp_path: Path
) -> None:
    train_network(_make("ynet"), arrays, tmp_path / "run", replace(CONFIG, epochs=1))
    train_network(_make("ynet"), arrays, tmp_path / "run", replace(CONFIG, epochs=2, ema_decay=0.9))
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=False)
    assert checkpoint["state"]["epoch"] == 2 and int(checkpoint["averaged"]["n_averaged"]) > 1


class _TwoBlobs(nn.Module):
    """A segmenter whose lesion map has two blobs: 9 pixels and 4 more confident ones."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg = torch.full((len(x), 1, 12, 12), -5.0)
        seg[:, :, 1:4, 1:4] = 2.0
        seg[:, :, 8:10, 8:10] = 4.0
        return seg, torch.zeros(len(x), 1)


def test_predict_masks_are_the_masks_the_node_delivers() -> None:
    _, masks = predict(_TwoBlobs(), torch.zeros(3, 1, 12, 12), "cpu", batch_size=2)

    expected = np.zeros((12, 12), bool)
    expected[1:4, 1:4] = True  # the largest component only, as inference.measure.lesion_mask
    assert masks is not None and masks.shape == (3, 12, 12)
    assert all(np.array_equal(mask, expected) for mask in masks)
