"""Self-test of every registered model: weights, forward pass and Grad-CAM on a dummy input."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from inference.gradcam import gradcam
from inference.loading import load_network
from inference.registry import ModelSpec, Registry, RegistryError
from inference.transforms import to_model_input

logger = logging.getLogger(__name__)

DUMMY_SEED = 0


@dataclass(frozen=True)
class VerifyResult:
    """What verifying one model found; ``error`` is ``None`` when every check passed."""

    ref: str
    ok: bool
    error: str | None = None
    load_seconds: float = 0.0
    forward_seconds: float = 0.0
    gradcam_seconds: float = 0.0
    segmentation_shape: tuple[int, ...] = ()
    classification_shape: tuple[int, ...] = ()
    heatmap_shape: tuple[int, ...] = ()


def dummy_input(spec: ModelSpec) -> torch.Tensor:
    """A seeded random input honouring the spec's contract, through ``to_model_input``."""
    rng = np.random.default_rng(DUMMY_SEED)
    planes = []
    for model_input in spec.inputs:
        low, high = model_input.contract.range
        for _ in range(model_input.contract.channels * model_input.contract.frames):
            grey = rng.uniform(low, high, size=(model_input.contract.size,) * 2)
            planes.append(to_model_input(grey.astype(np.float32), spec.input_size))
    return torch.cat(planes, dim=1)


def _check_shapes(
    spec: ModelSpec, seg: torch.Tensor, cls: torch.Tensor, heat: torch.Tensor
) -> None:
    size = spec.input_size
    if tuple(seg.shape) != (1, len(spec.outputs.segments), size, size):
        raise ValueError(f"segmentation logits have shape {tuple(seg.shape)}")
    if tuple(cls.shape) != (1, 1):
        raise ValueError(f"class logits have shape {tuple(cls.shape)}, expected (1, 1)")
    if tuple(heat.shape) != (1, 1, size, size):
        raise ValueError(f"Grad-CAM map has shape {tuple(heat.shape)}")
    if not (torch.isfinite(seg).all() and torch.isfinite(cls).all() and torch.isfinite(heat).all()):
        raise ValueError("non-finite values in the outputs")


def verify_model(spec: ModelSpec, device: str | torch.device) -> VerifyResult:
    """Load ``spec`` (sha256 checked), run it and Grad-CAM once; report times and shapes."""
    try:
        started = time.perf_counter()
        network = load_network(spec, device)
        loaded = time.perf_counter()
        x = dummy_input(spec).to(device)
        with torch.inference_mode():
            seg, cls = network(x)
        forwarded = time.perf_counter()
        heat = gradcam(network, x, spec.outputs.heatmap.layer)
        explained = time.perf_counter()
        _check_shapes(spec, seg, cls, heat)
    except (RegistryError, RuntimeError, ValueError, OSError) as error:
        logger.error("model %s failed verification: %s", spec.ref, error)
        return VerifyResult(ref=spec.ref, ok=False, error=str(error))
    result = VerifyResult(
        ref=spec.ref,
        ok=True,
        load_seconds=loaded - started,
        forward_seconds=forwarded - loaded,
        gradcam_seconds=explained - forwarded,
        segmentation_shape=tuple(seg.shape),
        classification_shape=tuple(cls.shape),
        heatmap_shape=tuple(heat.shape),
    )
    logger.info("model %s verified on %s", spec.ref, device)
    return result


def verify_models(registry: Registry, device: str | torch.device) -> list[VerifyResult]:
    """Verify every registered model, in registry order."""
    return [verify_model(spec, device) for spec in registry.specs()]
