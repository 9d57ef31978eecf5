from __future__ import annotations

import pytest
import torch
from torch import nn

from inference.gradcam import explain_input, gradcam
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


class _SecondExplainedNet(nn.Module):
    """``forward(scale [B,3,H,W], x [B,1,H,W])``: logit = left half of x's features x scale's mean."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, kernel_size=1)
        nn.init.ones_(self.features.weight)
        nn.init.zeros_(self.features.bias)

    def forward(self, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if scale.shape[1] != 3 or x.shape[1] != 1:
            raise ValueError(f"arguments out of order: {scale.shape}, {x.shape}")
        features = self.features(x)
        left = features[..., : features.shape[-1] // 2].mean(dim=(1, 2, 3))
        return (left * scale.mean(dim=(1, 2, 3)))[:, None]


def test_gradcam_position_explains_a_later_argument_others_keep_their_places() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:8, 2:6] = 1.0
    scale = torch.ones(1, 3, 16, 16)

    maps = gradcam(_SecondExplainedNet(), x, "features", (scale,), position=1)

    assert maps.shape == (1, 1, 16, 16)
    assert maps[0, 0, 5, 3] == pytest.approx(1.0)
    assert maps[0, 0, 12, 12] == pytest.approx(0.0)


def test_explain_input_index_matches_gradcam_with_position() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:8, 2:6] = 1.0
    scale = torch.full((1, 3, 16, 16), 2.0)
    network = _SecondExplainedNet()

    explanation = explain_input(network, (scale, x), "features", index=1)

    torch.testing.assert_close(
        explanation.heatmap, gradcam(network, x, "features", (scale,), position=1)
    )


def test_explain_input_output_is_the_eval_forward_of_the_same_pass() -> None:
    torch.manual_seed(0)
    network = YNet().train()
    x = torch.randn(1, 1, 32, 32)

    explanation = explain_input(network, (x,), network.gradcam_layer)

    assert network.training  # the pass ran in eval mode and left the mode as it was
    network.eval()
    with torch.inference_mode():
        segmentation, logit = network(x)
    assert isinstance(explanation.output, tuple) and len(explanation.output) == 2
    torch.testing.assert_close(explanation.output[0], segmentation)
    torch.testing.assert_close(explanation.output[1], logit)
    assert not explanation.output[1].requires_grad


def test_gradcam_position_outside_forward_raises() -> None:
    with pytest.raises(ValueError, match="position 2 is outside a forward of 2"):
        gradcam(_SecondExplainedNet(), torch.zeros(1, 1, 8, 8), "features", (None,), position=2)


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


class _RightHalfNet(_LeftHalfNet):
    """As :class:`_LeftHalfNet`, the class logit looking at the right half instead."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        width = features.shape[-1]
        return features, features[..., width // 2 :].mean(dim=(1, 2, 3))[:, None]


def test_explain_input_ensemble_map_is_members_mean_output_the_ensembles() -> None:
    from inference.networks.ensemble import Ensemble

    x = torch.zeros(1, 1, 16, 16)
    x[..., 4:8, 2:6] = 1.0  # a patch in the left half
    x[..., 4:8, 10:14] = 0.5  # a fainter one in the right half
    ensemble = Ensemble([_LeftHalfNet(), _RightHalfNet()]).eval()

    explanation = explain_input(ensemble, (x,), "features")

    members = [gradcam(m, x, "features") for m in ensemble.members]
    mean = (members[0] + members[1]) / 2
    expected = (mean - mean.min()) / (mean.max() - mean.min())
    assert explanation.heatmap.shape == (1, 1, 16, 16)
    torch.testing.assert_close(explanation.heatmap, expected)
    assert explanation.heatmap[0, 0, 5, 3] == pytest.approx(1.0)  # left member's patch
    assert explanation.heatmap[0, 0, 5, 11] > 0.2  # the right member's patch is in the map too
    with torch.no_grad():
        forward = ensemble(x)
    torch.testing.assert_close(explanation.output[1], forward[1])
    assert not any(m.features._forward_hooks for m in ensemble.members)


def test_explain_input_ensemble_of_ynets_one_map_on_input_grid() -> None:
    from inference.networks.ensemble import Ensemble

    torch.manual_seed(0)
    ensemble = Ensemble([YNet(features=(4, 4, 8, 8, 16, 4)) for _ in range(3)]).eval()

    explanation = explain_input(ensemble, (torch.randn(1, 1, 32, 32),), "unet.down_4")

    assert explanation.heatmap.shape == (1, 1, 32, 32)
    assert 0.0 <= float(explanation.heatmap.min()) and float(explanation.heatmap.max()) <= 1.0
    assert explanation.output[0].shape == (1, 1, 32, 32) and explanation.output[1].shape == (1, 1)
