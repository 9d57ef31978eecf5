"""Hybrid CNN + Transformer segmentation and classification network (family ``segcls``).

MONAI ``SwinUNETR`` in 2D (Hatamizadeh et al., "Swin UNETR", BrainLes 2021; ``use_v2``: a
residual convolution block before each Swin stage, He et al., "SwinUNETR-V2", MICCAI 2023):
a Swin Transformer (Liu et al., ICCV 2021) with convolutional encoder blocks on every scale
as the shared encoder, its U-shaped decoder for segmentation, and a classification head on
the deepest encoder features, as in Y-Net (Mehta et al., MICCAI 2018). The encoder's
state_dict stands alone (:meth:`HybridSwin.encoder_state_dict`), so it can be pretrained on
another ultrasound task (e.g. thyroid nodules, DDTI) and loaded before fine-tuning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from monai.networks.nets import SwinUNETR
from torch import nn

ENCODER_PARTS = ("swinViT", "encoder1", "encoder2", "encoder3", "encoder4", "encoder10")
DECODER_PARTS = ("decoder5", "decoder4", "decoder3", "decoder2", "decoder1", "out")
_SWIN = re.compile(r"^swin-f([1-9][0-9]*)$")
SIZE_MULTIPLE = 32


def swin_feature_size(backbone: str) -> int:
    """The feature size of a ``swin-f<N>`` backbone name (N a multiple of 12)."""
    match = _SWIN.match(backbone)
    if match is None or int(match.group(1)) % 12:
        raise ValueError(f"backbone {backbone!r} is not 'swin-f<N>' with N a multiple of 12")
    return int(match.group(1))


class HybridSwin(nn.Module):
    """``forward(x [B,C,H,W]) -> (seg_logits [B,1,H,W], class logits [B,1])``; H, W multiples of 32."""

    def __init__(self, in_channels: int = 1, feature_size: int = 12, dropout: float = 0.3) -> None:
        super().__init__()
        unet = SwinUNETR(
            in_channels=in_channels,
            out_channels=1,
            feature_size=feature_size,
            spatial_dims=2,
            use_v2=True,
        )
        self.normalize = unet.normalize
        self.encoder = nn.ModuleDict({name: getattr(unet, name) for name in ENCODER_PARTS})
        self.decoder = nn.ModuleDict({name: getattr(unet, name) for name in DECODER_PARTS})
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(16 * feature_size, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc0, enc1, enc2, enc3, hidden3, deepest = self.encode(x)
        d = self.decoder
        y = d["decoder5"](deepest, hidden3)
        y = d["decoder4"](y, enc3)
        y = d["decoder3"](y, enc2)
        y = d["decoder2"](y, enc1)
        y = d["decoder1"](y, enc0)
        return d["out"](y), self.classifier(deepest)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The shared encoder's features, shallowest first: the convolutional blocks on the
        input and on Swin stages 0-2 (widths f, f, 2f, 4f), Swin stage 3 (8f) and the deepest
        block (16f), at 1, 1/2, 1/4, 1/8, 1/16 and 1/32 of the input's side."""
        if x.shape[-1] % SIZE_MULTIPLE or x.shape[-2] % SIZE_MULTIPLE:
            raise ValueError(f"input {tuple(x.shape[-2:])} must be multiples of {SIZE_MULTIPLE}")
        e = self.encoder
        hidden = e["swinViT"](x, self.normalize)
        return (
            e["encoder1"](x),
            e["encoder2"](hidden[0]),
            e["encoder3"](hidden[1]),
            e["encoder4"](hidden[2]),
            hidden[3],
            e["encoder10"](hidden[4]),
        )

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The shared encoder's parameters and buffers alone (detached copies)."""
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}

    def load_encoder_state_dict(
        self, state: Mapping[str, torch.Tensor], strict: bool = True
    ) -> None:
        """Load an encoder state (from :meth:`encoder_state_dict`); decoder and head are kept."""
        self.encoder.load_state_dict(state, strict=strict)

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks: the deepest encoder block, before the head."""
        return "encoder.encoder10"
