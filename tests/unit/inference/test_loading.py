from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from inference.loading import ModelCache, build_network, load_network
from inference.networks.ynet import YNet
from inference.registry import ModelSpec, RegistryError, WeightsMismatch, sha256_file


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
