"""Train any network family on its network inputs held on the device: resumable, seeded, timed.

The cases are image-level arrays (:class:`training.datasets.TrainingArrays`: one grey input,
masks) or study-level inputs (:class:`training.study_dataset.StudyArrays`: every input of a
spec, as inference builds them); the network takes them positionally, as ``run_model`` does.
A family's network returns either ``(segmentation_logits, classification_logits)`` (a
segmenter-classifier) or ``classification_logits`` alone (a classifier); the mask loss counts
only the cases with a reference mask. An inner group-aware split picks the best epoch (mean of
validation Dice and AUC; the later epoch on a tie, as small validation splits tie often) and
the Youden threshold. With ``ema_decay`` the selection, ``best.pt`` and the Youden threshold
use an exponential moving average of the weights (``torch.optim.swa_utils.AveragedModel``,
updated after every optimiser step, buffers included) instead of the raw weights: a smoother
network whose validation score swings less on a small inner split. Training stops at
``epochs``, at the time budget or, with ``patience``, when the selection score has not
improved for that many epochs; the summary says which (``stopped``). Imports no pydantic,
pydicom or settings.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from monai.losses import DiceCELoss
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from inference.measure import lesion_mask
from inference.transforms import INPUT_MEAN, INPUT_STD
from training.metrics import auc_with_ci, dice_scores, dice_summary, youden_threshold
from training.provenance import run_platform
from training.splits import holdout_indices
from training.tensor_augment import augment_batch
from training.torch_files import save_atomically

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
SUMMARY_FILE = "train.json"
#: the best epoch's inner-validation probabilities and labels (what packaging calibrates on)
VALIDATION_FILE = "validation.npz"
#: why a run stopped (``stopped`` in its summary): its epoch cap, its patience, its time budget
STOPPED_EPOCHS = "epochs"
STOPPED_PATIENCE = "patience"
STOPPED_TIME = "time budget"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; ``max_seconds`` stops early when the next epoch would overrun,
    ``patience`` (None: off) when the selection score has not improved for that many epochs."""

    epochs: int = 60
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    classification_weight: float = 0.5
    validation_fraction: float = 0.15
    seed: int = 0
    device: str = "cpu"
    #: data loader worker processes (a MONAI DataLoader source, as ``training.fit`` uses)
    num_workers: int = 0
    augment: bool = True
    resume: bool = True
    max_seconds: float | None = None
    #: cosine learning rate over the fraction of ``max_seconds`` spent instead of over epochs
    time_schedule: bool = False
    patience: int | None = None
    #: decay of an exponential moving average of the weights, validated and saved instead of
    #: the raw weights (None: off); 0.99 averages over about the last 100 optimiser steps
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1 epoch or None, not {self.patience}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie strictly between 0 and 1, not {self.ema_decay}")


@dataclass
class TrainOutcome:
    """The best weights, their epoch, the Youden threshold and the inner-validation figures."""

    best_state_path: Path
    best_epoch: int
    threshold: float
    validation: dict
    history: list[dict] = field(default_factory=list)


class Cases(Protocol):
    """What the trainer needs of a dataset: labels, groups, names, network inputs, masks."""

    malignant: np.ndarray
    groups: np.ndarray
    names: np.ndarray
    masks: np.ndarray | None
    has_mask: np.ndarray | None

    def subset(self, indices: np.ndarray) -> Cases: ...

    def network_inputs(self) -> list[torch.Tensor]: ...

    def mask_tensor(self) -> torch.Tensor | None: ...


def model_inputs(images: np.ndarray) -> torch.Tensor:
    """(N,1,S,S) normalised inputs from uint8 grey (N,S,S), as ``to_model_input`` normalises."""
    grey = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    return (grey - INPUT_MEAN) / INPUT_STD


def split_outputs(output: object) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(segmentation logits or None, classification logits (B,1)) of any family's output."""
    if isinstance(output, tuple | list) and len(output) == 2:
        return output[0], output[1]
    if isinstance(output, dict):
        return output.get("segmentation"), output["classification"]
    if isinstance(output, torch.Tensor):
        return None, output
    raise TypeError(f"cannot read a network output of type {type(output).__name__}")


