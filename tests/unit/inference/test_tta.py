"""Test-time augmentation: hflip averaged in, segmentation brought back before averaging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inference.networks.ensemble import average_outputs
from inference.networks.ynet import YNet
from inference.registry import Augmentation, ModelSpec
from inference.tta import augmented_output, parse_tta, spec_with_tta, with_tta


class _PointwiseNet(nn.Module):
    """Segmentation = a 1x1 conv of the input (mirrors with it); logit = the left half's mean."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, kernel_size=1)
        nn.init.constant_(self.features.weight, 2.0)
        nn.init.constant_(self.features.bias, -1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg = self.features(x)
        return seg, seg[..., : seg.shape[-1] // 2].mean(dim=(1, 2, 3))[:, None]


def _tiny_ynet() -> nn.Module:
    torch.manual_seed(3)
    return YNet(features=(4, 4, 8, 8, 16, 4)).eval()


def test_hflip_on_a_symmetric_input_equals_the_plain_output() -> None:
    half = torch.randn(1, 1, 32, 16)
    x = torch.cat([half, half.flip(-1)], dim=-1)  # left-right symmetric
    network = _tiny_ynet()

    with torch.no_grad():
        plain = network(x)
    averaged = with_tta(network, [x], [Augmentation.HFLIP])

    # the flipped input is the input: the class logit is unchanged, the segmentation becomes
    # the mean of the plain map and its mirror (flipped back), so it is symmetric itself
    torch.testing.assert_close(averaged[1], plain[1], atol=1e-5, rtol=1e-5)
    expected = (torch.sigmoid(plain[0]) + torch.sigmoid(plain[0].flip(-1))) / 2
    torch.testing.assert_close(torch.sigmoid(averaged[0]), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(averaged[0], averaged[0].flip(-1))


def test_hflip_segmentation_is_flipped_back_before_averaging() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[..., 2:4, 1:3] = 1.0  # a patch in the left half only
    network = _PointwiseNet()

    with torch.no_grad():
        seg_plain, cls_plain = network(x)
        seg_flip, cls_flip = augmented_output(network, [x], Augmentation.HFLIP)
    seg, cls = with_tta(network, [x], ["hflip"])

    torch.testing.assert_close(seg_flip, seg_plain)  # pointwise: mirrored back, it is the same
    assert float(cls_flip) != pytest.approx(float(cls_plain))  # the flipped patch left the half
    expected = (torch.sigmoid(cls_plain) + torch.sigmoid(cls_flip)) / 2
    torch.testing.assert_close(torch.sigmoid(cls), expected)
    torch.testing.assert_close(seg, seg_plain, atol=1e-5, rtol=1e-5)


def test_no_augmentation_returns_the_plain_output_given() -> None:
    network = _tiny_ynet()
    x = torch.randn(1, 1, 32, 32)
    plain = network(x)
    assert with_tta(network, [x], [], plain=plain) is plain
    assert average_outputs([plain]) is plain


def test_parse_tta_and_spec_override_keep_the_registered_spec(tiny_spec: ModelSpec) -> None:
    assert parse_tta("none") == [] and parse_tta("hflip") == [Augmentation.HFLIP]
    with pytest.raises(ValueError, match="hflip"):
        parse_tta("rotate")
    changed = spec_with_tta(tiny_spec, parse_tta("hflip"))
    assert changed.tta == [Augmentation.HFLIP] and tiny_spec.tta == []
    assert changed.weights_path == tiny_spec.weights_path
