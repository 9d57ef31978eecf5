"""Self-supervised pretraining of a spec's shared encoder on unlabelled frames.

The recipe of MONAI's tutorial "self_supervised_pretraining" (Project-MONAI/tutorials,
``self_supervised_pretraining/ssl_script_train.py``, after Tang et al., CVPR 2022): two views
of every frame, each corrupted by ``RandCoarseDropoutd`` (one of inner holes or an outer
cut-out) and ``RandCoarseShuffled``; an L1 loss reconstructing the uncorrupted frame and
MONAI's ``ContrastiveLoss`` (NT-Xent, temperature 0.05) between the two views; the total loss
``l1 + contrastive * l1`` as the tutorial weights it; Adam at 1e-4. Our encoder is not a
``ViTAutoEnc``: a small U-shaped reconstruction head and a projection head (used only here)
sit on its features; the contrast is between the views' projected embeddings, and both views
are reconstructed. Only the shared encoder is saved (``encoder_state_dict``), in the format
``training.retrain.network_maker(spec, encoder=path)`` loads. On CUDA the forward passes run
under bf16 autocast, as the folds train (``training.trainer.autocast``); the losses in fp32.

Resumable (``checkpoint.pt`` every epoch, each epoch's augmentations and order seeded from
``seed`` and its number) and time-budgeted (no epoch starts that would overrun
``max_seconds``). ``encoder.pt``, ``ssl.json`` and ``log.jsonl`` are rewritten every epoch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from monai.losses import ContrastiveLoss
from monai.networks.blocks import UnetOutBlock, UnetrUpBlock
from monai.transforms import Compose, CopyItemsd, OneOf, RandCoarseDropoutd, RandCoarseShuffled
from monai.utils import set_determinism
from torch import nn

from inference.loading import build_network
from inference.registry import ModelSpec, sha256_file
from training.retrain import ENCODER_FILE, has_shared_encoder
from training.ssl_frames import UnlabelledFrames
from training.torch_files import save_atomically
from training.trainer import autocast, epoch_progress

logger = logging.getLogger(__name__)

SSL_FILE = "ssl.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
METHOD = (
    "MONAI tutorial self_supervised_pretraining (Project-MONAI/tutorials, ssl_script_train.py): "
    "two views with RandCoarseDropout + RandCoarseShuffle, L1 reconstruction + "
    "monai.losses.ContrastiveLoss, total = l1 + contrastive * l1"
)
TUTORIAL_SIZE = 96
"""The tutorial's crop side; its hole sizes are scaled from it to the model grid."""


@dataclass(frozen=True)
class SslConfig:
    """Hyper-parameters (the tutorial's learning rate and temperature by default)."""

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-4
    temperature: float = 0.05
    embedding: int = 128
    seed: int = 0
    device: str = "cpu"
    max_seconds: float | None = None
    resume: bool = True


class ReconstructionHead(nn.Module):
    """A light U-shaped decoder: every encoder feature projected to ``width`` channels, then
    MONAI ``UnetrUpBlock``s from the deepest to the input's grid and a 1x1 output."""

    def __init__(self, widths: Sequence[int], width: int, out_channels: int) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, width, kernel_size=1) for c in widths)
        self.up = nn.ModuleList(
            UnetrUpBlock(2, width, width, 3, 2, norm_name="instance", res_block=True)
            for _ in widths[1:]
        )
        self.out = UnetOutBlock(2, width, out_channels)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        skips = [project(f) for project, f in zip(self.project, features, strict=True)]
        y = skips[-1]
        for block, skip in zip(reversed(self.up), reversed(skips[:-1]), strict=True):
            y = block(y, skip)
        return self.out(y)


class ProjectionHead(nn.Module):
    """The deepest feature map pooled, then a two-layer MLP to the contrastive embedding."""

    def __init__(self, channels: int, embedding: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, channels),
            nn.ReLU(inplace=True),
            nn.Linear(channels, embedding),
        )

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.mlp(deepest)


