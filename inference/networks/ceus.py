"""B-mode + contrast-enhanced ultrasound classifier (family ``ceus``) with MLP feature fusion.

The CEUS cine is reduced to key frames at equal time intervals, stacked as the channels of
one 2D input; a 2D image model encodes it, another encodes the B-mode frame, and a small MLP
fuses the two feature vectors into one logit: the "combined" 2D + CEUS model of the
lymph-node CEUS deep-learning studies (five key frames at equal intervals, feature fusion by
an MLP), with any backbone of :mod:`inference.networks.backbones`.
"""

from __future__ import annotations

import torch
from torch import nn

from inference.networks.backbones import build_backbone


class CeusFusion(nn.Module):
    """``forward(bmode [B,C,H,W], ceus [B,K,H,W]) -> class logits [B,1]`` (K key frames)."""

    def __init__(
        self,
        backbone: str,
        in_channels: int = 1,
        ceus_frames: int = 5,
        hidden: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        bmode = build_backbone(backbone, in_channels)
        ceus = build_backbone(backbone, ceus_frames)
        self.min_size = bmode.min_size
        self.ceus_frames = ceus_frames
        self.bmode_features = bmode.features
        self.ceus_features = ceus.features
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fusion = nn.Sequential(
            nn.Linear(bmode.channels + ceus.channels, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, bmode: torch.Tensor, ceus: torch.Tensor) -> torch.Tensor:
        if ceus.shape[1] != self.ceus_frames:
            raise ValueError(
                f"CEUS input has {ceus.shape[1]} key frames, expected {self.ceus_frames}"
            )
        fused = torch.cat(
            [self.pool(self.bmode_features(bmode)), self.pool(self.ceus_features(ceus))], dim=1
        )
        return self.fusion(fused)

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks: the B-mode branch's last feature map."""
        return "bmode_features"
