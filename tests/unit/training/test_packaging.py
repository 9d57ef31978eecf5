"""Tests of training.package: a packaged model round-trips through the registry and loader."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from inference.loading import load_network
from inference.networks.ynet import YNet
from inference.registry import ModelSpec, Registry, verify_weights
from training.evaluate import evaluate
from training.package import main, read_state_dict
from training.package_families import NetworkFacts, package_network

ROOT = Path(__file__).resolve().parents[3]
FACTS = NetworkFacts(
    name="Tiny Y-Net",
    family="segcls",
    architecture="ynet",
    backbone="basicunet",
    heatmap_layer="unet.down_4",
    input_size=64,
    threshold=0.4,
    trained_on="phantom images, not lymph nodes",
    evaluated_on="phantom hold-out",
    metrics={"auc": 0.75, "auc_ci_low": 0.5, "auc_ci_high": 0.9, "kappa": None, "n": 12},
    limitations=("synthetic data only",),
)


def _weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "best.pt"
    torch.save(YNet().state_dict(), path)
    return path


def package_model(
    weights: Path, out_dir: Path, key: str, version: str, facts: NetworkFacts
) -> Path:
    """Package a saved state_dict, as ``python -m training.package`` does."""
    return package_network(read_state_dict(weights), out_dir, key, version, facts)


def test_package_model_registry_round_trip(tmp_path: Path) -> None:
    folder = package_model(_weights(tmp_path), tmp_path / "models" / "tiny", "tiny", "1.0.0", FACTS)
    spec = Registry.load(tmp_path / "models").get("tiny", default_key="tiny")
    assert spec.ref == "tiny@1.0.0" and spec.folder == folder.absolute()
    assert verify_weights(spec) == folder.absolute() / "weights.pt"
    assert spec.threshold == 0.4 and spec.input_size == 64
    assert spec.metrics == {"auc": 0.75, "auc_ci_low": 0.5, "auc_ci_high": 0.9, "n": 12.0}
    network = load_network(spec, "cpu")
    assert isinstance(network, YNet)


def test_package_model_card_says_research_only_and_figures(tmp_path: Path) -> None:
    folder = package_model(_weights(tmp_path), tmp_path / "m", "tiny", "1.0.0", FACTS)
    card = (folder / "card.md").read_text()
    assert "not a medical device" in card.lower()
    assert "not lymph nodes" in card
    assert "0.750 (95% CI 0.500-0.900, DeLong)" in card
    assert "synthetic data only" in card


def test_package_main_facts_file_accepted(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({**asdict(FACTS), "threshold": 0.5}))
    weights, out = _weights(tmp_path), tmp_path / "m"
    argv = [str(weights), str(out), "--key", "tiny", "--version", "2.0.0"]
    assert main([*argv, "--facts", str(facts)]) == 0
    assert ModelSpec.load(out).threshold == 0.5


def test_package_model_invalid_threshold_refused(tmp_path: Path) -> None:
    facts = replace(FACTS, threshold=1.5)
    with pytest.raises(ValueError, match="threshold"):
        package_model(_weights(tmp_path), tmp_path / "m", "tiny", "1.0.0", facts)


def test_evaluate_packaged_spec_uses_spec_size_and_threshold(
    image_folder: Path, tmp_path: Path
) -> None:
    package_model(_weights(tmp_path), tmp_path / "models" / "tiny", "tiny", "1.0.0", FACTS)
    spec = Registry.load(tmp_path / "models").get("tiny", default_key="tiny")
    metrics = evaluate(spec, image_folder, tmp_path / "eval")
    assert metrics["input_size"] == 64 and metrics["threshold"] == 0.4
    assert metrics["model"] == "tiny@1.0.0"


def test_package_main_committed_facts_give_the_shipped_spec(tmp_path: Path) -> None:
    """The default model's facts file packages into the spec that ships: breast lesions, not
    lymph nodes, and the same inputs, outputs and threshold."""
    shipped = ModelSpec.load(ROOT / "inference" / "models" / "ynet-busi")
    facts = ROOT / "docs" / "models" / "ynet-busi" / "facts.json"
    argv = [str(shipped.weights_path), str(tmp_path / "m"), "--key", shipped.key]
    assert main([*argv, "--version", shipped.version, "--facts", str(facts)]) == 0
    spec = ModelSpec.load(tmp_path / "m")
    finding = spec.outputs.finding
    assert (finding.type.meaning, finding.site.meaning) == ("Lesion", "Breast")
    assert finding.call.meaning == "Malignant neoplastic disease"
    assert [s.label for s in spec.outputs.segments] == ["lesion"]
    assert [m.name for m in spec.outputs.measurements] == ["long_axis", "short_axis"]
    assert (spec.inputs, spec.outputs, spec.threshold) == (
        shipped.inputs, shipped.outputs, shipped.threshold
    )
    assert spec.weights_sha256 == shipped.weights_sha256
    assert "a lesion mask and a probability of malignancy" in spec.card_path.read_text()
