"""Build a registered model's network and load its verified weights onto a device."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import torch
from torch import nn

from inference.networks.ceus import CeusFusion
from inference.networks.classifier import ImageClassifier
from inference.networks.dual import DualCrossAttention
from inference.networks.ensemble import Ensemble
from inference.networks.hybrid import SIZE_MULTIPLE, HybridSwin, swin_feature_size
from inference.networks.video import R3D, R2Plus1D, TemporalInterlaceNet
from inference.networks.ynet import YNet
from inference.registry import Family, ModelSpec, RegistryError, verify_weights

logger = logging.getLogger(__name__)


def _ynet(spec: ModelSpec) -> nn.Module:
    if spec.input_size % 16:
        raise ValueError("ynet needs input_size a multiple of 16")
    return YNet(in_channels=spec.in_channels)


def _hybrid_swin(spec: ModelSpec) -> nn.Module:
    if spec.input_size % SIZE_MULTIPLE:
        raise ValueError(f"hybrid-swin needs input_size a multiple of {SIZE_MULTIPLE}")
    return HybridSwin(in_channels=spec.in_channels, feature_size=swin_feature_size(spec.backbone))


def _classifier(spec: ModelSpec) -> nn.Module:
    return ImageClassifier(spec.backbone, in_channels=spec.in_channels)


def _dual(spec: ModelSpec) -> nn.Module:
    doppler = spec.inputs[1].contract.channels if len(spec.inputs) > 1 else 3
    return DualCrossAttention(
        spec.backbone,
        in_channels=spec.in_channels,
        doppler_channels=doppler,
        single_input=len(spec.inputs) == 1,
    )


def _tin(spec: ModelSpec) -> nn.Module:
    frames = spec.inputs[0].contract.frames
    return TemporalInterlaceNet(spec.backbone, in_channels=spec.in_channels, frames=frames)


def _r2plus1d(spec: ModelSpec) -> nn.Module:
    return R2Plus1D(spec.backbone, in_channels=spec.in_channels)


def _r3d(spec: ModelSpec) -> nn.Module:
    return R3D(spec.backbone, in_channels=spec.in_channels)


def _ceus_fusion(spec: ModelSpec) -> nn.Module:
    frames = spec.inputs[1].contract.frames
    return CeusFusion(spec.backbone, in_channels=spec.in_channels, ceus_frames=frames)


# architecture -> (the family it serves, its builder)
_BUILDERS: dict[str, tuple[Family, Callable[[ModelSpec], nn.Module]]] = {
    "ynet": (Family.SEGCLS, _ynet),
    "hybrid-swin": (Family.SEGCLS, _hybrid_swin),
    "classifier": (Family.IMAGE, _classifier),
    "dual-crossattn": (Family.DUAL, _dual),
    "tin": (Family.VIDEO, _tin),
    "r2plus1d": (Family.VIDEO, _r2plus1d),
    "r3d": (Family.VIDEO, _r3d),
    "ceus-fusion": (Family.CEUS, _ceus_fusion),
}
ARCHITECTURES = tuple(_BUILDERS)


def build_network(spec: ModelSpec) -> nn.Module:
    """A randomly initialised network of the spec's architecture, backbone and inputs.

    Raises :class:`RegistryError` for an unknown architecture, one of another family, or a
    backbone or input size the architecture cannot take. A spec's ``ensemble`` gives an
    :class:`Ensemble` of that many such networks.
    """
    entry = _BUILDERS.get(spec.architecture)
    if entry is None:
        raise RegistryError(
            f"model {spec.ref}: unknown architecture {spec.architecture!r}; "
            f"known: {', '.join(ARCHITECTURES)}"
        )
    family, builder = entry
    if spec.family is not family:
        raise RegistryError(
            f"model {spec.ref}: architecture {spec.architecture!r} serves family "
            f"{family.value!r}, the spec says {spec.family.value!r}"
        )
    try:
        network = builder(spec)
        if spec.ensemble is not None:
            network = Ensemble([network] + [builder(spec) for _ in range(spec.ensemble.members - 1)])
    except ValueError as error:
        raise RegistryError(f"model {spec.ref}: {error}") from error
    min_size = getattr(network, "min_size", 16)
    if spec.input_size < min_size:
        raise RegistryError(
            f"model {spec.ref}: backbone {spec.backbone!r} needs input_size >= {min_size}"
        )
    return network


def load_network(spec: ModelSpec, device: str | torch.device) -> nn.Module:
    """The spec's network with its sha256-verified weights, in eval mode, on ``device``."""
    path = verify_weights(spec)
    network = build_network(spec)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise RegistryError(f"model {spec.ref}: weights do not fit the network: {error}") from error
    network.eval()
    logger.info("loaded model %s onto %s", spec.ref, device)
    return network.to(device)


class ModelCache:
    """Networks loaded once per (key, version, weights sha256, device), kept for a worker's life.

    Thread-safe: a job and the worker's warm-up thread asking for the same version load it once.
    """

    def __init__(self) -> None:
        self._networks: dict[tuple[str, str, str, str], nn.Module] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec, device: str | torch.device) -> nn.Module:
        """The loaded network of ``spec`` on ``device``, loading it on first use."""
        ident = (spec.key, spec.version, spec.weights_sha256, str(device))
        with self._lock:
            network = self._networks.get(ident)
            if network is None:
                network = load_network(spec, device)
                self._networks[ident] = network
        return network

    def clear(self) -> None:
        """Forget every loaded network."""
        self._networks.clear()

    def __len__(self) -> int:
        return len(self._networks)
