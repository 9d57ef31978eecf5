"""What a model's spec and card say, for every family (image, dual, video, ceus, segcls).

:func:`family_spec_fields` writes the inputs each family takes (the layouts
``inference.registry.ModelSpec`` validates) and the outputs its facts name;
:func:`render_card` writes its card; :func:`package_network` saves trained weights as a
registered model folder (weights.pt, spec.json with the sha256, card.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inference.registry import Family, ModelSpec, SelectionRule
from training.package import CARD_FILE, INTENDED_USE, WEIGHTS_FILE, card_markdown, write_package
from training.report import FIGURES, figure_rows, figure_text

logger = logging.getLogger(__name__)

CEUS_KEY_FRAMES = 5
CINE_FRAMES = 16

_LESION_SEGMENT = {
    "number": 1,
    "label": "lymph node",
    "category": {"value": "91723000", "scheme": "SCT", "meaning": "Anatomical Structure"},
    "type": {"value": "59441001", "scheme": "SCT", "meaning": "Lymph node"},
}
_FINDING = {
    "type": {"value": "59441001", "scheme": "SCT", "meaning": "Lymph node"},
    "call": {"value": "128462008", "scheme": "SCT", "meaning": "Metastasis"},
}
_PROBABILITY = {
    "name": "probability of malignancy",
    "meaning": {"value": "111047", "scheme": "DCM", "meaning": "Probability of cancer"},
}
_AXES = [{"name": "long_axis", "unit": "mm"}, {"name": "short_axis", "unit": "mm"}]


def _input(name: str, rule: SelectionRule, channels: int, frames: int, size: int) -> dict:
    return {
        "name": name,
        "rule": rule.value,
        "contract": {"channels": channels, "frames": frames, "size": size, "range": [0.0, 1.0]},
    }


def family_inputs(
    family: Family | str,
    size: int,
    frames: int | None = None,
    single_input: bool = False,
) -> list[dict]:
    """The ``inputs`` of a spec of ``family`` at ``size``, in forward order.

    ``frames``: cine frames (video, default 16) or CEUS key frames (ceus, default 5);
    ``single_input``: the dual family's B-mode-only variant.
    """
    family = Family(family)
    bmode = _input("bmode", SelectionRule.BMODE, 1, 1, size)
    if family in (Family.IMAGE, Family.SEGCLS) or (family is Family.DUAL and single_input):
        return [bmode]
    if family is Family.DUAL:
        return [bmode, _input("doppler", SelectionRule.DOPPLER, 3, 1, size)]
    if family is Family.VIDEO:
        return [_input("cine", SelectionRule.CINE, 1, frames or CINE_FRAMES, size)]
    return [bmode, _input("ceus", SelectionRule.CEUS, 1, frames or CEUS_KEY_FRAMES, size)]


@dataclass(frozen=True)
class NetworkFacts:
    """What a spec and card say about a network besides key, version and weights."""

    name: str
    family: str
    architecture: str
    backbone: str
    input_size: int
    heatmap_layer: str
    threshold: float
    trained_on: str
    evaluated_on: str
    frames: int | None = None
    single_input: bool = False
    metrics: dict[str, float | None] = field(default_factory=dict)
    training: str = ""
    evaluation: str = ""
    limitations: tuple[str, ...] = ()
    intended_use: str = INTENDED_USE
    #: the spec's default routing rule (``inference.scope.ScopeRule`` fields); None: every study
    scope_rule: dict[str, Any] | None = None
    #: what the model finds: its segment (segcls) and ``outputs.finding`` codes; None: a lymph
    #: node and metastasis
    segment: dict[str, Any] | None = None
    finding: dict[str, Any] | None = None

    @classmethod
    def of_spec(cls, spec: ModelSpec, **facts: Any) -> NetworkFacts:
        """The facts ``spec`` already states (name, family, network, input size, Grad-CAM
        layer), with ``facts`` (threshold, trained_on, evaluated_on ...) added."""
        return cls(
            name=spec.name,
            family=spec.family.value,
            architecture=spec.architecture,
            backbone=spec.backbone,
            input_size=spec.input_size,
            heatmap_layer=spec.outputs.heatmap.layer,
            **facts,
        )


def family_spec_fields(key: str, version: str, facts: NetworkFacts, sha256: str) -> dict[str, Any]:
    """Every field of a valid spec for ``facts`` (segments and axes only for segcls)."""
    segcls = Family(facts.family) is Family.SEGCLS
    inputs = family_inputs(facts.family, facts.input_size, facts.frames, facts.single_input)
    finite = {
        k: float(v)
        for k, v in facts.metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    return {
        "key": key,
        "version": version,
        "name": facts.name,
        "family": facts.family,
        "backbone": facts.backbone,
        "architecture": facts.architecture,
        "in_channels": inputs[0]["contract"]["channels"],
        "input_size": facts.input_size,
        "inputs": inputs,
        "outputs": {
            "segments": [facts.segment or _LESION_SEGMENT] if segcls else [],
            "finding": facts.finding or _FINDING,
            "probability": _PROBABILITY,
            "measurements": _AXES if segcls else [],
            "heatmap": {"method": "gradcam", "layer": facts.heatmap_layer},
        },
        "threshold": facts.threshold,
        "weights": WEIGHTS_FILE,
        "weights_sha256": sha256,
        "card": CARD_FILE,
        "trained_on": facts.trained_on,
        "evaluated_on": facts.evaluated_on,
        "metrics": finite,
        "intended_use": facts.intended_use,
        **({} if facts.scope_rule is None else {"scope": {"rule": facts.scope_rule}}),
    }


def render_card(spec: ModelSpec, facts: NetworkFacts) -> str:
    """The model card in Markdown: intended use, model, inputs, training, evaluation (the
    report's figures with their labels, then any other metric by its name), limitations."""
    inputs = ", ".join(
        f"`{i.name}` ({i.rule.value}, {i.contract.channels} channel(s) x "
        f"{i.contract.frames} frame(s))"
        for i in spec.inputs
    )
    outputs = f"a {spec.outputs.probability.name}"
    if spec.outputs.segments:
        outputs = f"a {spec.outputs.segments[0].label} mask and {outputs}"
    model = (
        f"Family `{spec.family.value}`, architecture `{spec.architecture}` (backbone "
        f"`{spec.backbone}`) at {spec.input_size}x{spec.input_size}; inputs {inputs}. "
        f"Outputs {outputs}, called positive at >= {spec.threshold:.3f}; Grad-CAM at "
        f"`{spec.outputs.heatmap.layer}` explaining input `{spec.outputs.heatmap.input}`. "
        f"Weights sha256 `{spec.weights_sha256}`."
    )
    return card_markdown(spec, facts, model, card_figure_rows(facts.metrics))


def card_figure_rows(metrics: Mapping[str, object]) -> list[tuple[str, str]]:
    """The card's evaluation table: the report's figures with their labels, then any other
    metric by its name."""
    named = {key for key, _ in FIGURES} | {"auc_ci_low", "auc_ci_high"}
    return figure_rows(metrics) + [
        (name, figure_text(value)) for name, value in metrics.items() if name not in named
    ]


def package_network(
    weights: nn.Module | Mapping[str, torch.Tensor],
    out_dir: Path,
    key: str,
    version: str,
    facts: NetworkFacts,
) -> Path:
    """Write ``out_dir/{weights.pt,spec.json,card.md}`` for a trained network or its state_dict;
    returns ``out_dir``.

    The weights are saved as a plain fp32 state_dict; the spec is validated by ``ModelSpec``.
    """
    out_dir = Path(out_dir)
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    spec = write_package(
        dict(state),
        out_dir,
        lambda sha256: family_spec_fields(key, version, facts, sha256),
        lambda spec: render_card(spec, facts),
    )
    logger.info("packaged %s into %s", spec.ref, out_dir)
    return out_dir
