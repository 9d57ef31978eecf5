from __future__ import annotations

import pytest
import torch
from torch import nn

from inference.gradcam import gradcam
from inference.networks.ynet import YNet


class _LeftHalfNet(nn.Module):
    """Features = input (1x1 identity conv); class logit = mean of the left half of the features."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, kernel_size=1)
        nn.init.ones_(self.features.weight)
        nn.init.zeros_(self.features.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        width = features.shape[-1]
        return features, features[..., : width // 2].mean(dim=(1, 2, 3))[:, None]


def test_gradcam_ynet_map_in_unit_range_on_input_grid() -> None:
    torch.manual_seed(0)
    network = YNet().eval()

    maps = gradcam(network, torch.randn(2, 1, 32, 32), network.gradcam_layer)

    assert maps.shape == (2, 1, 32, 32)
    assert type(maps) is torch.Tensor
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_gradcam_high_attention_is_one_not_flipped() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:8, 2:6] = 1.0  # a bright patch the logit depends on

    maps = gradcam(_LeftHalfNet(), x, "features")[0, 0]

    assert maps[5, 3] == pytest.approx(1.0)
    assert maps[12, 12] == pytest.approx(0.0)


def test_gradcam_leaves_no_hooks_grads_or_mode_change() -> None:
    torch.manual_seed(0)
    network = YNet().eval()
    layer = dict(network.named_modules())[network.gradcam_layer]

    gradcam(network, torch.randn(1, 1, 32, 32), network.gradcam_layer)

    assert not layer._forward_hooks and not layer._backward_hooks
    assert all(p.grad is None for p in network.parameters())
    assert not network.training


def test_gradcam_repeated_calls_are_deterministic() -> None:
    torch.manual_seed(0)
    network = YNet().eval()
    x = torch.randn(1, 1, 32, 32)

    torch.testing.assert_close(
        gradcam(network, x, network.gradcam_layer), gradcam(network, x, network.gradcam_layer)
    )


def test_gradcam_unknown_layer_raises() -> None:
    with pytest.raises(ValueError, match="not a module"):
        gradcam(_LeftHalfNet(), torch.zeros(1, 1, 8, 8), "missing")


class _ClipNet(nn.Module):
    """Features = clip (1x1x1 identity conv); class logit = mean of the key frame's left half."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(1, 1, kernel_size=1)
        nn.init.ones_(self.features.weight)
        nn.init.zeros_(self.features.bias)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        features = self.features(clip)
        key = features[:, :, features.shape[2] // 2]
        return key[..., : key.shape[-1] // 2].mean(dim=(1, 2, 3))[:, None]


class _PairNet(nn.Module):
    """Class logit = mean of the left half of the first input, scaled by the second's mean."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, kernel_size=1)
        nn.init.ones_(self.features.weight)
        nn.init.zeros_(self.features.bias)

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        left = features[..., : features.shape[-1] // 2].mean(dim=(1, 2, 3))
        return (left * other.mean(dim=(1, 2, 3)))[:, None]


def test_gradcam_clip_returns_key_frame_map_with_attention_where_logit_looks() -> None:
    clip = torch.zeros(1, 1, 5, 16, 16)
    clip[:, :, 2, 4:8, 2:6] = 1.0  # a bright patch on the key (middle) frame
    clip[:, :, 0, 10:14, 10:14] = 1.0  # one on another frame, which the logit ignores

    maps = gradcam(_ClipNet(), clip, "features")

    assert maps.shape == (1, 1, 16, 16)
    assert maps[0, 0, 5, 3] == pytest.approx(1.0)
    assert maps[0, 0, 12, 12] == pytest.approx(0.0)


def test_gradcam_second_input_is_bound_and_first_explained() -> None:
    x = torch.zeros(2, 1, 16, 16)
    x[..., 4:8, 2:6] = 1.0
    other = torch.ones(2, 3, 16, 16)

    maps = gradcam(_PairNet(), x, "features", (other,))

    assert maps.shape == (2, 1, 16, 16)
    assert maps[0, 0, 5, 3] == pytest.approx(1.0)
    assert maps[1, 0, 12, 12] == pytest.approx(0.0)


def test_gradcam_segmentation_tuple_and_plain_logits_give_same_map() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:8, 2:6] = 1.0
    network = _LeftHalfNet()

    class _LogitOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = network

        def forward(self, y: torch.Tensor) -> torch.Tensor:
            return self.inner(y)[1]

    torch.testing.assert_close(
        gradcam(network, x, "features"), gradcam(_LogitOnly(), x, "inner.features")
    )
