"""Grad-CAM of a network's class logit, for every model family (MONAI ``GradCAM``).

The explained input is one forward argument (the first unless told otherwise; a spec names it
in ``outputs.heatmap.input``); the others (Doppler, CEUS key frames) are bound as constants in
their forward positions. A network returning ``(segmentation, class)`` is explained through its
class logit. A clip ``[B,C,T,H,W]`` gets the map of its key (middle) frame.

The map's forward pass is the network's forward on the inputs: :func:`explain_input` returns
that output with the map, so a caller needs no second forward for the prediction.

MONAI's ``ModelWithHooks`` registers its hooks for good; a worker reuses one cached network
for many jobs, so the hooks here are removed after every map. MONAI's default
post-processing maps (min, max) to (1, 0); here high attention is 1.

An ensemble (``inference.networks.ensemble.Ensemble``) is explained member by member at the
spec's layer inside each member; its map is the members' maps averaged, rescaled to [0, 1],
and its output the members' outputs combined as the ensemble's forward combines them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from monai.transforms import ScaleIntensity
from monai.utils import convert_to_tensor
from monai.visualize import GradCAM
from monai.visualize.class_activation_maps import ModelWithHooks
from torch import nn

from inference.networks.ensemble import Ensemble, average_outputs

logger = logging.getLogger(__name__)


class ClassLogit(nn.Module):
    """Exposes the class logit ``[B,1]`` of ``network`` as a function of one input ``x`` alone.

    ``x`` is the forward argument at ``position``; ``others`` fill the other positions in
    forward order. A network returning ``(segmentation, class)`` gives its second output; one
    returning a tensor gives that tensor. ``output`` keeps the last full output, detached.
    """

    def __init__(
        self,
        network: nn.Module,
        others: Sequence[torch.Tensor | None] = (),
        position: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= position <= len(others):
            raise ValueError(
                f"explained input position {position} is outside a forward of "
                f"{len(others) + 1} argument(s)"
            )
        self.network = network
        self.others = tuple(o.detach() if o is not None else None for o in others)
        self.position = position
        self.output: torch.Tensor | tuple[torch.Tensor, ...] | None = None
        # MONAI restores the wrapper's mode recursively after each map: mirror the network's
        self.training = network.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = self.others[: self.position], self.others[self.position :]
        output = self.network(*before, x, *after)
        if isinstance(output, tuple | list):
            self.output = tuple(o.detach() for o in output)
            return output[1]
        self.output = output.detach()
        return output


class _RemovableHooks(ModelWithHooks):
    """MONAI's ``ModelWithHooks`` on one layer, keeping the hook handles so they can be removed."""

    def __init__(self, nn_module: nn.Module, layer: str) -> None:
        super().__init__(nn_module, (), register_forward=False, register_backward=False)
        module = dict(nn_module.named_modules()).get(layer)
        if module is None:
            raise ValueError(f"Grad-CAM layer {layer!r} is not a module of the network")
        self.target_layers = (layer,)
        self.register_forward = self.register_backward = True
        self._handles = [
            module.register_forward_hook(self.forward_hook(layer)),
            module.register_full_backward_hook(self.backward_hook(layer)),
        ]

    def remove(self) -> None:
        """Detach the hooks from the network."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _to_unit(maps: torch.Tensor) -> torch.Tensor:
    """Each map's (min, max) to (0, 1); a constant map becomes zeros."""
    scale = ScaleIntensity(minv=0.0, maxv=1.0)
    unit = [convert_to_tensor(scale(m), track_meta=False) for m in maps.detach()]
    return torch.stack(unit)


def key_frame(maps: torch.Tensor) -> torch.Tensor:
    """The middle frame ``[B,1,H,W]`` of clip maps ``[B,1,T,H,W]``, rescaled to [0, 1]."""
    return _to_unit(maps[:, :, maps.shape[2] // 2])


@dataclass(frozen=True)
class Explanation:
    """One Grad-CAM pass: the network's output on the inputs and the map of its class logit."""

    output: torch.Tensor | tuple[torch.Tensor, ...]
    heatmap: torch.Tensor


def _explain(
    network: nn.Module,
    x: torch.Tensor,
    layer: str,
    others: Sequence[torch.Tensor | None],
    position: int,
) -> Explanation:
    wrapper = ClassLogit(network, others, position)
    hooks = _RemovableHooks(wrapper, f"network.{layer}")
    try:
        cam = GradCAM(nn_module=hooks, target_layers=f"network.{layer}", postprocessing=_to_unit)
        with torch.enable_grad():
            maps = cam(x.detach().clone().requires_grad_(True), class_idx=0)
    finally:
        hooks.remove()
        network.zero_grad(set_to_none=True)
    maps = convert_to_tensor(maps, track_meta=False).detach().float()
    if maps.ndim == 5:
        maps = key_frame(maps)
    if wrapper.output is None:
        raise RuntimeError("Grad-CAM ran no forward pass")
    return Explanation(output=wrapper.output, heatmap=maps.clamp(0.0, 1.0))


def gradcam(
    network: nn.Module,
    x: torch.Tensor,
    layer: str,
    others: Sequence[torch.Tensor | None] = (),
    position: int = 0,
) -> torch.Tensor:
    """Grad-CAM of ``network``'s class logit at ``layer``: ``[B,1,H,W]`` in [0, 1] on x's grid.

    ``x`` is the input explained, the forward argument at ``position`` (the first by default);
    ``others`` are the rest in forward order (e.g. the Doppler image, ``None`` for a
    single-input dual model). ``layer`` is a module name inside ``network`` (its
    ``gradcam_layer``). For a clip ``x [B,C,T,H,W]`` the map of the key (middle) frame is
    returned. Parameter gradients are freed afterwards and the network's train/eval mode is
    left as it was.
    """
    return _explain(network, x, layer, others, position).heatmap


def explain_input(
    network: nn.Module, inputs: Sequence[torch.Tensor], layer: str, index: int = 0
) -> Explanation:
    """One pass over ``inputs`` (all forward arguments, in order): the network's output (eval
    mode, detached) and the Grad-CAM of ``inputs[index]``, the others bound. An ensemble's map
    is the mean of its members' maps at ``layer`` (a member's module name), rescaled."""
    others = [*inputs[:index], *inputs[index + 1 :]]
    if not isinstance(network, Ensemble):
        return _explain(network, inputs[index], layer, others, index)
    parts = [_explain(m, inputs[index], layer, others, index) for m in network.members]
    heatmap = _to_unit(torch.stack([p.heatmap for p in parts]).mean(dim=0))
    return Explanation(output=average_outputs([p.output for p in parts]), heatmap=heatmap)
