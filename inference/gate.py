"""The out-of-domain gate: is an input like the images a model was trained on?

Method (Lee et al., NeurIPS 2018, "A simple unified framework for detecting out-of-distribution
samples and adversarial attacks"): the Mahalanobis distance of an input's pooled encoder features
to the training features' mean, under their covariance. It needs no extra network and no
retraining, costs one matrix-vector product on the forward pass the model runs anyway, and its
reference is two arrays beside the weights. Here the features are the global average, per
channel, of the layers the spec names (``GateSpec.layers``: early layers see texture and
noise, the deepest one content); the covariance is shrunk
(Ledoit-Wolf) because a few hundred images do not pin down hundreds of dimensions.

The same :class:`FeatureTap` and :func:`check` serve the node (``inference.runner.run_model``)
and ``lnm-node evaluate`` (``training.evaluate``), so both decline the same inputs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import numpy as np

from inference.registry import ModelSpec, RegistryError, sha256_file
from kernel.errors import InvalidInput

if TYPE_CHECKING:  # torch is imported where features are taken, not by every importer
    import torch
    from torch import nn

OUT_OF_DOMAIN = "input outside the model's training domain"


class OutOfDomain(InvalidInput):
    """The input scored beyond the model's gate threshold; the model is not run on it."""

    def __init__(self, spec: ModelSpec, score: float, threshold: float) -> None:
        super().__init__(
            f"{OUT_OF_DOMAIN}: model {spec.key} {spec.version}, Mahalanobis score "
            f"{score:.2f} above the threshold {threshold:.2f}"
        )
        self.score = score
        self.threshold = threshold


@dataclass(frozen=True)
class GateReference:
    """Mean and precision (inverse shrunk covariance) of a model's training features."""

    mean: np.ndarray
    precision: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` ``[N,D]``."""
        centred = np.atleast_2d(features).astype(np.float64) - self.mean
        return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", centred, self.precision, centred), 0))

    def npz_bytes(self) -> bytes:
        """The reference as ``.npz`` bytes (float64: the distance is a sum of many products)."""
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, precision=self.precision)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: Path) -> GateReference:
        with np.load(path) as data:
            return cls(mean=data["mean"], precision=data["precision"])

    @classmethod
    def fit(cls, features: np.ndarray) -> GateReference:
        """Mean and Ledoit-Wolf precision of ``features`` ``[N,D]``."""
        from sklearn.covariance import LedoitWolf

        estimate = LedoitWolf().fit(np.asarray(features, dtype=np.float64))
        return cls(mean=estimate.location_, precision=estimate.precision_)


def load_reference(spec: ModelSpec) -> GateReference | None:
    """The spec's gate reference, its sha256 checked; None when the spec has no gate."""
    gate, path = spec.scope.gate, spec.gate_path
    if gate is None or path is None:
        return None
    if not path.is_file():
        raise RegistryError(f"model {spec.ref}: gate reference {path} is missing")
    if sha256_file(path) != gate.reference_sha256:
        raise RegistryError(f"model {spec.ref}: gate reference {path.name} differs from its spec")
    return GateReference.load(path)


def pooled(output: object) -> torch.Tensor:
    """``[B,2C]`` features of a layer output ``[B,C,...]``: per channel, the mean and the
    standard deviation over every axis after the channels (``[B,C]`` outputs as they are)."""
    import torch

    tensor = output[0] if isinstance(output, tuple | list) else output
    if not isinstance(tensor, torch.Tensor):
        raise RegistryError("the gate's layer must output a tensor")
    tensor = tensor.detach().float()
    if tensor.ndim <= 2:
        return tensor
    flat = tensor.flatten(2)
    return torch.cat([flat.mean(dim=2), flat.std(dim=2, correction=0)], dim=1)


class FeatureTap:
    """Records the pooled outputs of ``layers`` on every forward pass while entered."""

    def __init__(self, network: nn.Module, layers: list[str]) -> None:
        self._modules = [network.get_submodule(layer) for layer in layers]
        self._handles: list[object] = []
        self.features: list[list[np.ndarray]] = [[] for _ in layers]

    def __enter__(self) -> Self:
        for index, module in enumerate(self._modules):

            def hook(_module: nn.Module, _inputs: object, output: object, at: int = index) -> None:
                self.features[at].append(pooled(output).cpu().numpy())

            self._handles.append(module.register_forward_hook(hook))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()  # type: ignore[attr-defined]
        self._handles.clear()

    def last(self) -> np.ndarray:
        """Features ``[B,D]`` of the last forward pass, the layers' in order."""
        if not all(self.features):
            raise RegistryError("a gate layer did not run in the forward pass")
        return np.concatenate([per_layer[-1] for per_layer in self.features], axis=1)


def check(spec: ModelSpec, reference: GateReference, features: np.ndarray) -> float:
    """The gate score of one input's features; raises :class:`OutOfDomain` above threshold."""
    gate = spec.scope.gate
    if gate is None:
        raise RegistryError(f"model {spec.ref} has no gate")
    score = float(reference.scores(features)[0])
    if score > gate.threshold:
        raise OutOfDomain(spec, score, gate.threshold)
    return score
