"""Self-test of every registered model: weights, forward pass and Grad-CAM on dummy inputs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from inference.gradcam import explain_input
from inference.loading import load_network
from inference.registry import Family, ModelInput, ModelSpec, Registry, RegistryError
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
    segmentation_shape: tuple[int, ...] = ()  # () for families without segmentation
    classification_shape: tuple[int, ...] = ()
    heatmap_shape: tuple[int, ...] = ()


def _dummy_tensor(
    model_input: ModelInput, size: int, video: bool, rng: np.random.Generator
) -> torch.Tensor:
    """One input's seeded random planes through ``to_model_input``, laid out per family.

    A video input is ``[1,C,T,S,S]``; any other stacks its frames' channels: ``[1,C*T,S,S]``.
    """
    contract = model_input.contract
    low, high = contract.range
    frames = []
    for _ in range(contract.frames):
        planes = [
            to_model_input(
                rng.uniform(low, high, size=(contract.size,) * 2).astype(np.float32), size
            )
            for _ in range(contract.channels)
        ]
        frames.append(torch.cat(planes, dim=1))
    if video:
        return torch.stack(frames, dim=2)
    return torch.cat(frames, dim=1)


def dummy_input(spec: ModelSpec) -> tuple[torch.Tensor, ...]:
    """Seeded random inputs honouring the spec's contracts, one per input in forward order.

    Shapes follow the family conventions: ``[1,C,S,S]`` per image, ``[1,C,T,S,S]`` for a cine,
    ``[1,T,S,S]`` for CEUS key frames.
    """
    rng = np.random.default_rng(DUMMY_SEED)
    video = spec.family is Family.VIDEO
    return tuple(_dummy_tensor(i, spec.input_size, video, rng) for i in spec.inputs)


def _split_outputs(spec: ModelSpec, output: object) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(segmentation logits or None, class logits)`` of a forward output of ``spec``'s family."""
    if spec.family is Family.SEGCLS:
        if not (isinstance(output, tuple) and len(output) == 2):
            raise TypeError("a segcls network must return (segmentation, class) logits")
        return output[0], output[1]
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"a {spec.family.value} network must return class logits, not {type(output)}"
        )
    return None, output


def _check_shapes(
    spec: ModelSpec, seg: torch.Tensor | None, cls: torch.Tensor, heat: torch.Tensor
) -> None:
    size = spec.input_size
    if seg is not None and tuple(seg.shape) != (1, len(spec.outputs.segments), size, size):
        raise ValueError(f"segmentation logits have shape {tuple(seg.shape)}")
    if tuple(cls.shape) != (1, 1):
        raise ValueError(f"class logits have shape {tuple(cls.shape)}, expected (1, 1)")
    if tuple(heat.shape) != (1, 1, size, size):
        raise ValueError(f"Grad-CAM map has shape {tuple(heat.shape)}")
    outputs = [cls, heat] if seg is None else [seg, cls, heat]
    if not all(torch.isfinite(t).all() for t in outputs):
        raise ValueError("non-finite values in the outputs")


def verify_model(spec: ModelSpec, device: str | torch.device) -> VerifyResult:
    """Load ``spec`` (sha256 checked), run it and Grad-CAM once; report times and shapes."""
    try:
        started = time.perf_counter()
        network = load_network(spec, device)
        loaded = time.perf_counter()
        inputs = tuple(t.to(device) for t in dummy_input(spec))
        with torch.inference_mode():
            seg, cls = _split_outputs(spec, network(*inputs))
        forwarded = time.perf_counter()
        layer, index = spec.outputs.heatmap.layer, spec.explained_index
        heat = explain_input(network, inputs, layer, index).heatmap
        explained = time.perf_counter()
        _check_shapes(spec, seg, cls, heat)
    except (RegistryError, RuntimeError, ValueError, TypeError, OSError) as error:
        logger.error("model %s failed verification: %s", spec.ref, error)
        return VerifyResult(ref=spec.ref, ok=False, error=str(error))
    result = VerifyResult(
        ref=spec.ref,
        ok=True,
        load_seconds=loaded - started,
        forward_seconds=forwarded - loaded,
        gradcam_seconds=explained - forwarded,
        segmentation_shape=() if seg is None else tuple(seg.shape),
        classification_shape=tuple(cls.shape),
        heatmap_shape=tuple(heat.shape),
    )
    logger.info("model %s verified on %s", spec.ref, device)
    return result


def verify_models(registry: Registry, device: str | torch.device) -> list[VerifyResult]:
    """Verify every registered model, in registry order."""
    return [verify_model(spec, device) for spec in registry.specs()]
