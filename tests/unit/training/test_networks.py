"""training/networks.py and `lnm-node networks`: one name per network, the builder's own."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from inference.loading import ARCHITECTURES, build_network
from inference.networks.backbones import CEUS_BACKBONES, TORCHVISION_BACKBONES
from training.networks import NETWORKS, draft_spec

runner = CliRunner()


def test_every_builder_is_listed_once_and_nothing_else() -> None:
    assert sorted(n.name for n in NETWORKS) == sorted(ARCHITECTURES)


def test_networks_json_lists_families_inputs_and_literature_backbones() -> None:
    result = runner.invoke(app, ["networks", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(TORCHVISION_BACKBONES) <= set(rows["classifier"]["backbones"])
    assert len(TORCHVISION_BACKBONES) == 7
    assert rows["dual-crossattn"]["inputs"] == ["bmode", "doppler"]
    assert len(rows["dual-crossattn"]["backbones"]) > 1
    assert {rows[n]["family"] for n in ("tin", "r2plus1d", "r3d")} == {"video"}
    assert set(CEUS_BACKBONES) <= set(rows["ceus-fusion"]["backbones"])
    assert {"ynet", "hybrid-swin"} <= set(rows)


@pytest.mark.parametrize("backbone", CEUS_BACKBONES)
def test_ceus_fusion_builds_on_each_literature_encoder(backbone: str) -> None:
    spec = draft_spec("ceus-test", "ceus-fusion", backbone, size=64)
    assert spec.architecture == "ceus-fusion" and spec.backbone == backbone
    assert build_network(spec).gradcam_layer == spec.outputs.heatmap.layer  # type: ignore[union-attr]
