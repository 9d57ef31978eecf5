"""Every trainable network, by the one name the spec's ``architecture`` and the builder use.

A network here is an entry of ``inference.loading``'s builders: the trainer builds it from a
spec (:func:`draft_spec` for a key not registered yet) with :func:`inference.loading.build_network`,
exactly as inference does. ``lnm-node networks`` lists :data:`NETWORKS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from inference.loading import build_network
from inference.networks.backbones import CEUS_BACKBONES, TORCHVISION_BACKBONES
from inference.registry import Family, ModelSpec, NotRegistered, Registry

SMALL_RESNETS = ("resnet10-w16", "resnet18-w16")
"""Small MONAI ResNets (any ``resnet<10|18>-w<width>``) for CPU-sized models."""
PLACEHOLDER_SHA256 = "0" * 64


@dataclass(frozen=True)
class Network:
    """A trainable network: its name (the spec's architecture), family, inputs and backbones."""

    name: str
    family: Family
    inputs: tuple[str, ...]
    backbones: tuple[str, ...]
    default_backbone: str
    description: str

    def row(self) -> dict[str, object]:
        """The JSON row ``lnm-node networks --json`` prints."""
        return {
            "name": self.name,
            "family": self.family.value,
            "inputs": list(self.inputs),
            "backbones": list(self.backbones),
            "default_backbone": self.default_backbone,
            "description": self.description,
        }


NETWORKS: tuple[Network, ...] = (
    Network("classifier", Family.IMAGE, ("bmode",), TORCHVISION_BACKBONES + SMALL_RESNETS,
            "densenet121", "B-mode image classifier on a torchvision backbone"),
    Network("dual-crossattn", Family.DUAL, ("bmode", "doppler"),
            TORCHVISION_BACKBONES + SMALL_RESNETS, "resnet50",
            "B-mode + colour Doppler, one shared backbone, cross-attention fusion"),
    Network("tin", Family.VIDEO, ("cine",), ("resnet50",) + SMALL_RESNETS, "resnet50",
            "Temporal Interlacing Network on a 2D ResNet (cine clip)"),
    Network("r2plus1d", Family.VIDEO, ("cine",), ("r2plus1d_18", "r2plus1d_10"), "r2plus1d_18",
            "R(2+1)D factorised 3D convolutions (cine clip)"),
    Network("r3d", Family.VIDEO, ("cine",), ("resnet18-w64", "resnet10-w16"), "resnet18-w64",
            "3D ResNet (R3D-18 widths by default; cine clip)"),
    Network("ceus-fusion", Family.CEUS, ("bmode", "ceus"), CEUS_BACKBONES + SMALL_RESNETS,
            "densenet121", "B-mode + CEUS key frames, two 2D encoders, MLP feature fusion"),
    Network("ynet", Family.SEGCLS, ("bmode",), ("basicunet",), "basicunet",
            "Y-Net: MONAI BasicUNet with a class head on the shared encoder"),
    Network("hybrid-swin", Family.SEGCLS, ("bmode",), ("swin-f12", "swin-f24", "swin-f48"),
            "swin-f24", "Swin-UNETR hybrid: segmentation decoder and class head, shared encoder"),
)  # fmt: skip


def network_named(name: str) -> Network:
    """The network called ``name``; ``ValueError`` lists the names when it is unknown."""
    for network in NETWORKS:
        if network.name == name:
            return network
    known = ", ".join(n.name for n in NETWORKS)
    raise ValueError(f"unknown network {name!r}; `lnm-node networks` lists them: {known}")


def draft_spec(
    key: str,
    name: str,
    backbone: str | None = None,
    size: int = 256,
    frames: int | None = None,
    version: str = "0.0.0",
) -> ModelSpec:
    """A valid spec of network ``name`` for a key not registered yet (placeholder weights).

    Its inputs are the family's (``frames``: cine frames or CEUS key frames), its outputs the
    lymph-node codes of :func:`training.package_families.family_spec_fields`, and its
    Grad-CAM layer the built network's own.
    """
    from training.package_families import NetworkFacts, family_spec_fields

    network = network_named(name)
    facts = NetworkFacts(
        name=f"{name} ({key})"[:64],
        family=network.family.value,
        architecture=name,
        backbone=backbone or network.default_backbone,
        input_size=size,
        heatmap_layer="placeholder",
        threshold=0.5,
        trained_on="not trained yet",
        evaluated_on="not evaluated yet",
        frames=frames,
    )
    draft = ModelSpec.model_validate(family_spec_fields(key, version, facts, PLACEHOLDER_SHA256))
    layer = str(build_network(draft).gradcam_layer)  # type: ignore[union-attr]
    facts = replace(facts, heatmap_layer=layer)
    return ModelSpec.model_validate(family_spec_fields(key, version, facts, PLACEHOLDER_SHA256))


def resolve_spec(
    registry: Registry,
    key: str,
    network: str | None = None,
    backbone: str | None = None,
    size: int = 256,
    frames: int | None = None,
) -> ModelSpec:
    """The spec to train for ``key``: the registered one (highest version), or a draft of
    ``network`` (a name of :data:`NETWORKS`) for a key not registered yet. ``ValueError`` when
    the key is unknown and no network is named, or a network is named for a registered key
    of another architecture."""
    try:
        registered = registry.get(key, key)
    except NotRegistered:
        registered = None
    if registered is not None and network in (None, registered.architecture) and not backbone:
        return registered
    if network is None:
        raise ValueError(
            f"model {key!r} is not registered: name its network with --network "
            "(`lnm-node networks` lists them)"
        )
    if registered is not None:
        raise ValueError(
            f"model {key!r} is registered as {registered.architecture} "
            f"({registered.backbone}); train a new key for network {network!r}"
        )
    return draft_spec(key, network, backbone, size, frames)
