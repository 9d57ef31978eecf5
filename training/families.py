"""Network constructors for training, by the names the k-fold runs use (no pydantic, no settings).

``ynet`` (segmenter + classifier), ``classifier:<backbone>`` (e.g. ``classifier:densenet121``)
and ``hybrid:swin-f<N>`` (CNN + Swin encoder shared by a decoder and a head). The networks themselves
live in ``inference.networks``; this module only picks one and its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn


def _ynet(in_channels: int, size: int) -> nn.Module:
    from inference.networks.ynet import YNet

    return YNet(in_channels=in_channels)


def _classifier(backbone: str, in_channels: int, size: int) -> nn.Module:
    from inference.networks.classifier import ImageClassifier

    return ImageClassifier(backbone, in_channels=in_channels)


def _hybrid(backbone: str, in_channels: int, size: int) -> nn.Module:
    from inference.networks.hybrid import HybridSwin, swin_feature_size

    return HybridSwin(in_channels=in_channels, feature_size=swin_feature_size(backbone))


def network_factory(name: str, size: int, in_channels: int = 1) -> Callable[[], nn.Module]:
    """A no-argument constructor of the network named ``name`` for ``size`` inputs.

    Raises ``ValueError`` on an unknown name.
    """
    if name == "ynet":
        return partial(_ynet, in_channels, size)
    if name.startswith("classifier:"):
        return partial(_classifier, name.partition(":")[2], in_channels, size)
    if name.startswith("hybrid:"):
        return partial(_hybrid, name.partition(":")[2], in_channels, size)
    raise ValueError(
        f"unknown network {name!r}: use ynet, classifier:<backbone> or hybrid:swin-f<N>"
    )


def family_of(name: str) -> str:
    """The registry family of a network name (``segcls`` or ``image``)."""
    return "image" if name.startswith("classifier:") else "segcls"


def registry_fields(name: str) -> dict[str, str]:
    """``family``, ``architecture`` and ``backbone`` of a network name, as a spec records them."""
    if name == "ynet":
        return {"family": "segcls", "architecture": "ynet", "backbone": "basicunet"}
    kind, _, backbone = name.partition(":")
    if kind == "classifier":
        return {"family": "image", "architecture": "classifier", "backbone": backbone}
    if kind == "hybrid":
        return {"family": "segcls", "architecture": "hybrid-swin", "backbone": backbone}
    raise ValueError(f"unknown network {name!r}")
