"""Test-time augmentation (TTA): a network's output averaged over augmented copies of its inputs.

A spec's ``tta`` lists the augmentations (``inference.registry.Augmentation``). Each is applied
to every input, the network runs on the augmented inputs, and its spatial outputs (segmentation
logits, any output with an axis beyond ``[B,K]``) are brought back by the inverse; the outputs
are then combined as an ensemble's are: the logit of the mean probability
(``inference.networks.ensemble.average_outputs``). ``hflip`` mirrors left-right, as training
augments (``training.trainer.flip_inputs``).

The runner explains (Grad-CAM) the un-augmented input alone and passes that pass's output in,
so the augmentations cost one plain forward each; ``lnm-node evaluate`` calls the same
function, so both give the same probability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from inference.networks.ensemble import NetworkOutput, average_outputs
from inference.registry import Augmentation, ModelSpec

Inputs = Sequence[torch.Tensor | None]


def _hflip(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.flip(-1)


# augmentation -> (applied to each input, inverse applied to each spatial output)
_AUGMENTATIONS: dict[Augmentation, tuple[Callable[[torch.Tensor], torch.Tensor], ...]] = {
    Augmentation.HFLIP: (_hflip, _hflip),
}


def _spatial(tensor: torch.Tensor) -> bool:
    return tensor.ndim > 2


def augmented_output(
    network: nn.Module, inputs: Inputs, augmentation: Augmentation
) -> NetworkOutput:
    """``network``'s output on ``inputs`` under ``augmentation``, spatial outputs inverted."""
    forward, inverse = _AUGMENTATIONS[Augmentation(augmentation)]
    output = network(*[None if x is None else forward(x) for x in inputs])
    if isinstance(output, torch.Tensor):
        return inverse(output) if _spatial(output) else output
    return tuple(inverse(o) if _spatial(o) else o for o in output)


@torch.no_grad()
def with_tta(
    network: nn.Module,
    inputs: Inputs,
    augmentations: Sequence[Augmentation | str],
    plain: NetworkOutput | None = None,
) -> NetworkOutput:
    """``network``'s output on ``inputs`` averaged with its outputs under ``augmentations``.

    ``plain`` is the output on the un-augmented inputs when the caller has it already (the
    Grad-CAM pass); otherwise it is computed. No augmentation returns the plain output.
    """
    base = network(*inputs) if plain is None else plain
    if not augmentations:
        return base
    augmented = [augmented_output(network, inputs, Augmentation(a)) for a in augmentations]
    return average_outputs([base, *augmented])


def parse_tta(text: str) -> list[Augmentation]:
    """``'none'`` or a comma-separated list of augmentation names (``'hflip'``); ``ValueError``
    names the known ones for anything else."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return []
    known = [a.value for a in Augmentation]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"test-time augmentation {text!r}: 'none' or a list of {', '.join(known)}")
    return [Augmentation(name) for name in names]


def spec_with_tta(spec: ModelSpec, augmentations: Sequence[Augmentation | str]) -> ModelSpec:
    """``spec`` with its ``tta`` replaced (validated), files still resolving against its folder:
    an evaluation's override (``lnm-node evaluate --tta``); the registered spec is unchanged."""
    changed = ModelSpec.model_validate({**spec.model_dump(), "tta": list(augmentations)})
    changed._folder = spec.folder
    return changed
