from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from inference.gradcam import gradcam
from inference.networks.video import (
    R3D,
    R2Plus1D,
    TemporalInterlace,
    TemporalInterlaceNet,
    interlace_shift,
)

FRAMES = 4
FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "tin-resnet10-w8": lambda: TemporalInterlaceNet("resnet10-w8", frames=FRAMES),
    "r2plus1d_10": lambda: R2Plus1D("r2plus1d_10"),
    "r3d-resnet10-w8": lambda: R3D("resnet10-w8"),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_video_network_shapes_training_round_trip_key_frame_gradcam(
    name: str,
    labels: Callable[[int], torch.Tensor],
    loss_drop: Callable[..., tuple[float, float]],
    reload: Callable[[nn.Module, Callable[[], nn.Module]], nn.Module],
) -> None:
    torch.manual_seed(0)
    network = FACTORIES[name]()
    clip = torch.randn(8, 1, FRAMES, 32, 32)

    assert network.eval()(clip[:2]).shape == (2, 1)
    before, after = loss_drop(network, (clip,), labels(8))
    assert after < before
    network.eval()
    fresh = reload(network, FACTORIES[name])
    with torch.no_grad():
        torch.testing.assert_close(fresh(clip[:2]), network(clip[:2]))
    maps = gradcam(network, clip[:2], network.gradcam_layer)
    assert maps.shape == (2, 1, 32, 32)
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_tin_offsets_and_weights_receive_gradients() -> None:
    torch.manual_seed(0)
    network = TemporalInterlaceNet("resnet10-w8", frames=FRAMES)
    modules = network.interlace_modules()

    network(torch.randn(2, 1, FRAMES, 32, 32)).sum().backward()

    assert len(modules) == 4  # one per residual block of a ResNet-10
    for module in modules:
        offset_grads = [p.grad for p in module.offset_net.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in offset_grads)
        assert module.weight_net.weight.grad is not None
        assert module.weight_net.weight.grad.abs().sum() > 0


def test_interlace_shift_whole_frame_offset_moves_frames_and_zero_fills() -> None:
    x = torch.arange(4.0).view(1, 4, 1, 1)  # [B,T,G,D]: frame t holds t

    forward = interlace_shift(x, torch.tensor([[1.0]]))
    backward = interlace_shift(x, torch.tensor([[-1.0]]))

    assert forward.flatten().tolist() == [1.0, 2.0, 3.0, 0.0]
    assert backward.flatten().tolist() == [0.0, 0.0, 1.0, 2.0]


def test_interlace_shift_half_frame_offset_interpolates_linearly() -> None:
    x = torch.arange(4.0).view(1, 4, 1, 1)

    shifted = interlace_shift(x, torch.tensor([[0.5]]))

    torch.testing.assert_close(shifted.flatten(), torch.tensor([0.5, 1.5, 2.5, 1.5]))


def test_interlace_shift_zero_offset_is_identity() -> None:
    x = torch.randn(2, 5, 2, 3, 4, 4)

    torch.testing.assert_close(interlace_shift(x, torch.zeros(2, 2)), x)


def test_temporal_interlace_offsets_are_interlaced_opposites() -> None:
    torch.manual_seed(0)
    module = TemporalInterlace(channels=16, frames=FRAMES, groups=4)

    offsets, weights = module.offsets_and_weights(torch.randn(2 * FRAMES, 16, 8, 8))

    assert offsets.shape == (2, 4) and weights.shape == (2, 4, FRAMES)
    torch.testing.assert_close(offsets[:, 2:], -offsets[:, :2])
    assert ((weights > 0) & (weights < 2)).all()


def test_temporal_interlace_odd_groups_raise() -> None:
    with pytest.raises(ValueError, match="even"):
        TemporalInterlace(channels=16, frames=FRAMES, groups=3)


def test_tin_clip_of_other_length_raises() -> None:
    network = TemporalInterlaceNet("resnet10-w8", frames=FRAMES).eval()

    with pytest.raises(ValueError, match="built for 4"):
        network(torch.zeros(1, 1, 6, 32, 32))


def test_r2plus1d_unknown_depth_raises() -> None:
    with pytest.raises(ValueError, match="r2plus1d_34"):
        R2Plus1D("r2plus1d_34")
