from __future__ import annotations

import pytest
import torch
from torch import nn

from inference.networks.backbones import (
    build_backbone,
    is_backbone,
    replace_first_conv,
    small_resnet,
)


def test_build_backbone_small_resnet_has_requested_widths_and_channels() -> None:
    backbone = build_backbone("resnet10-w8", in_channels=5)

    first = next(m for m in backbone.features.modules() if isinstance(m, nn.Conv2d))
    features = backbone.features.eval()(torch.zeros(1, 5, 32, 32))

    assert first.in_channels == 5
    assert backbone.channels == 64 and features.shape[1] == 64


def test_replace_first_conv_keeps_geometry_and_changes_channels() -> None:
    module = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=5, stride=2, padding=2, bias=False), nn.ReLU()
    )

    replace_first_conv(module, 1)

    conv = module[0]
    assert isinstance(conv, nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (
        1,
        8,
        (5, 5),
        (2, 2),
    )
    assert conv.bias is None


def test_replace_first_conv_without_convolution_raises() -> None:
    with pytest.raises(ValueError, match="no convolution"):
        replace_first_conv(nn.Sequential(nn.ReLU()), 1)


def test_small_resnet_three_dims_takes_clips() -> None:
    net = small_resnet("resnet10-w4", in_channels=1, spatial_dims=3)

    assert net(torch.zeros(1, 1, 4, 32, 32)).shape == (1, 1)


@pytest.mark.parametrize(
    ("name", "known"),
    [("densenet121", True), ("resnet18-w64", True), ("resnet34-w8", False), ("alexnet", False)],
)
def test_is_backbone_names(name: str, known: bool) -> None:
    assert is_backbone(name) is known


def test_build_backbone_unknown_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'alexnet'"):
        build_backbone("alexnet", 1)
