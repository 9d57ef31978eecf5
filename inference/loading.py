"""Build a registered model's network and load its verified weights onto a device."""

from __future__ import annotations

import logging

import torch
from torch import nn

from inference.networks.ynet import YNet
from inference.registry import ModelSpec, RegistryError, verify_weights

logger = logging.getLogger(__name__)

ARCHITECTURES = ("ynet",)


def build_network(spec: ModelSpec) -> nn.Module:
    """A randomly initialised network of the spec's architecture and input channels."""
    if spec.architecture == "ynet":
        if spec.input_size % 16:
            raise RegistryError(f"model {spec.ref}: ynet needs input_size a multiple of 16")
        return YNet(in_channels=spec.in_channels)
    raise RegistryError(
        f"model {spec.ref}: unknown architecture {spec.architecture!r}; known: {', '.join(ARCHITECTURES)}"
    )


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
    """Networks loaded once per (key, version, weights sha256, device), kept for a worker's life."""

    def __init__(self) -> None:
        self._networks: dict[tuple[str, str, str, str], nn.Module] = {}

    def get(self, spec: ModelSpec, device: str | torch.device) -> nn.Module:
        """The loaded network of ``spec`` on ``device``, loading it on first use."""
        ident = (spec.key, spec.version, spec.weights_sha256, str(device))
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
