from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from inference.loading import build_network
from inference.registry import Family, ModelSpec, Registry
from inference.verify import dummy_input, verify_model, verify_models
from training.package_families import NetworkFacts, family_spec_fields, package_network


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
    (x,) = dummy_input(tiny_spec)

    assert x.shape == (1, 1, 64, 64)
    torch.testing.assert_close(x, dummy_input(tiny_spec)[0])


# (family, architecture, backbone, heatmap layer, frames, dummy input shapes)
FAMILIES = [
    ("image", "classifier", "squeezenet1_1", "features", None, [(1, 1, 64, 64)]),
    (
        "dual",
        "dual-crossattn",
        "resnet10-w8",
        "bmode_projection",
        None,
        [(1, 1, 64, 64), (1, 3, 64, 64)],
    ),
    ("video", "tin", "resnet10-w8", "to_clip", 4, [(1, 1, 4, 64, 64)]),
    ("ceus", "ceus-fusion", "resnet10-w8", "bmode_features", 5, [(1, 1, 64, 64), (1, 5, 64, 64)]),
    ("segcls", "hybrid-swin", "swin-f12", "encoder.encoder10", None, [(1, 1, 64, 64)]),
]


def _facts(
    family: str, architecture: str, backbone: str, layer: str, frames: int | None
) -> NetworkFacts:
    return NetworkFacts(
        name=f"tiny {architecture}",
        family=family,
        architecture=architecture,
        backbone=backbone,
        input_size=64,
        heatmap_layer=layer,
        threshold=0.5,
        trained_on="nothing: seeded random weights for tests",
        evaluated_on="nothing",
        frames=frames,
    )


@pytest.fixture(scope="module")
def family_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with one seeded random model per family (besides Y-Net)."""
    root = tmp_path_factory.mktemp("family-models")
    for family, architecture, backbone, layer, frames, _ in FAMILIES:
        facts = _facts(family, architecture, backbone, layer, frames)
        draft = ModelSpec.model_validate(
            family_spec_fields(f"tiny-{family}", "0.1.0", facts, "0" * 64)
        )
        torch.manual_seed(0)
        package_network(build_network(draft), root / draft.key, draft.key, draft.version, facts)
    return root


def test_verify_models_every_family_ok_with_family_shapes(family_models: Path) -> None:
    results = {r.ref: r for r in verify_models(Registry.load(family_models), "cpu")}

    assert len(results) == len(FAMILIES)
    for family, *_ in FAMILIES:
        result = results[f"tiny-{family}@0.1.0"]
        assert result.ok, result.error
        assert result.classification_shape == (1, 1)
        assert result.heatmap_shape == (1, 1, 64, 64)
        expected_seg = (1, 1, 64, 64) if family == "segcls" else ()
        assert result.segmentation_shape == expected_seg


@pytest.mark.parametrize(("family", "shapes"), [(f[0], f[5]) for f in FAMILIES])
def test_dummy_input_every_family_follows_forward_convention(
    family_models: Path, family: str, shapes: list[tuple[int, ...]]
) -> None:
    spec = ModelSpec.load(family_models / f"tiny-{family}")

    inputs = dummy_input(spec)

    assert [tuple(x.shape) for x in inputs] == shapes
    for got, again in zip(inputs, dummy_input(spec), strict=True):
        torch.testing.assert_close(got, again)


def test_verify_model_family_network_of_wrong_output_reports_error(family_models: Path) -> None:
    spec = ModelSpec.load(family_models / "tiny-image")
    spec = spec.model_copy(update={"family": Family.SEGCLS})

    result = verify_model(spec, "cpu")

    assert not result.ok and "serves family 'image'" in (result.error or "")


def test_verify_model_explains_a_later_input_in_forward_order(
    tmp_path: Path, family_models: Path
) -> None:
    folder = tmp_path / "tiny-ceus"
    shutil.copytree(family_models / "tiny-ceus", folder)
    fields = json.loads((folder / "spec.json").read_text())
    fields["outputs"]["heatmap"] = {"method": "gradcam", "layer": "ceus_features", "input": "ceus"}
    (folder / "spec.json").write_text(json.dumps(fields))
    spec = ModelSpec.load(folder)

    result = verify_model(spec, "cpu")

    assert spec.explained_index == 1
    assert result.ok, result.error  # CeusFusion refuses its inputs swapped
    assert result.heatmap_shape == (1, 1, 64, 64)
