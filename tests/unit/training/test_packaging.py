"""Tests of training.package: a packaged model round-trips through the registry and loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.loading import load_network
from inference.networks.ynet import YNet
from inference.registry import Registry, verify_weights
from training.evaluate import evaluate
from training.package import ModelFacts, package_model

FACTS = ModelFacts(
    name="Tiny Y-Net",
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


def test_package_model_dict_facts_accepted(tmp_path: Path) -> None:
    facts = {**FACTS.__dict__, "threshold": 0.5}
    folder = package_model(_weights(tmp_path), tmp_path / "m", "tiny", "2.0.0", facts)
    assert (folder / "spec.json").is_file()


def test_package_model_invalid_threshold_refused(tmp_path: Path) -> None:
    facts = {**FACTS.__dict__, "threshold": 1.5}
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


def test_package_model_spec_names_breast_lesions(tmp_path: Path) -> None:
    """The Y-Net packager's spec says what it finds (breast lesions, not lymph nodes)."""
    folder = package_model(_weights(tmp_path), tmp_path / "m", "tiny", "1.0.0", FACTS)
    spec = Registry.load(folder.parent).get("tiny", default_key="tiny")
    finding = spec.outputs.finding
    assert (finding.type.meaning, finding.site.meaning) == ("Lesion", "Breast")
    assert finding.call.meaning == "Malignant neoplastic disease"
    assert [s.label for s in spec.outputs.segments] == ["lesion"]
    assert [m.name for m in spec.outputs.measurements] == ["long_axis", "short_axis"]
