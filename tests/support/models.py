"""A tiny registered model with seeded random weights, for tests that need a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inference.loading import build_network
from inference.registry import ModelSpec, sha256_file

TINY_SIZE = 64


def spec_fields(**overrides: Any) -> dict[str, Any]:
    """Every field of a small, valid ``ynet`` spec (64x64 grey input), with ``overrides``."""
    size = overrides.pop("input_size", TINY_SIZE)
    fields: dict[str, Any] = {
        "key": "tiny-ynet",
        "version": "0.1.0",
        "name": "Tiny Y-Net (test)",
        "family": "segcls",
        "backbone": "basicunet",
        "architecture": "ynet",
        "in_channels": 1,
        "input_size": size,
        "inputs": [
            {
                "name": "bmode",
                "rule": "bmode",
                "contract": {"channels": 1, "frames": 1, "size": size, "range": [0.0, 1.0]},
            }
        ],
        "outputs": {
            "segments": [
                {
                    "number": 1,
                    "label": "lymph node",
                    "category": {
                        "value": "91723000",
                        "scheme": "SCT",
                        "meaning": "Anatomical Structure",
                    },
                    "type": {"value": "59441001", "scheme": "SCT", "meaning": "Lymph node"},
                }
            ],
            "finding": {
                "type": {"value": "59441001", "scheme": "SCT", "meaning": "Lymph node"},
                "call": {"value": "128462008", "scheme": "SCT", "meaning": "Metastasis"},
            },
            "probability": {
                "name": "probability of malignancy",
                "meaning": {"value": "111047", "scheme": "DCM", "meaning": "Probability of cancer"},
            },
            "measurements": [
                {"name": "long_axis", "unit": "mm"},
                {"name": "short_axis", "unit": "mm"},
            ],
            "heatmap": {"method": "gradcam", "layer": "unet.down_4"},
        },
        "threshold": 0.5,
        "weights": "weights.pt",
        "weights_sha256": "0" * 64,
        "card": "card.md",
        "trained_on": "nothing: seeded random weights for tests",
        "evaluated_on": "nothing",
        "metrics": {},
        "intended_use": "unit tests only",
    }
    fields.update(overrides)
    return fields


def package_model(folder: Path, seed: int = 0, **overrides: Any) -> ModelSpec:
    """Write spec.json, seeded random weights and a card into ``folder``; return the loaded spec."""
    folder.mkdir(parents=True, exist_ok=True)
    draft = ModelSpec.model_validate(spec_fields(**overrides))
    torch.manual_seed(seed)
    network = build_network(draft)
    weights = folder / draft.weights
    torch.save(network.state_dict(), weights)
    (folder / draft.card).write_text(f"# {draft.name}\n\nRandom weights for tests.\n")
    spec = draft.model_copy(update={"weights_sha256": sha256_file(weights)})
    spec.save(folder)
    return ModelSpec.load(folder)


