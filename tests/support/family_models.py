"""Tiny registered models of every family (real architectures, small backbone, seeded weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.loading import build_network
from inference.registry import ModelSpec
from tests.support.models import TINY_SIZE, package_model, spec_fields

SMALL_BACKBONE = "resnet10-w8"
CINE_FRAMES = 16
CEUS_KEY_FRAMES = 5


def model_input(name: str, rule: str, channels: int = 1, frames: int = 1) -> dict[str, Any]:
    """One spec input of the tiny size."""
    contract = {"channels": channels, "frames": frames, "size": TINY_SIZE, "range": [0.0, 1.0]}
    return {"name": name, "rule": rule, "contract": contract}


FAMILIES: dict[str, dict[str, Any]] = {
    "image": {
        "architecture": "classifier",
        "inputs": [model_input("bmode", "bmode")],
    },
    "dual": {
        "architecture": "dual-crossattn",
        "inputs": [model_input("bmode", "bmode"), model_input("doppler", "doppler", channels=3)],
    },
    "video": {
        "architecture": "r3d",
        "inputs": [model_input("clip", "cine", frames=CINE_FRAMES)],
    },
    "ceus": {
        "architecture": "ceus-fusion",
        "inputs": [
            model_input("bmode", "bmode"),
            model_input("ceus", "ceus", frames=CEUS_KEY_FRAMES),
        ],
    },
}
"""Per family (but segcls, which is the tiny Y-Net): architecture and inputs."""


def family_overrides(family: str, key: str | None = None) -> dict[str, Any]:
    """``spec_fields`` overrides of a tiny ``family`` model (no segments for non-segcls)."""
    config = FAMILIES[family]
    return {
        "key": key or f"tiny-{family}",
        "name": f"Tiny {family} (test)",
        "family": family,
        "backbone": SMALL_BACKBONE,
        "architecture": config["architecture"],
        "in_channels": config["inputs"][0]["contract"]["channels"],
        "inputs": config["inputs"],
    }


def package_family_model(
    folder: Path, family: str, seed: int = 0, key: str | None = None
) -> ModelSpec:
    """Package a tiny model of ``family`` into ``folder`` with its network's Grad-CAM layer."""
    if family == "segcls":
        return package_model(folder, seed=seed, **({"key": key} if key else {}))
    overrides = family_overrides(family, key)
    draft = ModelSpec.model_validate(_fields(overrides, "placeholder"))
    layer = build_network(draft).gradcam_layer  # type: ignore[union-attr]
    return package_model(folder, seed=seed, **_outputs(overrides, str(layer)))


def _fields(overrides: dict[str, Any], layer: str) -> dict[str, Any]:
    return spec_fields(**_outputs(overrides, layer))


def _outputs(overrides: dict[str, Any], layer: str) -> dict[str, Any]:
    outputs = dict(spec_fields()["outputs"])
    outputs["segments"] = []
    outputs["measurements"] = []
    outputs["heatmap"] = {"method": "gradcam", "layer": layer}
    return {**overrides, "outputs": outputs}


def family_spec(family: str, layer: str, key: str | None = None) -> ModelSpec:
    """An unregistered spec of a tiny ``family`` model whose Grad-CAM hooks ``layer``.

    For stand-in networks in tests (no weights file: never loaded).
    """
    return ModelSpec.model_validate(_fields(family_overrides(family, key), layer))
