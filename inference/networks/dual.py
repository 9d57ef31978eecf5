"""Dual-input B-mode + colour Doppler classifier (family ``dual``) with cross-attention.

One shared 2D backbone encodes both images (one batched pass); each feature map is projected
to tokens, B-mode tokens attend to Doppler tokens and Doppler tokens to B-mode tokens
(``torch.nn.MultiheadAttention``, Vaswani et al., NeurIPS 2017), the two attended maps are
pooled, concatenated and classified. The B-mode + colour Doppler fusion follows multimodal
ultrasound classifiers such as Qian et al., Nature Biomedical Engineering 2021;5:522-532;
``single_input=True`` builds the B-mode-only variant they compare against.
"""

from __future__ import annotations

import torch
from torch import nn

from inference.networks.backbones import build_backbone


class CrossAttention(nn.Module):
    """``query`` tokens attend to ``context`` tokens; residual connection and layer norm."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(query, context, context, need_weights=False)
        return self.norm(query + attended)


def _tokens(features: torch.Tensor) -> torch.Tensor:
    """``[B,D,h,w] -> [B,h*w,D]``."""
    return features.flatten(2).transpose(1, 2)


class DualCrossAttention(nn.Module):
    """``forward(bmode [B,C,H,W], doppler [B,3,H,W] | None) -> class logits [B,1]``.

    The shared backbone takes ``doppler_channels`` channels; a B-mode input of one channel is
    repeated to that many. ``doppler`` may be ``None`` only when ``single_input`` is set.
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int = 1,
        doppler_channels: int = 3,
        dim: int = 64,
        heads: int = 4,
        single_input: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if in_channels not in (1, doppler_channels):
            raise ValueError(
                f"B-mode channels {in_channels} must be 1 or the Doppler channels {doppler_channels}"
            )
        trunk = build_backbone(backbone, doppler_channels)
        self.min_size = trunk.min_size
        self.single_input = single_input
        self.backbone_channels = doppler_channels
        self.backbone = trunk.features
        self.bmode_projection = nn.Conv2d(trunk.channels, dim, kernel_size=1)
        fused = dim
        if not single_input:
            self.doppler_projection = nn.Conv2d(trunk.channels, dim, kernel_size=1)
            self.bmode_to_doppler = CrossAttention(dim, heads)
            self.doppler_to_bmode = CrossAttention(dim, heads)
            fused = 2 * dim
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(fused, dim), nn.ReLU(), nn.Linear(dim, 1)
        )

    def forward(self, bmode: torch.Tensor, doppler: torch.Tensor | None = None) -> torch.Tensor:
        if bmode.shape[1] != self.backbone_channels:
            bmode = bmode.expand(-1, self.backbone_channels, -1, -1)
        if self.single_input:
            features = self.bmode_projection(self.backbone(bmode))
            return self.head(features.mean(dim=(2, 3)))
        if doppler is None:
            raise ValueError(
                "this dual model needs a Doppler input; build single_input for B-mode only"
            )
        both = self.backbone(torch.cat([bmode, doppler], dim=0))
        bmode_features, doppler_features = both.chunk(2, dim=0)
        b_tokens = _tokens(self.bmode_projection(bmode_features))
        d_tokens = _tokens(self.doppler_projection(doppler_features))
        b_attended = self.bmode_to_doppler(b_tokens, d_tokens)
        d_attended = self.doppler_to_bmode(d_tokens, b_tokens)
        return self.head(torch.cat([b_attended.mean(dim=1), d_attended.mean(dim=1)], dim=1))

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks: the B-mode-only projection of the shared features."""
        return "bmode_projection"
