"""Package trained weights as a registered model folder: weights.pt, spec.json (sha256), card.md."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from inference.registry import ModelSpec, sha256_file
from training.metrics import ECE_BINS
from training.report import figure_text
from training.torch_files import save_atomically

if TYPE_CHECKING:
    from training.package_families import NetworkFacts

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pt"
CARD_FILE = "card.md"
INTENDED_USE = (
    "Research use only. Not a medical device; not for diagnosis or any clinical decision."
)


def _pair(figures: dict[str, float], name: str) -> str:
    before, after = figures.get(f"{name}_before"), figures.get(f"{name}_after")
    return f"{figure_text(before)} before, {figure_text(after)} after"


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
                f"{calibration.fitted_on}: ECE {figure_text(f.get('ece_before'))} ({bins} "
                f"equal-width bins), Brier {figure_text(f.get('brier_before'))}."
            )
        else:
            lines.append(
                f"Probability calibration: {method}, fitted on {calibration.fitted_on} "
                f"({figure_text(f.get('n'))} cases). There: ECE ({bins} equal-width bins) "
                f"{_pair(f, 'ece')}; Brier {_pair(f, 'brier')}; log loss {_pair(f, 'log_loss')}. "
                "The threshold applies to the calibrated probability."
            )
    if point is not None:
        f = point.figures
        gave = ""
        if "sensitivity" in f:
            gave = (
                f": sensitivity {figure_text(f['sensitivity'])}, specificity "
                f"{figure_text(f.get('specificity'))} there"
            )
        text = (
            f"Operating point: `{point.policy}`, threshold {spec.threshold:.3f}, chosen on "
            f"{point.chosen_on}{gave}."
        )
        lines += ["", text]
    return lines


def card_markdown(
    spec: ModelSpec, facts: NetworkFacts, model: str, figure_rows: list[tuple[str, str]]
) -> str:
    """A model card in Markdown: intended use, ``model`` (one paragraph), training data,
    evaluation with ``figure_rows`` (label, text), limitations; the texts come from
    ``facts``."""
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
    save_atomically(state, weights)
    spec = ModelSpec.model_validate(spec_fields(sha256_file(weights)))
    spec.save(out_dir)
    (out_dir / CARD_FILE).write_text(render(spec))
    return spec


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict saved at ``path``, plain or under a checkpoint's ``state_dict`` key."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return state


def main(argv: list[str] | None = None) -> int:
    """``python -m training.package WEIGHTS OUT_DIR --key K --version V --facts FACTS.json``:
    a state_dict file (e.g. ``training/gpu_train.py``'s) packaged with the facts of
    ``training.package_families.NetworkFacts`` (``docs/models/ynet-busi/facts.json``)."""
    from training.package_families import NetworkFacts, package_network

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--key", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--facts", type=Path, required=True, help="JSON of NetworkFacts fields")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    facts = json.loads(args.facts.read_text())
    facts["limitations"] = tuple(facts.get("limitations", ()))
    state = read_state_dict(args.weights)
    print(package_network(state, args.out_dir, args.key, args.version, NetworkFacts(**facts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
