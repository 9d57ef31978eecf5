"""Grad-CAM of a segmentation + classification network's class logit (MONAI ``GradCAM``).

MONAI's ``ModelWithHooks`` registers its hooks for good; a worker reuses one cached network
for many jobs, so the hooks here are removed after every map. MONAI's default
post-processing maps (min, max) to (1, 0); here high attention is 1.
"""

from __future__ import annotations

import logging

import torch
from monai.transforms import ScaleIntensity
from monai.utils import convert_to_tensor
from monai.visualize import GradCAM
from monai.visualize.class_activation_maps import ModelWithHooks
from torch import nn

logger = logging.getLogger(__name__)


class ClassLogit(nn.Module):
    """Exposes the class logit ``[B,1]`` of a network whose forward returns ``(seg, cls)``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        # MONAI restores the wrapper's mode recursively after each map: mirror the network's
        self.training = network.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[1]


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


def gradcam(network: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM of ``network``'s class logit at ``layer``: ``[B,1,H,W]`` in [0, 1] on x's grid.

    ``network`` returns ``(segmentation_logits, class_logits [B,1])``; ``layer`` is a module
    name inside it (``YNet.gradcam_layer``). Parameter gradients are freed afterwards and the
    network's train/eval mode is left as it was.
    """
    wrapper = ClassLogit(network)
    hooks = _RemovableHooks(wrapper, f"network.{layer}")
    try:
        cam = GradCAM(nn_module=hooks, target_layers=f"network.{layer}", postprocessing=_to_unit)
        with torch.enable_grad():
            maps = cam(x.detach().clone().requires_grad_(True), class_idx=0)
    finally:
        hooks.remove()
        network.zero_grad(set_to_none=True)
    return convert_to_tensor(maps, track_meta=False).detach().float().clamp(0.0, 1.0)