def autocast(device: str) -> torch.autocast:
    """bf16 autocast on CUDA, a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))


def _eval_outputs(
    network: nn.Module, inputs: list[torch.Tensor], device: str, batch_size: int
) -> Iterator[tuple[slice, torch.Tensor | None, torch.Tensor]]:
    """(cases, segmentation logits or None, classification logits) per batch, eval mode."""
    network.eval()
    for start in range(0, len(inputs[0]), batch_size):
        part = slice(start, start + batch_size)
        with autocast(device):
            seg, cls = split_outputs(network(*[x[part].to(device) for x in inputs]))
        yield part, seg, cls


@torch.no_grad()
def predict(
    network: nn.Module,
    inputs: torch.Tensor | list[torch.Tensor],
    device: str,
    batch_size: int = 32,
    loss: Callable[[slice, torch.Tensor | None, torch.Tensor], object] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities (N,), masks (N,S,S) bool or None for a classifier) on normalised inputs
    (one tensor, or one per network input in forward order). Each mask is the one the node
    would deliver (``inference.measure.lesion_mask``). ``loss(cases, seg, cls)``, when given,
    sees every batch's logits in the same pass (the validation loss)."""
    inputs = inputs if isinstance(inputs, list) else [inputs]
    probabilities, masks = [], []
    for part, seg, cls in _eval_outputs(network, inputs, device, batch_size):
        if loss is not None:
            loss(part, seg, cls)
        probabilities.append(torch.sigmoid(cls.float())[:, 0].cpu().numpy())
        if seg is not None:
            lesion = torch.sigmoid(seg.float())[:, 0].cpu().numpy()
            masks.append(np.stack([lesion_mask(image) for image in lesion]))
    return np.concatenate(probabilities), (np.concatenate(masks) if masks else None)


#: the training objective of a batch: (segmentation logits or None, classification logits,
#: masks or None, which cases have a mask, labels (B,1); -1 unlabelled) -> the loss
Objective = Callable[
    [torch.Tensor | None, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor],
    torch.Tensor,
]


