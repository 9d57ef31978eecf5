from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from inference.registry import (
    ModelSpec,
    NotRegistered,
    Registry,
    RegistryError,
    SelectionRule,
    WeightsMismatch,
    default_models_dir,
    verify_weights,
)
from kernel.settings import Settings
from training.package_families import NetworkFacts, family_spec_fields


def test_registry_load_folder_registers_every_spec(models_dir: Path) -> None:
    registry = Registry.load(models_dir)

    assert [s.ref for s in registry.specs()] == ["tiny-ynet@0.1.0", "tiny-ynet@0.2.0"]
    assert len(registry) == 2


def test_registry_load_missing_folder_is_empty(tmp_path: Path) -> None:
    assert len(Registry.load(tmp_path / "absent")) == 0


def test_registry_get_key_returns_highest_version(models_dir: Path) -> None:
    assert Registry.load(models_dir).get("tiny-ynet", "other").version == "0.2.0"


def test_registry_get_key_at_version_returns_that_version(models_dir: Path) -> None:
    assert Registry.load(models_dir).get("tiny-ynet@0.1.0", "other").version == "0.1.0"


def test_registry_get_default_uses_default_key(models_dir: Path) -> None:
    registry = Registry.load(models_dir)

    assert registry.get("default", "tiny-ynet").version == "0.2.0"
    assert registry.get("default", "tiny-ynet@0.1.0").version == "0.1.0"


@pytest.mark.parametrize("ref", ["unknown", "tiny-ynet@9.9", "Bad Ref!", "default"])
def test_registry_get_unknown_ref_raises_with_known_models(models_dir: Path, ref: str) -> None:
    with pytest.raises(RegistryError, match="not registered|not 'key'") as raised:
        Registry.load(models_dir).get(ref, "missing-default")
    assert isinstance(raised.value, NotRegistered) == (ref != "Bad Ref!")


def _copy_models(models_dir: Path, to: Path) -> Path:
    shutil.copytree(models_dir, to)
    return to


def test_registry_version_held_twice_refused_the_others_kept(models_dir: Path, tmp_path: Path) -> None:
    """A key@version in two folders: neither copy is chosen; the other versions still resolve."""
    folder = _copy_models(models_dir, tmp_path / "models")
    shutil.copytree(folder / "tiny-ynet", folder / "copied-by-hand")
    registry = Registry.load(folder)

    assert [s.ref for s in registry.specs()] == ["tiny-ynet@0.2.0"]
    with pytest.raises(RegistryError, match="tiny-ynet@0.1.0 is registered twice") as raised:
        registry.get("tiny-ynet@0.1.0", "x")
    assert "copied-by-hand" in str(raised.value) and not isinstance(raised.value, NotRegistered)
    assert registry.get("tiny-ynet", "x").version == "0.2.0"
    with pytest.raises(RegistryError, match="registered twice"):
        registry.check_version_free("tiny-ynet", "0.1.0")
    assert sorted(p.folder.name for p in registry.problems()) == ["copied-by-hand", "tiny-ynet"]
    assert all("registered twice" in p.reason for p in registry.problems())


def test_registry_highest_version_held_twice_refuses_the_bare_key(models_dir: Path, tmp_path: Path) -> None:
    """The highest version is ambiguous: a bare key must not fall back to a lower one."""
    folder = _copy_models(models_dir, tmp_path / "models")
    shutil.copytree(folder / "tiny-ynet-0.2.0", folder / "copied-by-hand")

    with pytest.raises(RegistryError, match="tiny-ynet@0.2.0 is registered twice"):
        Registry.load(folder).get("tiny-ynet", "x")


def test_registry_unreadable_spec_left_out_with_why(models_dir: Path, tmp_path: Path) -> None:
    folder = _copy_models(models_dir, tmp_path / "models")
    (folder / "half-copied").mkdir()
    (folder / "half-copied" / "spec.json").write_text('{"key": "tiny-ynet", "version": ')
    registry = Registry.load(folder)

    assert [s.ref for s in registry.specs()] == ["tiny-ynet@0.1.0", "tiny-ynet@0.2.0"]
    [problem] = registry.problems()
    assert problem.folder == (folder / "half-copied").absolute()
    assert problem.reason.startswith("invalid model spec") and "\n" not in problem.reason
    assert registry.get("tiny-ynet@0.2.0", "x").version == "0.2.0"
    # its version is unknown, so the highest version of a bare key cannot be told
    with pytest.raises(RegistryError, match="cannot tell the highest version of 'tiny-ynet'"):
        registry.get("tiny-ynet", "x")


