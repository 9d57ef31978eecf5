"""Single-image classifier (family ``image``): a 2D backbone trunk, global pooling, one logit.

The backbones are those compared for lymph-node ultrasound classification (see
:mod:`inference.networks.backbones`), with the ImageNet head replaced by global average
pooling and a linear layer to one malignancy logit, as in transfer-learning studies such as
Zhou et al., "Lymph node metastasis prediction from primary breast cancer US images using
deep learning", Radiology 2020 (here trained from scratch: no pretrained weights).
"""

from __future__ import annotations

import torch
from torch import nn

from inference.networks.backbones import build_backbone


def logit_head(channels: int, dropout: float = 0.2) -> nn.Sequential:
    """Global average pooling, dropout and a linear layer: ``[B,F,h,w] -> [B,1]``."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, 1)
    )


class ImageClassifier(nn.Module):
    """``forward(x [B,C,H,W]) -> class logits [B,1]`` on a named backbone."""

    def __init__(self, backbone: str, in_channels: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        trunk = build_backbone(backbone, in_channels)
        self.backbone_name = backbone
        self.min_size = trunk.min_size
        self.features = trunk.features
        self.head = logit_head(trunk.channels, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks: the backbone trunk's last feature map."""
        return "features"
