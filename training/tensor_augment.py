"""Batch augmentations in plain torch, run on the training device (no CPU workers needed).

Used when many trainings share one GPU: MONAI's per-sample CPU transforms would starve it.
Spatial changes (flip, affine) go to image and mask together, intensity jitter to the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly flipped, rotated (12 deg), scaled (12%), shifted (6%) and intensity-jittered copies.

    ``images`` and ``masks`` are (B,1,S,S) on any device; ``generator`` lives on the CPU so
    that runs are reproducible across devices.
    """
    batch = images.shape[0]
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return (torch.rand(batch, generator=generator) * (high - low) + low).to(device)

    angle = uniform(-math.radians(12), math.radians(12))
    scale = uniform(0.88, 1.12)
    flip = torch.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0)
    shift_x, shift_y = uniform(-0.12, 0.12), uniform(-0.12, 0.12)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift_x], dim=1),
            torch.stack([sin * flip, cos, shift_y], dim=1),
        ],
        dim=1,
    ).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    moved_masks = F.grid_sample(
        masks, grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    gain = uniform(0.85, 1.15).view(-1, 1, 1, 1)
    offset = uniform(-0.3, 0.3).view(-1, 1, 1, 1)
    noise_scale = (uniform(0.0, 1.0) < 0.2).float().view(-1, 1, 1, 1) * 0.05
    noise = torch.randn(moved.shape, generator=generator).to(device) * noise_scale
    return moved * gain + offset + noise, moved_masks