def test_registry_from_settings_duplicate_across_folders(models_dir: Path, tmp_path: Path) -> None:
    """The site's folder (HOME/models) and the packaged one holding one version."""
    settings = Settings(models_dir=models_dir, home=tmp_path / "home")
    shutil.copytree(models_dir / "tiny-ynet", settings.home / "models" / "tiny-ynet-site")
    registry = Registry.from_settings(settings)

    assert [s.ref for s in registry.specs()] == ["tiny-ynet@0.2.0"]
    assert {p.folder for p in registry.problems()} == {
        (models_dir / "tiny-ynet").absolute(), (settings.home / "models" / "tiny-ynet-site").absolute()
    }


def test_registry_from_settings_reads_models_dir(models_dir: Path) -> None:
    settings = Settings(models_dir=models_dir, home=models_dir / "home")

    assert len(Registry.from_settings(settings)) == 2


def test_default_models_dir_is_package_folder() -> None:
    assert default_models_dir().parts[-2:] == ("inference", "models")


def test_spec_paths_resolve_against_its_folder(models_dir: Path, tiny_spec: ModelSpec) -> None:
    assert tiny_spec.weights_path == (models_dir / "tiny-ynet" / "weights.pt").absolute()
    assert tiny_spec.card_path.read_text().startswith("# Tiny Y-Net")


def test_spec_not_loaded_from_folder_paths_raise(make_spec_fields: Callable[..., dict]) -> None:
    spec = ModelSpec.model_validate(make_spec_fields())

    with pytest.raises(RegistryError, match="not loaded from a folder"):
        _ = spec.weights_path


