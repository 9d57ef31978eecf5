"""`lnm-node models list --json` with a model of every family registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.integration.families.conftest import FAMILY_KEYS

pytestmark = pytest.mark.integration


def test_models_list_json_every_family_key_version_backbone_inputs_outputs(
    tmp_path: Path, family_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LNM_MODELS_DIR", str(family_models_dir))

    result = CliRunner().invoke(app, ["models", "list", "--json", "--home", str(tmp_path)])

    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert {key: row["family"] for key, row in rows.items()} == {
        key: family for family, key in FAMILY_KEYS.items()
    }
    rules = {key: [i["rule"] for i in row["inputs"]] for key, row in rows.items()}
    assert rules == {
        "tiny-ynet": ["bmode"],
        "tiny-dual": ["bmode", "doppler"],
        "tiny-video": ["cine"],
        "tiny-ceus": ["bmode", "ceus"],
    }
    assert rows["tiny-video"]["inputs"][0]["contract"]["frames"] == 16
    assert rows["tiny-ceus"]["inputs"][1]["contract"]["frames"] == 5
    for row in rows.values():
        assert row["version"] == "0.1.0" and row["backbone"]
        assert set(row["outputs"]) == {"segments", "finding", "probability", "measurements", "heatmap"}
        assert row["outputs"]["heatmap"]["input"] == row["inputs"][0]["name"]  # the default
    assert rows["tiny-ynet"]["outputs"]["segments"] and not rows["tiny-dual"]["outputs"]["segments"]
