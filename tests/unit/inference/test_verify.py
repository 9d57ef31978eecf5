from __future__ import annotations

import shutil
from pathlib import Path

import torch

from inference.registry import ModelSpec, Registry
from inference.verify import dummy_input, verify_model, verify_models


def test_verify_models_tmp_registry_all_ok_with_shapes(models_dir: Path) -> None:
    results = verify_models(Registry.load(models_dir), "cpu")

    assert [r.ref for r in results] == ["tiny-ynet@0.1.0", "tiny-ynet@0.2.0"]
    for result in results:
        assert result.ok and result.error is None
        assert result.segmentation_shape == (1, 1, 64, 64)
        assert result.classification_shape == (1, 1)
        assert result.heatmap_shape == (1, 1, 64, 64)
        assert result.forward_seconds > 0.0 and result.gradcam_seconds > 0.0


def test_verify_models_empty_registry_returns_empty_list() -> None:
    assert verify_models(Registry([]), "cpu") == []


def test_verify_model_tampered_weights_reports_error(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "tiny-ynet"
    shutil.copytree(models_dir / "tiny-ynet", folder)
    with (folder / "weights.pt").open("ab") as handle:
        handle.write(b"x")

    result = verify_model(ModelSpec.load(folder), "cpu")

    assert not result.ok
    assert "sha256" in (result.error or "")


def test_verify_model_wrong_heatmap_layer_reports_error(tiny_spec: ModelSpec) -> None:
    outputs = tiny_spec.outputs.model_copy(
        update={"heatmap": tiny_spec.outputs.heatmap.model_copy(update={"layer": "missing"})}
    )
    spec = tiny_spec.model_copy(update={"outputs": outputs})

    result = verify_model(spec, "cpu")

    assert not result.ok and "not a module" in (result.error or "")


def test_dummy_input_follows_contract_and_is_seeded(tiny_spec: ModelSpec) -> None:
    x = dummy_input(tiny_spec)

    assert x.shape == (1, 1, 64, 64)
    torch.testing.assert_close(x, dummy_input(tiny_spec))