class SslModel(nn.Module):
    """The spec's network (its ``encode`` alone runs) with the two pretraining heads:
    ``forward(x) -> (reconstruction like x, embedding [B,E])``."""

    def __init__(self, network: nn.Module, channels: int, size: int, embedding: int) -> None:
        super().__init__()
        if not (has_shared_encoder(network) and hasattr(network, "encode")):
            raise ValueError(f"{type(network).__name__} has no shared encoder to pretrain")
        self.network = network
        with torch.no_grad():
            features = network.encode(torch.zeros(1, channels, size, size))
        widths = [int(f.shape[1]) for f in features]
        self.reconstruction = ReconstructionHead(widths, widths[0], channels)
        self.projection = ProjectionHead(widths[-1], embedding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.network.encode(x)
        return self.reconstruction(features), self.projection(features[-1])

    def heads_state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The two heads' states (the checkpoint keeps them beside the encoder's)."""
        return {
            "reconstruction": self.reconstruction.state_dict(),
            "projection": self.projection.state_dict(),
        }


def _scaled(value: int, size: int) -> int:
    return max(1, round(value * size / TUTORIAL_SIZE))


def _view(key: str, size: int) -> list:
    """The tutorial's corruption of one view, its hole sizes scaled from 96 to ``size``."""
    return [
        OneOf(
            transforms=[
                RandCoarseDropoutd(keys=[key], prob=1.0, holes=6, spatial_size=_scaled(5, size),
                                   dropout_holes=True, max_spatial_size=_scaled(32, size)),
                RandCoarseDropoutd(keys=[key], prob=1.0, holes=6, spatial_size=_scaled(20, size),
                                   dropout_holes=False, max_spatial_size=_scaled(64, size)),
            ]
        ),
        RandCoarseShuffled(keys=[key], prob=0.8, holes=10, spatial_size=_scaled(8, size)),
    ]  # fmt: skip


def view_transform(size: int) -> Compose:
    """``{"image"}`` -> ``{"image", "image_2", "gt_image"}``: two views, independently corrupted
    (two calls, as the tutorial makes them), and the frame itself."""
    copy = CopyItemsd(keys=["image"], times=2, names=["gt_image", "image_2"])
    return Compose([copy, *_view("image", size), *_view("image_2", size)])


def two_views(frames: torch.Tensor, transform: Compose) -> tuple[torch.Tensor, torch.Tensor]:
    """The two corrupted views ``(B,C,S,S)`` of a batch of frames, frame by frame."""
    views = [transform({"image": frame.clone()}) for frame in frames]
    first = torch.stack([torch.as_tensor(v["image"]) for v in views])
    second = torch.stack([torch.as_tensor(v["image_2"]) for v in views])
    return first.as_subclass(torch.Tensor), second.as_subclass(torch.Tensor)


