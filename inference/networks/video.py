"""Cine classifiers (family ``video``): ``forward(clip [B,C,T,H,W]) -> class logits [B,1]``.

* :class:`TemporalInterlaceNet`: a 2D ResNet whose residual blocks first interlace a quarter
  of their channels along time by offsets and weights predicted from the clip, the shift
  being differentiable by linear interpolation (Temporal Interlacing Network, Shao, Qian and
  Liu, AAAI 2020).
* :class:`R2Plus1D`: torchvision's ``VideoResNet`` with (2+1)D convolutions (Tran et al.,
  "A closer look at spatiotemporal convolutions for action recognition", CVPR 2018).
* :class:`R3D`: MONAI's 3D ``ResNet`` (Hara et al., CVPR 2018), small widths available.

Each has a ``gradcam_layer`` whose output is ``[B,F,t,h,w]``, so Grad-CAM maps come back on
the clip's ``(T,H,W)`` grid; the node shows the key (middle) frame's map.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.models.video import resnet as tv_video

from inference.networks.backbones import (
    build_backbone,
    replace_first_conv,
    resnet_trunk,
    small_resnet,
)

_RESIDUAL_BLOCKS = (ResNetBlock, ResNetBottleneck, tv_resnet.BasicBlock, tv_resnet.Bottleneck)
_R2PLUS1D = re.compile(r"^r2plus1d_(10|18)$")


def interlace_shift(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Shift each group of ``x [B,T,G,...]`` along time by real ``offsets [B,G]`` (zeros enter).

    Frame ``t`` of group ``g`` becomes ``x(t + offset)`` by linear interpolation between the
    two nearest frames, so the result is differentiable in the offsets.
    """
    frames = x.shape[1]
    grid = torch.arange(frames, dtype=x.dtype, device=x.device)
    source = grid[None, None, :, None] + offsets[:, :, None, None]  # [B,G,T(out),1]
    weights = F.relu(1.0 - (source - grid[None, None, None, :]).abs())  # [B,G,T(out),T(in)]
    flat = x.flatten(3)  # [B,T,G,D]
    shifted = torch.einsum("bgtj,bjgd->btgd", weights, flat)
    return shifted.reshape(x.shape)


