from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from inference.gradcam import gradcam
from inference.networks.hybrid import HybridSwin, swin_feature_size


def test_hybrid_swin_shapes_training_round_trip_gradcam(
    labels: Callable[[int], torch.Tensor],
    loss_drop: Callable[..., tuple[float, float]],
    reload: Callable[[nn.Module, Callable[[], nn.Module]], nn.Module],
) -> None:
    torch.manual_seed(0)
    network = HybridSwin(in_channels=1, feature_size=12)
    x = torch.randn(4, 1, 64, 64)

    seg, cls = network.eval()(x[:2])
    assert seg.shape == (2, 1, 64, 64) and cls.shape == (2, 1)
    before, after = loss_drop(network, (x,), labels(4))
    assert after < before
    network.eval()
    fresh = reload(network, lambda: HybridSwin(in_channels=1, feature_size=12))
    with torch.no_grad():
        for got, want in zip(fresh(x[:1]), network(x[:1]), strict=True):
            torch.testing.assert_close(got, want)
    maps = gradcam(network, x[:1], network.gradcam_layer)
    assert maps.shape == (1, 1, 64, 64)
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_hybrid_encoder_state_loads_into_fresh_model_and_keeps_its_decoder() -> None:
    torch.manual_seed(0)
    pretrained = HybridSwin(feature_size=12)
    torch.manual_seed(1)
    target = HybridSwin(feature_size=12)
    decoder_before = {k: v.clone() for k, v in target.decoder.state_dict().items()}

    state = pretrained.encoder_state_dict()
    target.load_encoder_state_dict(state)

    assert state and all(
        k.split(".")[0] in {"swinViT", "encoder1", "encoder2", "encoder3", "encoder4", "encoder10"}
        for k in state
    )
    for name, tensor in target.encoder.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    for name, tensor in target.decoder.state_dict().items():
        assert torch.equal(tensor, decoder_before[name]), name


def test_hybrid_encoder_state_of_other_width_raises() -> None:
    with pytest.raises(RuntimeError, match="size mismatch"):
        HybridSwin(feature_size=24).load_encoder_state_dict(
            HybridSwin(feature_size=12).encoder_state_dict()
        )


def test_hybrid_input_not_multiple_of_32_raises() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        HybridSwin().eval()(torch.zeros(1, 1, 48, 48))


@pytest.mark.parametrize(("name", "size"), [("swin-f12", 12), ("swin-f24", 24)])
def test_swin_feature_size_parses_backbone_name(name: str, size: int) -> None:
    assert swin_feature_size(name) == size


@pytest.mark.parametrize("name", ["swin-f10", "swin", "resnet50"])
def test_swin_feature_size_bad_name_raises(name: str) -> None:
    with pytest.raises(ValueError, match="swin-f<N>"):
        swin_feature_size(name)


def test_hybrid_swin_encode_features_shallowest_first_widths_and_scales() -> None:
    network = HybridSwin(in_channels=1, feature_size=12).eval()

    with torch.no_grad():
        features = network.encode(torch.zeros(1, 1, 64, 64))

    assert [f.shape[1] for f in features] == [12, 12, 24, 48, 96, 192]
    assert [f.shape[-1] for f in features] == [64, 32, 16, 8, 4, 2]