def _batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch's index batches; a last batch of one frame (nothing to contrast) joins
    the one before."""
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2] = torch.cat(batches[-2:])
        batches.pop()
    return batches


@dataclass(frozen=True)
class SslOutcome:
    """Where the encoder went and the per-epoch history."""

    encoder_path: Path
    history: list[dict]
    seconds: float


def _record(spec: ModelSpec, frames: UnlabelledFrames, extra: dict, config: SslConfig,
            history: list[dict], seconds: float, out: Path) -> dict:  # fmt: skip
    first, last = (history[0], history[-1]) if history else ({}, {})
    parts = ("loss", "l1", "contrastive")
    return {
        "method": METHOD,
        "network": spec.architecture,
        "backbone": spec.backbone,
        "input_size": spec.input_size,
        "frames": frames.to_json(),
        **extra,
        "epochs": len(history),
        "epochs_planned": config.epochs,
        "loss_first_epoch": {k: first.get(k) for k in parts},
        "loss_last_epoch": {k: last.get(k) for k in parts},
        "seconds": round(seconds, 1),
        "config": asdict(config),
        "encoder": ENCODER_FILE,
        "encoder_sha256": sha256_file(out / ENCODER_FILE) if (out / ENCODER_FILE).is_file() else None,
        "history": history,
    }


def pretrain_ssl(
    spec: ModelSpec,
    frames: UnlabelledFrames,
    out: Path,
    config: SslConfig,
    extra: dict | None = None,
) -> SslOutcome:
    """Pretrain ``spec``'s shared encoder on ``frames``; write ``out/encoder.pt`` (the encoder's
    state dict), ``out/ssl.json`` (``extra`` merged in) and ``out/log.jsonl``.

    Resumes ``out/checkpoint.pt`` when ``config.resume``; ``ValueError`` when that checkpoint
    was made for another network or other frames, or the network has no shared encoder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = config.device
    inputs = frames.inputs
    channels, size = int(inputs.shape[1]), int(inputs.shape[-1])
    set_determinism(seed=config.seed)
    model = SslModel(build_network(spec), channels, size, config.embedding).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    recon_loss = nn.L1Loss()
    contrastive_loss = ContrastiveLoss(temperature=config.temperature)
    identity = {"network": spec.architecture, "backbone": spec.backbone, "size": size,
                "frames": int(inputs.shape[0])}  # fmt: skip
    history: list[dict] = []
    spent = 0.0
    checkpoint = out / CHECKPOINT_FILE
    if config.resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if saved["identity"] != identity:
            raise ValueError(f"{checkpoint} was made for {saved['identity']}, not {identity}: "
                             "use a new output folder")  # fmt: skip
        model.network.load_encoder_state_dict(saved["encoder"])  # type: ignore[operator]
        model.reconstruction.load_state_dict(saved["heads"]["reconstruction"])
        model.projection.load_state_dict(saved["heads"]["projection"])
        optimizer.load_state_dict(saved["optimizer"])
        history, spent = saved["history"], saved["seconds"]
        logger.info("resumed %s after epoch %d", checkpoint, len(history))
    transform = view_transform(size)
    extra = extra or {}
    logger.info("ssl: %d frames of %dx%d, %s (%s), device %s", len(inputs), size, size,
                spec.architecture, spec.backbone, device)  # fmt: skip
    started = time.monotonic()
    with epoch_progress("ssl") as progress:
        task = progress.add_task("ssl", total=config.epochs, completed=len(history), status="")
        for epoch in range(len(history) + 1, config.epochs + 1):
            epoch_started = time.monotonic()
            generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            transform.set_random_state(seed=(config.seed * 100_003 + epoch) % 2**32)
            model.train()
            sums = {"loss": 0.0, "l1": 0.0, "contrastive": 0.0}
            batches = _batches(len(inputs), config.batch_size, generator)
            for index in batches:
                batch = inputs[index]
                first, second = two_views(batch, transform)
                first, second, target = first.to(device), second.to(device), batch.to(device)
                with autocast(device):  # bf16 on CUDA, as the folds train; losses in fp32
                    recon_1, embed_1 = model(first)
                    recon_2, embed_2 = model(second)
                l1 = 0.5 * (recon_loss(recon_1.float(), target) + recon_loss(recon_2.float(), target))
                contrast = contrastive_loss(embed_1.float(), embed_2.float())
                loss = l1 + contrast * l1
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                for key, value in (("loss", loss), ("l1", l1), ("contrastive", contrast)):
                    sums[key] += float(value.detach())
            seconds = time.monotonic() - epoch_started
            record = {"epoch": epoch, **{k: v / len(batches) for k, v in sums.items()},
                      "batches": len(batches), "seconds": round(seconds, 2)}  # fmt: skip
            history.append(record)
            elapsed = spent + time.monotonic() - started
            encoder = model.network.encoder_state_dict()  # type: ignore[operator]
            save_atomically(encoder, out / ENCODER_FILE)
            save_atomically(
                {
                    "identity": identity,
                    "encoder": encoder,
                    "heads": model.heads_state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "seconds": elapsed,
                },
                checkpoint,
            )
            with (out / LOG_FILE).open("a") as log:
                log.write(json.dumps(record) + "\n")
            summary = _record(spec, frames, extra, config, history, elapsed, out)
            (out / SSL_FILE).write_text(json.dumps(summary, indent=2) + "\n")
            logger.info("ssl: epoch %d loss %.4f (l1 %.4f, contrastive %.4f) %.1fs", epoch,
                        record["loss"], record["l1"], record["contrastive"], seconds)  # fmt: skip
            progress.update(task, completed=epoch, status=f"loss {record['loss']:.3f}")
            run_seconds = time.monotonic() - started
            if config.max_seconds is not None and run_seconds + seconds > config.max_seconds:
                logger.info("ssl: stopping after epoch %d (budget %.0fs)", epoch,
                            config.max_seconds)  # fmt: skip
                break
    return SslOutcome(out / ENCODER_FILE, history, spent + time.monotonic() - started)
