from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from inference.gradcam import gradcam
from inference.networks.backbones import TORCHVISION_BACKBONES
from inference.networks.classifier import ImageClassifier


def _size(backbone: str) -> int:
    return 75 if backbone == "inception_v3" else 32  # InceptionV3 needs at least 75 pixels


@pytest.mark.parametrize("backbone", TORCHVISION_BACKBONES)
def test_image_classifier_every_backbone_shapes_training_round_trip_gradcam(
    backbone: str,
    labels: Callable[[int], torch.Tensor],
    loss_drop: Callable[..., tuple[float, float]],
    reload: Callable[[nn.Module, Callable[[], nn.Module]], nn.Module],
) -> None:
    torch.manual_seed(0)
    size = _size(backbone)
    network = ImageClassifier(backbone, in_channels=1)
    x = torch.randn(8, 1, size, size)

    assert network.eval()(x[:2]).shape == (2, 1)
    before, after = loss_drop(network, (x,), labels(8), steps=2)
    assert after < before
    network.eval()
    fresh = reload(network, lambda: ImageClassifier(backbone, in_channels=1))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x[:2]), network(x[:2]), rtol=0, atol=0)
    maps = gradcam(network, x[:1], network.gradcam_layer)
    assert maps.shape == (1, 1, size, size)
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_image_classifier_three_channels_first_conv_takes_three() -> None:
    network = ImageClassifier("squeezenet1_1", in_channels=3)

    first = next(m for m in network.modules() if isinstance(m, nn.Conv2d))

    assert first.in_channels == 3
    assert network(torch.randn(1, 3, 64, 64)).shape == (1, 1)


def test_image_classifier_unknown_backbone_raises() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'alexnet'"):
        ImageClassifier("alexnet")
