"""Train a Y-Net (segmentation + benign/malignant head) on model-grid arrays; resumable, seeded.

The loop is :func:`training.trainer.train_network`'s; what this module adds is the Y-Net's
data: a packed ``.npz`` or an image folder, fed through a MONAI ``DataLoader`` with MONAI's
dictionary augmentations (:func:`training.augment.training_augmentation`), the recipe that
produced ``ynet-busi``.

Imports only torch, numpy, scikit-learn, MONAI, rich and the repo's training/ and
inference.networks / inference.transforms modules, so it runs on a bare GPU machine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset

from inference.networks.ynet import YNet
from training.augment import training_augmentation
from training.datasets import TrainingArrays, arrays_from_rows, read_image_folder, usable_rows
from training.pack import load_packed
from training.trainer import (
    BEST_FILE,
    CHECKPOINT_FILE,
    Batch,
    TrainConfig,
    TrainOutcome,
    model_inputs,
    train_network,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "SUMMARY_FILE",
    "FitConfig",
    "FitResult",
    "calibrated_epochs",
    "fit",
]

SUMMARY_FILE = "fit.json"

#: the Y-Net's hyper-parameters are the trainer's (``num_workers`` feeds its DataLoader)
FitConfig = TrainConfig
FitResult = TrainOutcome


def load_training_data(source: Path, size: int) -> TrainingArrays:
    """A packed ``.npz`` or an image folder as model-grid arrays (conflicting groups dropped)."""
    source = Path(source)
    if source.suffix == ".npz":
        arrays, conflict = load_packed(source)
        if arrays.size != size:
            raise ValueError(f"{source} is packed at {arrays.size}, the model wants {size}")
        return arrays.subset(np.flatnonzero(~conflict))
    return arrays_from_rows(usable_rows(read_image_folder(source)), size, root=source)


class LoaderBatches:
    """The training arrays through a shuffled MONAI ``DataLoader`` with dictionary
    augmentation. Its shuffling state resumes; MONAI's transforms draw from their own numpy
    states, seeded here, which a resumed run starts afresh."""

    def __init__(self, train: TrainingArrays, config: TrainConfig) -> None:
        np.random.seed(config.seed)
        inputs = model_inputs(train.images)
        items = [
            {
                "image": inputs[i],
                "mask": torch.from_numpy(train.masks[i][None].astype(np.float32)),
                "label": torch.tensor([float(train.malignant[i])]),
            }
            for i in range(len(train.images))
        ]
        transform = training_augmentation(train.size, config.seed) if config.augment else None
        self._device = config.device
        self._loader = DataLoader(
            Dataset(items, transform=transform),
            batch_size=min(config.batch_size, len(items)),
            shuffle=True,
            drop_last=len(items) > config.batch_size,
            num_workers=config.num_workers,
            persistent_workers=config.num_workers > 0,
            pin_memory=config.device.startswith("cuda"),
            generator=torch.Generator().manual_seed(config.seed),
        )

    def epoch(self) -> Iterator[Batch]:
        for batch in self._loader:
            mask = batch["mask"].to(self._device, non_blocking=True)
            yield (
                [batch["image"].to(self._device, non_blocking=True)],
                mask,
                torch.ones(len(mask), dtype=torch.bool, device=self._device),
                batch["label"].to(self._device, non_blocking=True),
            )

    def state(self) -> object:
        return self._loader.generator.get_state()

    def restore(self, state: object) -> None:
        self._loader.generator.set_state(state)  # type: ignore[arg-type]


def fit(
    data: TrainingArrays | Path, out_dir: Path, config: FitConfig, size: int = 256
) -> FitResult:
    """Train ``YNet()`` with an inner group-aware validation split; returns the best epoch.

    Writes ``checkpoint.pt`` every epoch (resumed from when ``config.resume``), ``best.pt``
    (fp32 state_dict of the epoch with the best mean of validation Dice and AUC) and
    ``fit.json`` (history, split sizes, Youden threshold on the validation probabilities).
    """
    arrays = data if isinstance(data, TrainingArrays) else load_training_data(data, size)
    return train_network(
        YNet, arrays, out_dir, config, label="fit", batches=LoaderBatches, summary_file=SUMMARY_FILE
    )


def calibrated_epochs(
    development: TrainingArrays, work: Path, config: FitConfig, budget_s: float
) -> int:
    """Epochs that fit ``budget_s``, from two timed warm-up epochs (the second one counts)."""
    probe = fit(development, work / "probe", replace(config, epochs=2, resume=False))
    epoch_s = max(float(probe.history[-1]["seconds"]), 1e-3)
    epochs = int(budget_s / (epoch_s * 1.15))
    logger.info("one epoch takes %.2fs: planning %d epochs in %.0fs", epoch_s, epochs, budget_s)
    return max(2, min(epochs, 400))