def test_spec_is_frozen(tiny_spec: ModelSpec) -> None:
    with pytest.raises(ValueError, match="frozen"):
        tiny_spec.threshold = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family": "xray"}, "family"),
        ({"threshold": 1.5}, "threshold"),
        ({"weights_sha256": "abc"}, "weights_sha256"),
        ({"weights": "../escape.pt"}, "weights"),
        ({"version": "latest"}, "PEP 440"),
        ({"in_channels": 3}, "in_channels"),
        (
            {
                "input_size": 128,
                "inputs": [
                    {
                        "name": "bmode",
                        "rule": "bmode",
                        "contract": {"channels": 1, "frames": 1, "size": 64, "range": [0, 1]},
                    }
                ],
            },
            "input_size",
        ),
        ({"inputs": []}, "inputs"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_spec_invalid_fields_raise(
    make_spec_fields: Callable[..., dict], overrides: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSpec.model_validate(make_spec_fields(**overrides))


def test_spec_missing_required_field_raises(make_spec_fields: Callable[..., dict]) -> None:
    fields = make_spec_fields()
    del fields["intended_use"]

    with pytest.raises(ValueError, match="intended_use"):
        ModelSpec.model_validate(fields)


def test_spec_load_invalid_json_raises_registry_error(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text('{"key": "x"}')

    with pytest.raises(RegistryError, match="invalid model spec"):
        ModelSpec.load(tmp_path)


def test_spec_save_load_round_trip_is_equal(tmp_path: Path, tiny_spec: ModelSpec) -> None:
    tiny_spec.save(tmp_path)

    assert ModelSpec.load(tmp_path).model_dump() == tiny_spec.model_dump()


def test_verify_weights_matching_sha_returns_path(tiny_spec: ModelSpec) -> None:
    assert verify_weights(tiny_spec) == tiny_spec.weights_path


def test_verify_weights_sha_mismatch_raises(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "tiny-ynet"
    shutil.copytree(models_dir / "tiny-ynet", folder)
    with (folder / "weights.pt").open("ab") as handle:
        handle.write(b"tampered")

    with pytest.raises(WeightsMismatch, match="sha256"):
        verify_weights(ModelSpec.load(folder))


def test_verify_weights_missing_file_raises(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "tiny-ynet"
    shutil.copytree(models_dir / "tiny-ynet", folder)
    (folder / "weights.pt").unlink()

    with pytest.raises(RegistryError, match="missing"):
        verify_weights(ModelSpec.load(folder))


def test_selection_rule_names_every_modality() -> None:
    assert {rule.value for rule in SelectionRule} >= {"bmode", "doppler", "cine", "ceus"}


def _facts(family: str, **extra: object) -> NetworkFacts:
    return NetworkFacts(
        name="test",
        family=family,
        architecture="any",
        backbone="any",
        input_size=64,
        heatmap_layer="features",
        threshold=0.5,
        trained_on="nothing",
        evaluated_on="nothing",
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("family", "extra", "shapes"),
    [
        ("image", {}, [("bmode", 1, 1)]),
        ("dual", {}, [("bmode", 1, 1), ("doppler", 3, 1)]),
        ("dual", {"single_input": True}, [("bmode", 1, 1)]),
        ("video", {}, [("cine", 1, 16)]),
        ("ceus", {}, [("bmode", 1, 1), ("ceus", 1, 5)]),
        ("segcls", {}, [("bmode", 1, 1)]),
    ],
)
def test_spec_family_layouts_validate(family: str, extra: dict, shapes: list) -> None:
    fields = family_spec_fields("k", "0.1.0", _facts(family, **extra), "0" * 64)

    spec = ModelSpec.model_validate(fields)

    found = [(i.rule.value, i.contract.channels, i.contract.frames) for i in spec.inputs]
    assert found == shapes
    assert spec.in_channels == 1


def _with_input(fields: dict, index: int, **contract: object) -> dict:
    inputs = [dict(i, contract=dict(i["contract"])) for i in fields["inputs"]]
    inputs[index]["contract"].update(contract)
    return dict(fields, inputs=inputs)


@pytest.mark.parametrize(
    ("family", "change", "message"),
    [
        ("dual", lambda f: _with_input(f, 1, channels=1), "3 \\(colour\\) channels"),
        ("video", lambda f: _with_input(f, 0, frames=1), "family video takes inputs"),
        ("ceus", lambda f: _with_input(f, 1, channels=2), "1 channel per frame"),
        ("ceus", lambda f: dict(f, inputs=f["inputs"][::-1]), "family ceus takes inputs"),
        (
            "image",
            lambda f: dict(f, inputs=[f["inputs"][0], dict(f["inputs"][0], name="other")]),
            "family image takes inputs",
        ),
        ("dual", lambda f: dict(f, in_channels=3), "first input 'bmode' carries 1"),
        (
            "image",
            lambda f: dict(f, inputs=[dict(f["inputs"][0], rule="doppler")]),
            "family image takes inputs",
        ),
    ],
)
def test_spec_family_layout_violations_raise(family: str, change: Callable, message: str) -> None:
    fields = change(family_spec_fields("k", "0.1.0", _facts(family), "0" * 64))

    with pytest.raises(ValueError, match=message):
        ModelSpec.model_validate(fields)


def _heatmap_input(fields: dict, name: str | None) -> dict:
    heatmap = {k: v for k, v in fields["outputs"]["heatmap"].items() if k != "input"}
    if name is not None:
        heatmap["input"] = name
    return dict(fields, outputs=dict(fields["outputs"], heatmap=heatmap))


@pytest.mark.parametrize("family", ["image", "dual", "video", "ceus", "segcls"])
def test_spec_heatmap_input_defaults_to_first_input(family: str) -> None:
    fields = _heatmap_input(family_spec_fields("k", "0.1.0", _facts(family), "0" * 64), None)

    spec = ModelSpec.model_validate(fields)

    assert spec.outputs.heatmap.input == spec.inputs[0].name
    assert spec.explained_index == 0


def test_spec_heatmap_input_default_is_written_by_save(tmp_path: Path) -> None:
    fields = _heatmap_input(family_spec_fields("k", "0.1.0", _facts("ceus"), "0" * 64), None)
    ModelSpec.model_validate(fields).save(tmp_path)

    assert '"input": "bmode"' in (tmp_path / "spec.json").read_text()


def test_spec_heatmap_input_names_a_later_input() -> None:
    fields = _heatmap_input(family_spec_fields("k", "0.1.0", _facts("ceus"), "0" * 64), "ceus")

    spec = ModelSpec.model_validate(fields)

    assert spec.outputs.heatmap.input == "ceus"
    assert spec.explained_index == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [("doppler", "'doppler' is not one of the inputs"), ("Bad Name", "heatmap.input\n.*pattern")],
)
def test_spec_heatmap_input_not_a_declared_input_raises(name: str, message: str) -> None:
    fields = _heatmap_input(family_spec_fields("k", "0.1.0", _facts("ceus"), "0" * 64), name)

    with pytest.raises(ValueError, match=message):
        ModelSpec.model_validate(fields)


def test_spec_heatmap_input_unknown_in_spec_json_refused_on_load(tmp_path: Path) -> None:
    fields = _heatmap_input(family_spec_fields("k", "0.1.0", _facts("dual"), "0" * 64), "cine")
    (tmp_path / "spec.json").write_text(json.dumps(fields))

    message = r"outputs.heatmap.input 'cine' is not one of the inputs \['bmode', 'doppler'\]"
    with pytest.raises(RegistryError, match=message):
        ModelSpec.load(tmp_path)


@pytest.mark.parametrize(
    ("key", "explained"),
    [("dual-crossattn-phantom", "bmode"), ("ceus-fusion-phantom", "bmode")],
)
def test_packaged_multi_input_specs_name_the_explained_input(key: str, explained: str) -> None:
    text = (default_models_dir() / key / "spec.json").read_text()

    assert json.loads(text)["outputs"]["heatmap"]["input"] == explained
