from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from inference.gradcam import gradcam
from inference.networks.ceus import CeusFusion


def test_ceus_fusion_shapes_training_round_trip_gradcam(
    labels: Callable[[int], torch.Tensor],
    loss_drop: Callable[..., tuple[float, float]],
    reload: Callable[[nn.Module, Callable[[], nn.Module]], nn.Module],
) -> None:
    torch.manual_seed(0)
    network = CeusFusion("resnet10-w8", hidden=16)
    bmode, ceus = torch.randn(8, 1, 32, 32), torch.randn(8, 5, 32, 32)

    assert network.eval()(bmode[:2], ceus[:2]).shape == (2, 1)
    before, after = loss_drop(network, (bmode, ceus), labels(8))
    assert after < before
    network.eval()
    fresh = reload(network, lambda: CeusFusion("resnet10-w8", hidden=16))
    with torch.no_grad():
        torch.testing.assert_close(fresh(bmode[:2], ceus[:2]), network(bmode[:2], ceus[:2]))
    maps = gradcam(network, bmode[:2], network.gradcam_layer, (ceus[:2],))
    assert maps.shape == (2, 1, 32, 32)
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_ceus_fusion_ceus_branch_takes_key_frames_as_channels() -> None:
    network = CeusFusion("resnet10-w8", ceus_frames=5)

    first = next(m for m in network.ceus_features.modules() if isinstance(m, nn.Conv2d))

    assert first.in_channels == 5


def test_ceus_fusion_wrong_key_frame_count_raises() -> None:
    network = CeusFusion("resnet10-w8").eval()

    with pytest.raises(ValueError, match="3 key frames, expected 5"):
        network(torch.randn(1, 1, 32, 32), torch.randn(1, 3, 32, 32))