class TemporalInterlace(nn.Module):
    """TIN's interlace module on ``[B*T,C,H,W]`` features of ``frames``-frame clips.

    The first ``shift_fraction`` of the channels is split into ``groups`` (even) groups; an
    offset network predicts ``groups/2`` offsets per clip, applied as ``+o`` and ``-o``
    (interlaced), and a weight network predicts a weight in (0, 2) per group and frame.
    """

    def __init__(
        self, channels: int, frames: int, groups: int = 2, shift_fraction: float = 0.25
    ) -> None:
        super().__init__()
        if groups < 2 or groups % 2:
            raise ValueError(f"groups must be an even number >= 2, not {groups}")
        per_group = int(channels * shift_fraction) // groups
        if per_group < 1:
            raise ValueError(f"{channels} channels are too few for {groups} interlaced groups")
        self.frames = frames
        self.groups = groups
        self.shift_channels = per_group * groups
        self.offset_net = nn.Sequential(
            nn.Conv1d(self.shift_channels, 1, kernel_size=3, padding=1),
            nn.Tanh(),  # not ReLU: a dead unit would cut the offsets off from the clip
            nn.Flatten(),
            nn.Linear(frames, groups // 2),
        )
        self.weight_net = nn.Conv1d(self.shift_channels, groups, kernel_size=3, padding=1)
        # start from half-frame offsets: an integer offset has no gradient through |.|
        last = self.offset_net[-1]
        if isinstance(last, nn.Linear):
            nn.init.normal_(last.weight, std=0.01)
            nn.init.constant_(last.bias, 0.5)

    def offsets_and_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Interlaced offsets ``[B,G]`` and weights ``[B,G,T]`` of ``[B*T,C,H,W]`` features."""
        pooled = x[:, : self.shift_channels].mean(dim=(2, 3))
        pooled = pooled.view(-1, self.frames, self.shift_channels).transpose(1, 2)  # [B,Cs,T]
        half = self.offset_net(pooled)
        offsets = torch.cat([half, -half], dim=1)
        weights = 2.0 * torch.sigmoid(self.weight_net(pooled))
        return offsets, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total, channels, height, width = x.shape
        if total % self.frames:
            raise ValueError(f"{total} feature maps are not clips of {self.frames} frames")
        offsets, weights = self.offsets_and_weights(x)
        clips = x.view(total // self.frames, self.frames, channels, height, width)
        moving = clips[:, :, : self.shift_channels].reshape(
            clips.shape[0], self.frames, self.groups, -1, height, width
        )
        shifted = interlace_shift(moving, offsets)
        shifted = shifted * weights.transpose(1, 2)[..., None, None, None]
        shifted = shifted.reshape(clips.shape[0], self.frames, self.shift_channels, height, width)
        out = torch.cat([shifted, clips[:, :, self.shift_channels :]], dim=2)
        return out.reshape(total, channels, height, width)


class FramesToClip(nn.Module):
    """``[B*T,F,h,w] -> [B,F,T,h,w]``: per-frame features back to a clip."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total, channels, height, width = x.shape
        clips = x.view(total // self.frames, self.frames, channels, height, width)
        return clips.permute(0, 2, 1, 3, 4).contiguous()


def _clip_head(channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, 1)
    )


class TemporalInterlaceNet(nn.Module):
    """TIN on a 2D ResNet (``resnet<10|18>-w<width>`` or ``resnet50``) for ``frames``-frame clips."""

    def __init__(
        self,
        backbone: str = "resnet10-w16",
        in_channels: int = 1,
        frames: int = 16,
        groups: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if backbone == "resnet50":
            trunk = build_backbone(backbone, in_channels)
            features, channels = trunk.features, trunk.channels
        else:
            net = small_resnet(backbone, in_channels)
            features, channels = resnet_trunk(net), int(net.fc.in_features)
        for block in [m for m in features.modules() if isinstance(m, _RESIDUAL_BLOCKS)]:
            conv = block.conv1
            block.conv1 = nn.Sequential(TemporalInterlace(conv.in_channels, frames, groups), conv)
        self.frames = frames
        self.features = features
        self.to_clip = FramesToClip(frames)
        self.head = _clip_head(channels, dropout)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = clip.shape
        if frames != self.frames:
            raise ValueError(f"clip has {frames} frames, the network was built for {self.frames}")
        x = clip.transpose(1, 2).reshape(batch * frames, channels, height, width)
        return self.head(self.to_clip(self.features(x)))

    def interlace_modules(self) -> list[TemporalInterlace]:
        """Every interlace module, in depth order."""
        return [m for m in self.modules() if isinstance(m, TemporalInterlace)]

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks: the last features regrouped as ``[B,F,T,h,w]``."""
        return "to_clip"


class R2Plus1D(nn.Module):
    """torchvision R(2+1)D (``r2plus1d_18``, or ``r2plus1d_10`` with one block per stage)."""

    def __init__(self, backbone: str = "r2plus1d_18", in_channels: int = 1) -> None:
        super().__init__()
        match = _R2PLUS1D.match(backbone)
        if match is None:
            raise ValueError(
                f"unknown R(2+1)D backbone {backbone!r}; known: r2plus1d_10, r2plus1d_18"
            )
        layers = [1, 1, 1, 1] if match.group(1) == "10" else [2, 2, 2, 2]
        self.net = tv_video.VideoResNet(
            block=tv_video.BasicBlock,
            conv_makers=[tv_video.Conv2Plus1D] * 4,
            layers=layers,
            stem=tv_video.R2Plus1dStem,
            num_classes=1,
        )
        replace_first_conv(self.net, in_channels)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.net(clip)

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks: the last residual stage."""
        return "net.layer4"


class R3D(nn.Module):
    """MONAI 3D ResNet named ``resnet<10|18>-w<width>`` (``resnet18-w64``: the R3D-18 widths)."""

    def __init__(self, backbone: str = "resnet10-w16", in_channels: int = 1) -> None:
        super().__init__()
        self.net = small_resnet(backbone, in_channels, spatial_dims=3)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.net(clip)

    @property
    def gradcam_layer(self) -> str:
        """The module name Grad-CAM hooks: the last residual stage."""
        return "net.layer4"
