"""Train a Y-Net (segmentation + benign/malignant head) on model-grid arrays; resumable, seeded.

Imports only torch, numpy, scikit-learn, MONAI, rich and the repo's training/ and
inference.networks / inference.transforms modules, so it runs on a bare GPU machine.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.losses import DiceCELoss
from torch import nn

from inference.networks.ynet import YNet
from inference.transforms import to_model_input
from training.augment import training_augmentation
from training.datasets import TrainingArrays, arrays_from_rows, read_image_folder, usable_rows
from training.metrics import youden_threshold
from training.pack import load_packed
from training.splits import holdout_indices
from training.trainer import autocast, epoch_progress, predict, save_atomically, score_predictions

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
SUMMARY_FILE = "fit.json"


@dataclass(frozen=True)
class FitConfig:
    """Training hyper-parameters; ``max_seconds`` stops early when the next epoch would overrun."""

    epochs: int = 60
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    classification_weight: float = 0.5
    validation_fraction: float = 0.15
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    augment: bool = True
    resume: bool = True
    max_seconds: float | None = None


@dataclass
class FitResult:
    """Where the best weights are, the epoch they came from and the inner-validation figures."""

    best_state_path: Path
    best_epoch: int
    threshold: float
    validation: dict
    history: list[dict] = field(default_factory=list)


def load_training_data(source: Path, size: int) -> TrainingArrays:
    """A packed ``.npz`` or an image folder as model-grid arrays (conflicting groups dropped)."""
    source = Path(source)
    if source.suffix == ".npz":
        arrays, conflict = load_packed(source)
        if arrays.size != size:
            raise ValueError(f"{source} is packed at {arrays.size}, the model wants {size}")
        return arrays.subset(np.flatnonzero(~conflict))
    return arrays_from_rows(usable_rows(read_image_folder(source)), size, root=source)


def _model_inputs(arrays: TrainingArrays) -> torch.Tensor:
    """(N,1,S,S) normalised network inputs, through ``to_model_input`` as at inference."""
    size = arrays.size
    return torch.cat([to_model_input(image / np.float32(255.0), size) for image in arrays.images])


def _loader(arrays: TrainingArrays, config: FitConfig) -> DataLoader:
    inputs = _model_inputs(arrays)
    items = [
        {
            "image": inputs[i],
            "mask": torch.from_numpy(arrays.masks[i][None].astype(np.float32)),
            "label": torch.tensor([float(arrays.malignant[i])]),
        }
        for i in range(len(arrays.images))
    ]
    transform = training_augmentation(arrays.size, config.seed) if config.augment else None
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(
        Dataset(items, transform=transform),
        batch_size=min(config.batch_size, len(items)),
        shuffle=True,
        drop_last=len(items) > config.batch_size,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        pin_memory=config.device.startswith("cuda"),
        generator=generator,
    )


def _validate(
    network: nn.Module, arrays: TrainingArrays, inputs: torch.Tensor, device: str
) -> dict:
    probabilities, masks = predict(network, inputs, device)
    return {**score_predictions(arrays, probabilities, masks), "probabilities": probabilities.tolist()}


def fit(
    data: TrainingArrays | Path, out_dir: Path, config: FitConfig, size: int = 256
) -> FitResult:
    """Train ``YNet()`` with an inner group-aware validation split; returns the best epoch.

    Writes ``checkpoint.pt`` every epoch (resumed from when ``config.resume``), ``best.pt``
    (fp32 state_dict of the epoch with the best mean of validation Dice and AUC) and
    ``fit.json`` (history, split sizes, Youden threshold on the validation probabilities).
    """
    arrays = data if isinstance(data, TrainingArrays) else load_training_data(data, size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)  # MONAI's randomisable transforms fall back on it when unseeded
    train_index, val_index = holdout_indices(
        arrays.groups.tolist(), arrays.malignant.tolist(), config.validation_fraction, config.seed
    )
    train, val = arrays.subset(train_index), arrays.subset(val_index)
    val_inputs = _model_inputs(val)
    loader = _loader(train, config)
    device = config.device
    network = YNet().to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    seg_loss = DiceCELoss(sigmoid=True, batch=True)
    positives = max(int((train.malignant == 1).sum()), 1)
    negatives = max(int((train.malignant == 0).sum()), 1)
    cls_loss = nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor([negatives / positives], device=device), reduction="none"
    )
    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "history": [], "threshold": 0.5}
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if config.resume and checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        logger.info("resumed from %s after epoch %d", checkpoint_path, state["epoch"])
    logger.info(
        "fit: %d train / %d validation images (%d / %d groups), size %d, device %s",
        len(train.images),
        len(val.images),
        len(set(train.groups)),
        len(set(val.groups)),
        arrays.size,
        device,
    )
    started = time.monotonic()
    with epoch_progress("fit") as progress:
        task = progress.add_task("fit", total=config.epochs, completed=state["epoch"], status="")
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            epoch_started = time.monotonic()
            network.train()
            losses = []
            for batch in loader:
                image = batch["image"].to(device, non_blocking=True)
                mask = batch["mask"].to(device, non_blocking=True)
                label = batch["label"].to(device, non_blocking=True)
                known = (label >= 0).float()
                with autocast(device):
                    seg_logits, cls_logits = network(image)
                per_case = cls_loss(cls_logits.float(), label.clamp(min=0))
                loss = seg_loss(seg_logits.float(), mask) + config.classification_weight * (
                    (per_case * known).sum() / known.sum().clamp(min=1.0)
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            scheduler.step()
            validation = _validate(network, val, val_inputs, device)
            probabilities = validation.pop("probabilities")
            record = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "learning_rate": float(optimizer.param_groups[0]["lr"]),
                "seconds": round(time.monotonic() - epoch_started, 2),
                **{f"val_{k}": v for k, v in validation.items()},
            }
            state["history"].append(record)
            state["epoch"] = epoch
            if validation["score"] > state["best_score"]:
                labelled = val.malignant >= 0
                state.update(
                    best_score=validation["score"],
                    best_epoch=epoch,
                    threshold=youden_threshold(
                        val.malignant[labelled], np.asarray(probabilities)[labelled]
                    ),
                    best_validation=validation,
                )
                cpu_state = {k: v.detach().float().cpu() for k, v in network.state_dict().items()}
                save_atomically(cpu_state, out_dir / BEST_FILE)
            save_atomically(
                {
                    "model": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "state": state,
                },
                checkpoint_path,
            )
            logger.info(
                "epoch %d loss %.4f val dice %s auc %s (%.1fs)",
                epoch,
                record["train_loss"],
                _fmt(validation["dice_mean"]),
                _fmt(validation["auc"]),
                record["seconds"],
            )
            progress.update(task, completed=epoch, status=f"loss {record['train_loss']:.3f}")
            elapsed = time.monotonic() - started
            if config.max_seconds is not None and elapsed + record["seconds"] > config.max_seconds:
                logger.warning(
                    "stopping after epoch %d: time budget %.0fs", epoch, config.max_seconds
                )
                break
    result = FitResult(
        best_state_path=out_dir / BEST_FILE,
        best_epoch=state["best_epoch"],
        threshold=state["threshold"],
        validation=state.get("best_validation", {}),
        history=state["history"],
    )
    summary = {
        "best_epoch": result.best_epoch,
        "threshold": result.threshold,
        "validation": result.validation,
        "n_train": len(train.images),
        "n_validation": len(val.images),
        "validation_groups": sorted(set(val.groups.tolist())),
        "config": asdict(config),
        "history": result.history,
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return result


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
