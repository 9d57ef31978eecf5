"""Package trained weights as a registered model folder: weights.pt, spec.json (sha256), card.md."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from inference.registry import ModelSpec, sha256_file
from training.metrics import ECE_BINS
from training.report import FIGURES

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pt"
CARD_FILE = "card.md"
INTENDED_USE = (
    "Research use only. Not a medical device; not for diagnosis or any clinical decision."
)


@dataclass(frozen=True)
class ModelFacts:
    """What a card and spec say about a model besides its key and version."""

    name: str
    input_size: int
    threshold: float
    trained_on: str
    evaluated_on: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    training: str = ""
    evaluation: str = ""
    limitations: tuple[str, ...] = ()
    intended_use: str = INTENDED_USE
    family: str = "segcls"
    architecture: str = "ynet"
    backbone: str = "basicunet"
    heatmap_layer: str = "unet.down_4"
    #: the spec's default routing rule (``inference.scope.ScopeRule`` fields); None: every study
    scope_rule: dict[str, Any] | None = None


#: what ynet-busi finds (breast lesions): its segment and finding codes
BREAST_LESION_SEGMENT = {
    "number": 1,
    "label": "lesion",
    "category": {
        "value": "49755003",
        "scheme": "SCT",
        "meaning": "Morphologically Abnormal Structure",
    },
    "type": {"value": "52988006", "scheme": "SCT", "meaning": "Lesion"},
}
BREAST_LESION_FINDING = {
    "type": {"value": "52988006", "scheme": "SCT", "meaning": "Lesion"},
    "site": {"value": "76752008", "scheme": "SCT", "meaning": "Breast"},
    "call": {"value": "363346000", "scheme": "SCT", "meaning": "Malignant neoplastic disease"},
}


def _spec_fields(key: str, version: str, facts: ModelFacts, sha256: str) -> dict:
    from training.package_families import NetworkFacts, family_spec_fields

    # every ModelFacts field is a NetworkFacts field; what it finds is the breast lesion
    shared = {f.name: getattr(facts, f.name) for f in fields(facts)}
    network = NetworkFacts(**shared, segment=BREAST_LESION_SEGMENT, finding=BREAST_LESION_FINDING)
    return family_spec_fields(key, version, network, sha256)


def _figure(value: float | None) -> str:
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() and abs(value) > 1 else f"{value:.3f}"


def _pair(figures: dict[str, float], name: str) -> str:
    before, after = figures.get(f"{name}_before"), figures.get(f"{name}_after")
    return f"{_figure(before)} before, {_figure(after)} after"


def calibration_section(spec: ModelSpec) -> list[str]:
    """The card's "Calibration and operating point" lines from the spec's ``calibration`` and
    ``operating_point`` (none when the spec has neither)."""
    calibration, point = spec.calibration, spec.operating_point
    if calibration is None and point is None:
        return []
    lines = ["", "## Calibration and operating point", ""]
    if calibration is not None:
        f = calibration.figures
        bins = int(f.get("bins", ECE_BINS))
        method = calibration.method.value
        if calibration.temperature is not None:
            method = f"temperature scaling, T = {calibration.temperature:.3f}"
        elif calibration.points is not None:
            method = f"isotonic regression ({len(calibration.points)} knots)"
        if calibration.method.value == "none":
            lines.append(
                f"Probability calibration: none (the network's sigmoid). Calibration measured on "
                f"{calibration.fitted_on}: ECE {_figure(f.get('ece_before'))} ({bins} "
                f"equal-width bins), Brier {_figure(f.get('brier_before'))}."
            )
        else:
            lines.append(
                f"Probability calibration: {method}, fitted on {calibration.fitted_on} "
                f"({_figure(f.get('n'))} cases). There: ECE ({bins} equal-width bins) "
                f"{_pair(f, 'ece')}; Brier {_pair(f, 'brier')}; log loss {_pair(f, 'log_loss')}. "
                "The threshold applies to the calibrated probability."
            )
    if point is not None:
        f = point.figures
        gave = ""
        if "sensitivity" in f:
            gave = (
                f": sensitivity {_figure(f['sensitivity'])}, specificity "
                f"{_figure(f.get('specificity'))} there"
            )
        text = (
            f"Operating point: `{point.policy}`, threshold {spec.threshold:.3f}, chosen on "
            f"{point.chosen_on}{gave}."
        )
        lines += ["", text]
    return lines


def card_markdown(
    spec: ModelSpec, facts: ModelFacts | Any, model: str, figure_rows: list[tuple[str, str]]
) -> str:
    """A model card in Markdown: intended use, ``model`` (one paragraph), training data,
    evaluation with ``figure_rows`` (label, text), limitations. ``facts`` carries
    intended_use, trained_on, training, evaluated_on, evaluation and limitations."""
    lines = [
        f"# {spec.name} ({spec.ref})",
        "",
        "## Intended use",
        "",
        facts.intended_use,
        "",
        "## Model",
        "",
        model,
        "",
        "## Training data",
        "",
        facts.trained_on,
        "",
        facts.training,
        "",
        "## Evaluation",
        "",
        facts.evaluated_on,
        "",
        facts.evaluation,
        "",
        "| figure | value |",
        "| --- | --- |",
        *(f"| {label} | {text} |" for label, text in figure_rows),
    ]
    lines += calibration_section(spec)
    lines += ["", "## Limitations", ""] + [f"- {item}" for item in facts.limitations] + [""]
    return "\n".join(lines)


def render_card(spec: ModelSpec, facts: ModelFacts) -> str:
    """The model card in Markdown: intended use, training data, evaluation, limitations."""
    m = facts.metrics
    model = (
        f"Architecture `{spec.architecture}` (backbone `{spec.backbone}`), one grey input at "
        f"{spec.input_size}x{spec.input_size}; outputs a lesion mask and a probability of "
        f"malignancy, called positive at >= {spec.threshold:.3f}. Weights sha256 "
        f"`{spec.weights_sha256}`."
    )
    rows = []
    for key, label in FIGURES:
        if key in m and not isinstance(m[key], str):
            text = _figure(m[key])
            if key == "auc" and m.get("auc_ci_low") is not None:
                text += f" (95% CI {_figure(m['auc_ci_low'])}-{_figure(m['auc_ci_high'])}, DeLong)"
            rows.append((label, text))
    return card_markdown(spec, facts, model, rows)


def write_package(
    state: dict[str, torch.Tensor],
    out_dir: Path,
    spec_fields: Callable[[str], dict[str, Any]],
    render: Callable[[ModelSpec], str],
) -> ModelSpec:
    """Write ``weights.pt`` (fp32 state_dict, atomically), the validated ``spec.json`` carrying
    the weights' sha256, and ``card.md`` into ``out_dir``; returns the spec."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()
        for k, v in state.items()
    }
    weights = out_dir / WEIGHTS_FILE
    temporary = weights.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, weights)
    spec = ModelSpec.model_validate(spec_fields(sha256_file(weights)))
    spec.save(out_dir)
    (out_dir / CARD_FILE).write_text(render(spec))
    return spec


def package_model(
    state_dict_path: Path, out_dir: Path, key: str, version: str, facts: ModelFacts | dict
) -> Path:
    """Write ``out_dir/{weights.pt,spec.json,card.md}``; returns ``out_dir``.

    The weights are re-saved as a plain fp32 state_dict; the spec is validated by
    ``inference.registry.ModelSpec`` and records the weights' sha256.
    """
    facts = facts if isinstance(facts, ModelFacts) else ModelFacts(**facts)
    out_dir = Path(out_dir)
    state = torch.load(state_dict_path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    spec = write_package(
        state,
        out_dir,
        lambda sha256: _spec_fields(key, version, facts, sha256),
        lambda spec: render_card(spec, facts),
    )
    logger.info("packaged %s into %s", spec.ref, out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m training.package WEIGHTS OUT_DIR --key K --version V --facts FACTS.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--key", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--facts", type=Path, required=True, help="JSON of ModelFacts fields")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    facts = json.loads(args.facts.read_text())
    facts["limitations"] = tuple(facts.get("limitations", ()))
    print(package_model(args.weights, args.out_dir, args.key, args.version, facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
