from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from inference.gradcam import gradcam
from inference.networks.dual import DualCrossAttention

BACKBONES = ("resnet10-w8", "squeezenet1_1")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_dual_cross_attention_shapes_training_round_trip_gradcam(
    backbone: str,
    labels: Callable[[int], torch.Tensor],
    loss_drop: Callable[..., tuple[float, float]],
    reload: Callable[[nn.Module, Callable[[], nn.Module]], nn.Module],
) -> None:
    torch.manual_seed(0)
    network = DualCrossAttention(backbone, dim=16, heads=2)
    bmode, doppler = torch.randn(8, 1, 32, 32), torch.randn(8, 3, 32, 32)

    assert network.eval()(bmode[:2], doppler[:2]).shape == (2, 1)
    before, after = loss_drop(network, (bmode, doppler), labels(8))
    assert after < before
    network.eval()
    fresh = reload(network, lambda: DualCrossAttention(backbone, dim=16, heads=2))
    with torch.no_grad():
        torch.testing.assert_close(fresh(bmode[:2], doppler[:2]), network(bmode[:2], doppler[:2]))
    maps = gradcam(network, bmode[:2], network.gradcam_layer, (doppler[:2],))
    assert maps.shape == (2, 1, 32, 32)
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_dual_cross_attention_output_depends_on_doppler() -> None:
    torch.manual_seed(0)
    network = DualCrossAttention("resnet10-w8", dim=16, heads=2).eval()
    bmode = torch.randn(1, 1, 32, 32)

    with torch.no_grad():
        first = network(bmode, torch.randn(1, 3, 32, 32))
        second = network(bmode, torch.randn(1, 3, 32, 32))

    assert not torch.allclose(first, second)


def test_dual_single_input_variant_runs_without_doppler_and_trains(
    labels: Callable[[int], torch.Tensor], loss_drop: Callable[..., tuple[float, float]]
) -> None:
    torch.manual_seed(0)
    network = DualCrossAttention("resnet10-w8", dim=16, heads=2, single_input=True)
    bmode = torch.randn(8, 1, 32, 32)

    assert network.eval()(bmode[:2], None).shape == (2, 1)
    assert not hasattr(network, "doppler_projection")
    before, after = loss_drop(network, (bmode, None), labels(8))
    assert after < before
    assert gradcam(network.eval(), bmode[:1], network.gradcam_layer, (None,)).shape == (
        1,
        1,
        32,
        32,
    )


def test_dual_without_doppler_raises() -> None:
    network = DualCrossAttention("resnet10-w8", dim=16, heads=2).eval()

    with pytest.raises(ValueError, match="needs a Doppler input"):
        network(torch.randn(1, 1, 32, 32), None)


def test_dual_bmode_channels_not_one_or_doppler_raises() -> None:
    with pytest.raises(ValueError, match="B-mode channels 2"):
        DualCrossAttention("resnet10-w8", in_channels=2)
