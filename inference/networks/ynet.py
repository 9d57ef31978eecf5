"""Y-Net-style network: a MONAI BasicUNet with a benign/malignant head on its bottleneck.

One shared encoder feeds both the segmentation decoder and the classification branch
(Mehta et al., "Y-Net", MICCAI 2018; the lymph-node seed paper uses the same idea).
"""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet
from torch import nn


class YNet(nn.Module):
    """2D U-Net (MONAI BasicUNet) plus a classification head on the deepest features.

    ``forward`` returns ``(segmentation_logits [B,1,H,W], classification_logits [B,1])``.
    H and W must be multiples of 16.
    """

    def __init__(
        self,
        in_channels: int = 1,
        features: tuple[int, int, int, int, int, int] = (16, 32, 64, 128, 256, 16),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.unet = BasicUNet(
            spatial_dims=2, in_channels=in_channels, out_channels=1, features=features, dropout=dropout
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(features[4], 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.unet
        x0 = u.conv_0(x)
        x1 = u.down_1(x0)
        x2 = u.down_2(x1)
        x3 = u.down_3(x2)
        x4 = u.down_4(x3)
        cls_logits = self.classifier(x4)
        y = u.upcat_4(x4, x3)
        y = u.upcat_3(y, x2)
        y = u.upcat_2(y, x1)
        y = u.upcat_1(y, x0)
        return u.final_conv(y), cls_logits

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks (the bottleneck block, before the head)."""
        return "unet.down_4"
