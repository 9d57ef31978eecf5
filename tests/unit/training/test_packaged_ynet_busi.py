"""Tests of the packaged default model ynet-busi: registry, weights, hold-out, reproducibility."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from inference.loading import load_network
from inference.registry import Registry, default_models_dir, verify_weights
from training.datasets import read_image_folder
from training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs" / "models" / "ynet-busi"


def _spec():
    return Registry.load(default_models_dir()).get("ynet-busi@1.0.0", default_key="ynet-busi")


def test_ynet_busi_registered_weights_verify_and_load() -> None:
    spec = _spec()
    verify_weights(spec)
    assert spec.family == "segcls" and spec.architecture == "ynet" and spec.input_size == 256
    assert 0.0 < spec.threshold < 1.0
    for key in ("n", "auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "dice_mean"):
        assert key in spec.metrics, key
    load_network(spec, "cpu")


def test_ynet_busi_card_says_breast_not_lymph_nodes_research_only() -> None:
    card = _spec().card_path.read_text()
    assert "NOT lymph nodes" in card and "not a medical device" in card.lower()


def test_ynet_busi_holdout_json_has_seed_and_groups() -> None:
    holdout = json.loads((_spec().folder / "holdout.json").read_text())
    assert holdout["seed"] == 2026 and holdout["fraction"] == 0.2
    assert len(holdout["groups"]) == len(set(holdout["groups"])) > 0


@pytest.mark.shared_data
def test_busi_dev_read_image_folder_counts(busi_dev: Path) -> None:
    rows = read_image_folder(busi_dev)
    assert len(rows) == 621
    assert sum(r.label_conflict for r in rows) == 22


@pytest.mark.shared_data
def test_ynet_busi_holdout_evaluation_reproduces_documented_cases(
    busi_dev: Path, tmp_path: Path
) -> None:
    spec = _spec()
    groups = json.loads((spec.folder / "holdout.json").read_text())["groups"]
    known = set(groups) & {r.group for r in read_image_folder(busi_dev)}
    assert known == set(groups)
    subset = sorted(groups)[:4]
    metrics = evaluate(spec, busi_dev, tmp_path / "eval", subset_groups=subset, sheet_cases=2)
    with (DOCS / "cases.csv").open() as handle:
        documented = {row["image"]: row for row in csv.DictReader(handle)}
    with (tmp_path / "eval" / "cases.csv").open() as handle:
        measured = list(csv.DictReader(handle))
    assert metrics["n"] == len(measured) > 0
    for row in measured:
        assert float(row["probability"]) == pytest.approx(
            float(documented[row["image"]]["probability"]), abs=1e-4
        )
        assert float(row["dice"]) == pytest.approx(
            float(documented[row["image"]]["dice"]), abs=1e-3
        )