def make_objective(train: Cases, config: TrainConfig) -> Objective:
    """The loss the trainer minimises: class-weighted BCE of the labelled cases (weighted by
    ``classification_weight``) plus Dice-CE of the cases with a reference mask."""
    seg_loss = DiceCELoss(sigmoid=True, batch=True)
    positives = max(int((train.malignant == 1).sum()), 1)
    negatives = max(int((train.malignant == 0).sum()), 1)
    cls_loss = nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor([negatives / positives], device=config.device), reduction="none"
    )

    def objective(
        seg: torch.Tensor | None,
        cls: torch.Tensor,
        mask: torch.Tensor | None,
        has_mask: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        known = (target >= 0).float()
        per_case = cls_loss(cls.float(), target.clamp(min=0))
        loss = config.classification_weight * (
            (per_case * known).sum() / known.sum().clamp(min=1.0)
        )
        if seg is not None and mask is not None and bool(has_mask.any()):
            loss = loss + seg_loss(seg[has_mask].float(), mask[has_mask])
        return loss

    return objective


def validate(
    network: nn.Module, val: Cases, inputs: list[torch.Tensor], objective: Objective, device: str
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """One eval pass over ``val``: its probabilities, masks and the training objective
    (no augmentation) averaged over cases."""
    masks = val.mask_tensor()
    has_mask = torch.from_numpy(np.asarray(val.has_mask, bool))
    labels = torch.from_numpy(val.malignant.astype(np.float32))[:, None]
    weighted: list[float] = []  # each batch's mean loss times its case count

    def add(part: slice, seg: torch.Tensor | None, cls: torch.Tensor) -> None:
        mask = None if masks is None else masks[part].to(device)
        loss = objective(seg, cls, mask, has_mask[part].to(device), labels[part].to(device))
        weighted.append(float(loss) * len(labels[part]))

    probabilities, predicted = predict(network, inputs, device, loss=add)
    return probabilities, predicted, sum(weighted) / max(len(labels), 1)


def patience_spent(state: dict, config: TrainConfig) -> bool:
    """Whether ``config.patience`` epochs have passed since the selection score of ``state``
    last rose (a tie moves the best epoch but is no improvement)."""
    improved = state.get("improved_epoch", state["best_epoch"])
    return config.patience is not None and state["epoch"] - improved >= config.patience


def lesion_cases(arrays: Cases) -> np.ndarray:
    """(N,) bool: the cases whose reference mask holds a lesion (none without masks)."""
    if arrays.masks is None:
        return np.zeros(len(arrays.malignant), bool)
    lesion = arrays.masks.reshape(len(arrays.masks), -1).any(axis=1)
    return lesion & np.asarray(arrays.has_mask, bool)


def score_predictions(arrays: Cases, probabilities: np.ndarray, masks: np.ndarray | None) -> dict:
    """AUC and Dice (lesion images only) of predictions against ``arrays``; ``score`` = their mean."""
    labelled = arrays.malignant >= 0
    auc, _, _ = auc_with_ci(arrays.malignant[labelled], probabilities[labelled])
    dice: dict = {"dice_mean": None, "dice_median": None, "dice_n": 0}
    lesion = lesion_cases(arrays)
    if masks is not None and lesion.any():
        reference = arrays.masks[lesion]  # type: ignore[index]
        dice = dice_summary(dice_scores(list(masks[lesion]), list(reference)))
    parts = [v for v in (dice["dice_mean"], auc) if v is not None]
    return {"auc": auc, **dice, "score": float(np.mean(parts)) if parts else 0.0}


def weight_average(network: nn.Module, config: TrainConfig) -> AveragedModel | None:
    """An exponential moving average of ``network``'s weights and buffers (None without
    ``config.ema_decay``)."""
    if config.ema_decay is None:
        return None
    return AveragedModel(
        network, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
    )


def epoch_progress(label: str) -> Progress:
    """An epochs progress bar (rich), shown only on a terminal."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} epochs"),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        disable=not Console().is_terminal,
    )


#: one training batch on the device: the network inputs (forward order), masks (B,1,S,S) or
#: None, which cases have a reference mask (B,) bool, labels (B,1)
Batch = tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor, torch.Tensor]


class BatchSource(Protocol):
    """Where an epoch's batches come from, with the random state a resumed run continues."""

    def epoch(self) -> Iterable[Batch]: ...

    def state(self) -> object: ...

    def restore(self, state: object) -> None: ...


def flip_inputs(
    inputs: list[torch.Tensor], mask: torch.Tensor | None, generator: torch.Generator
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Mirror the whole batch left-right (every input and the mask alike) half of the time."""
    if float(torch.rand((), generator=generator)) >= 0.5:
        return inputs, mask
    flipped = [x.flip(-1) for x in inputs]
    return flipped, None if mask is None else mask.flip(-1)


class TensorBatches:
    """The training cases held on the device, shuffled by a seeded generator and augmented per
    batch on the device: one image input with :func:`training.tensor_augment.augment_batch`,
    several inputs (or a clip) with a left-right flip of all of them at once."""

    def __init__(self, train: Cases, config: TrainConfig) -> None:
        device = config.device
        self._inputs = [x.to(device) for x in train.network_inputs()]
        masks = train.mask_tensor()
        self._masks = None if masks is None else masks.to(device)
        self._has_mask = torch.from_numpy(np.asarray(train.has_mask, bool)).to(device)
        self._labels = torch.from_numpy(train.malignant.astype(np.float32)).to(device)[:, None]
        self._generator = torch.Generator().manual_seed(config.seed)
        self._batch_size = min(config.batch_size, len(self._labels))
        self._augment = config.augment
        self._device = device

    def epoch(self) -> Iterator[Batch]:
        order = torch.randperm(len(self._labels), generator=self._generator)
        for step in range(max(1, len(order) // self._batch_size)):
            index = order[step * self._batch_size : (step + 1) * self._batch_size].to(self._device)
            inputs = [x[index] for x in self._inputs]
            mask = None if self._masks is None else self._masks[index]
            if self._augment and len(inputs) == 1 and inputs[0].ndim == 4 and mask is not None:
                image, mask = augment_batch(inputs[0], mask, self._generator)
                inputs = [image]
            elif self._augment:
                inputs, mask = flip_inputs(inputs, mask, self._generator)
            yield inputs, mask, self._has_mask[index], self._labels[index]

    def state(self) -> object:
        return self._generator.get_state()

    def restore(self, state: object) -> None:
        self._generator.set_state(state)  # type: ignore[arg-type]


def train_network(
    make_network: Callable[[], nn.Module],
    arrays: Cases,
    out_dir: Path,
    config: TrainConfig,
    label: str = "train",
    batches: Callable[[Cases, TrainConfig], BatchSource] = TensorBatches,
    summary_file: str = SUMMARY_FILE,
) -> TrainOutcome:
    """Train ``make_network()`` on ``arrays`` (inner split for model selection); returns the best epoch.

    ``batches`` makes the training batches from the training part of the split (default:
    :class:`TensorBatches`). Writes ``checkpoint.pt`` every epoch (resumed from when
    ``config.resume``), ``best.pt`` (fp32 state_dict), ``validation.npz`` (the best epoch's
    inner-validation probabilities, labels and case indices) and ``summary_file`` (history,
    split, threshold). A finished run resumes to the same result without training again.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = config.device
    torch.manual_seed(config.seed)
    train_index, val_index = holdout_indices(
        arrays.groups.tolist(), arrays.malignant.tolist(), config.validation_fraction, config.seed
    )
    train, val = arrays.subset(train_index), arrays.subset(val_index)
    source = batches(train, config)
    val_inputs = val.network_inputs()
    network = make_network().to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    averaged = weight_average(network, config)
    evaluated = network if averaged is None else averaged.module  # what is validated and saved
    objective = make_objective(train, config)
    state: dict = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "improved_epoch": 0,
                   "history": [], "threshold": 0.5}  # fmt: skip
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if config.resume and checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        source.restore(saved["batches"])
        if averaged is not None and "averaged" in saved:  # else it starts from these weights
            averaged.load_state_dict(saved["averaged"])
        torch.set_rng_state(saved["torch_rng"])  # dropout and anything else on torch's own
        state = saved["state"]
        logger.info("resumed %s after epoch %d", checkpoint_path, state["epoch"])
    logger.info(
        "%s: %d train / %d validation cases (%d / %d groups), device %s",
        label,
        len(train.malignant),
        len(val.malignant),
        len(set(train.groups.tolist())),
        len(set(val.groups.tolist())),
        device,
    )
    started = time.monotonic()
    stopped = STOPPED_PATIENCE if patience_spent(state, config) else STOPPED_EPOCHS
    first = config.epochs + 1 if stopped == STOPPED_PATIENCE else state["epoch"] + 1
    with epoch_progress(label) as progress:
        task = progress.add_task(label, total=config.epochs, completed=state["epoch"], status="")
        for epoch in range(first, config.epochs + 1):
            epoch_started = time.monotonic()
            if config.time_schedule and config.max_seconds:
                spent = min(1.0, (epoch_started - started) / config.max_seconds)
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * spent))
            network.train()
            losses = []
            for inputs, mask, has_mask, target in source.epoch():
                with autocast(device):
                    seg, cls = split_outputs(network(*inputs))
                loss = objective(seg, cls, mask, has_mask, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if averaged is not None:
                    averaged.update_parameters(network)
                losses.append(float(loss.detach()))
            if not config.time_schedule:
                scheduler.step()
            probabilities, masks, val_loss = validate(evaluated, val, val_inputs, objective, device)
            validation = score_predictions(val, probabilities, masks)
            record = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "learning_rate": float(optimizer.param_groups[0]["lr"]),
                "seconds": round(time.monotonic() - epoch_started, 2),
                **{f"val_{k}": v for k, v in validation.items()},
            }
            state["history"].append(record)
            state["epoch"] = epoch
            if validation["score"] > state["best_score"]:
                state["improved_epoch"] = epoch
            if validation["score"] >= state["best_score"]:  # a tie: the later, more trained epoch
                labelled = val.malignant >= 0
                state.update(
                    best_score=validation["score"],
                    best_epoch=epoch,
                    threshold=youden_threshold(val.malignant[labelled], probabilities[labelled]),
                    best_validation=validation,
                )
                weights = evaluated.state_dict().items()
                cpu_state = {k: v.detach().float().cpu() for k, v in weights}
                save_atomically(cpu_state, out_dir / BEST_FILE)
                np.savez(out_dir / VALIDATION_FILE, probability=probabilities,
                         malignant=val.malignant, index=val_index)  # fmt: skip
            save_atomically(
                {
                    "model": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "batches": source.state(),
                    "torch_rng": torch.get_rng_state(),
                    "state": state,
                    **({} if averaged is None else {"averaged": averaged.state_dict()}),
                },
                checkpoint_path,
            )
            logger.info(
                "%s: epoch %d loss %.4f val dice %s auc %s (%.1fs)",
                label,
                epoch,
                record["train_loss"],
                _fmt(validation["dice_mean"]),
                _fmt(validation["auc"]),
                record["seconds"],
            )
            progress.update(task, completed=epoch, status=f"loss {record['train_loss']:.3f}")
            elapsed = time.monotonic() - started
            if patience_spent(state, config):
                stopped = STOPPED_PATIENCE
                logger.info("%s: stopping after epoch %d (no better score since epoch %d)",
                            label, epoch, state["improved_epoch"])  # fmt: skip
                break
            if config.max_seconds is not None and elapsed + record["seconds"] > config.max_seconds:
                stopped = STOPPED_TIME if epoch < config.epochs else STOPPED_EPOCHS
                logger.info(
                    "%s: stopping after epoch %d (budget %.0fs)", label, epoch, config.max_seconds
                )
                break
    outcome = TrainOutcome(
        best_state_path=out_dir / BEST_FILE,
        best_epoch=state["best_epoch"],
        threshold=state["threshold"],
        validation=state.get("best_validation", {}),
        history=state["history"],
    )
    summary = {
        "best_epoch": outcome.best_epoch,
        "epochs_run": state["epoch"],
        "stopped": stopped,
        "improved_epoch": state.get("improved_epoch", state["best_epoch"]),
        "threshold": outcome.threshold,
        "validation": outcome.validation,
        "n_train": len(train.malignant),
        "n_validation": len(val.malignant),
        "validation_groups": sorted(set(val.groups.tolist())),
        "config": asdict(config),
        "platform": run_platform(config.device),
        "history": outcome.history,
    }
    (out_dir / summary_file).write_text(json.dumps(summary, indent=2) + "\n")
    return outcome


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
