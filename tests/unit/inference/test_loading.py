from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from inference.loading import ModelCache, build_network, load_network
from inference.networks.ceus import CeusFusion
from inference.networks.classifier import ImageClassifier
from inference.networks.dual import DualCrossAttention
from inference.networks.hybrid import HybridSwin
from inference.networks.video import R3D, R2Plus1D, TemporalInterlaceNet
from inference.networks.ynet import YNet
from inference.registry import ModelSpec, RegistryError, WeightsMismatch, sha256_file
from training.package_families import NetworkFacts, family_spec_fields


def test_build_network_ynet_uses_spec_channels(tiny_spec: ModelSpec) -> None:
    network = build_network(tiny_spec)

    assert isinstance(network, YNet)
    assert network.unet.conv_0.conv_0.conv.in_channels == 1


def test_build_network_unknown_architecture_raises(tiny_spec: ModelSpec) -> None:
    spec = tiny_spec.model_copy(update={"architecture": "resnet"})

    with pytest.raises(RegistryError, match="unknown architecture 'resnet'"):
        build_network(spec)


def test_load_network_verified_weights_eval_mode_same_values(tiny_spec: ModelSpec) -> None:
    network = load_network(tiny_spec, "cpu")
    saved = torch.load(tiny_spec.weights_path, weights_only=True)

    assert not network.training
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_load_network_tampered_weights_raises(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "tiny-ynet"
    shutil.copytree(models_dir / "tiny-ynet", folder)
    (folder / "weights.pt").write_bytes(b"not a checkpoint")

    with pytest.raises(WeightsMismatch):
        load_network(ModelSpec.load(folder), "cpu")


def test_load_network_weights_of_other_shape_raises(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "tiny-ynet"
    shutil.copytree(models_dir / "tiny-ynet", folder)
    torch.save({"unexpected": torch.zeros(1)}, folder / "weights.pt")
    spec = ModelSpec.load(folder)
    spec = spec.model_copy(update={"weights_sha256": sha256_file(folder / "weights.pt")})
    spec.save(folder)

    with pytest.raises(RegistryError, match="do not fit"):
        load_network(ModelSpec.load(folder), "cpu")


def test_model_cache_same_spec_loads_once(tiny_spec: ModelSpec) -> None:
    cache = ModelCache()

    first = cache.get(tiny_spec, "cpu")
    second = cache.get(tiny_spec, "cpu")

    assert first is second
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0


def _family_spec(
    family: str, architecture: str, backbone: str, layer: str = "features", **extra: object
) -> ModelSpec:
    facts = NetworkFacts(
        name="test",
        family=family,
        architecture=architecture,
        backbone=backbone,
        input_size=int(extra.pop("input_size", 64)),  # type: ignore[call-overload]
        heatmap_layer=layer,
        threshold=0.5,
        trained_on="nothing",
        evaluated_on="nothing",
        **extra,  # type: ignore[arg-type]
    )
    return ModelSpec.model_validate(family_spec_fields("test-model", "0.1.0", facts, "0" * 64))


@pytest.mark.parametrize(
    ("family", "architecture", "backbone", "extra", "expected"),
    [
        ("segcls", "hybrid-swin", "swin-f12", {}, HybridSwin),
        ("image", "classifier", "squeezenet1_1", {}, ImageClassifier),
        ("dual", "dual-crossattn", "resnet10-w8", {}, DualCrossAttention),
        ("video", "tin", "resnet10-w8", {"frames": 4}, TemporalInterlaceNet),
        ("video", "r2plus1d", "r2plus1d_10", {"frames": 4}, R2Plus1D),
        ("video", "r3d", "resnet10-w8", {"frames": 4}, R3D),
        ("ceus", "ceus-fusion", "resnet10-w8", {}, CeusFusion),
    ],
)
def test_build_network_every_architecture_builds_its_class(
    family: str, architecture: str, backbone: str, extra: dict, expected: type
) -> None:
    assert isinstance(
        build_network(_family_spec(family, architecture, backbone, **extra)), expected
    )


def test_build_network_dual_with_bmode_only_builds_single_input_variant() -> None:
    network = build_network(
        _family_spec("dual", "dual-crossattn", "resnet10-w8", single_input=True)
    )

    assert isinstance(network, DualCrossAttention) and network.single_input


def test_build_network_tin_takes_frames_from_contract() -> None:
    network = build_network(_family_spec("video", "tin", "resnet10-w8", frames=6))

    assert isinstance(network, TemporalInterlaceNet) and network.frames == 6


def test_build_network_ceus_takes_key_frames_from_contract() -> None:
    network = build_network(_family_spec("ceus", "ceus-fusion", "resnet10-w8", frames=3))

    assert isinstance(network, CeusFusion) and network.ceus_frames == 3


def test_build_network_architecture_of_other_family_raises() -> None:
    spec = _family_spec("image", "tin", "resnet10-w8")

    with pytest.raises(RegistryError, match="serves family 'video'"):
        build_network(spec)


def test_build_network_unknown_backbone_raises_registry_error() -> None:
    with pytest.raises(RegistryError, match="unknown backbone 'alexnet'"):
        build_network(_family_spec("image", "classifier", "alexnet"))


def test_build_network_input_smaller_than_backbone_needs_raises() -> None:
    with pytest.raises(RegistryError, match="needs input_size >= 75"):
        build_network(_family_spec("image", "classifier", "inception_v3", input_size=64))


def test_build_network_hybrid_size_not_multiple_of_32_raises() -> None:
    with pytest.raises(RegistryError, match="multiple of 32"):
        build_network(_family_spec("segcls", "hybrid-swin", "swin-f12", input_size=48))
