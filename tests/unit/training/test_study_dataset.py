"""Study-level datasets: inference's selection feeds training, bit for bit; nothing is guessed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from db.labels import LabelRecord
from db.models import LabelLevel, PathologyOutcome
from inference.loading import build_network
from inference.registry import ModelSpec
from inference.runner import run_model
from phantom.study import write_phantom_study
from training.coverage import LeftOut
from training.groups import GroupKey
from training.kfold import frozen_folds
from training.networks import draft_spec
from training.retrain import load_cases
from training.study_dataset import (
    build_study_dataset,
    changed_files,
    labelled_units,
    load_study_arrays,
    write_study_dataset,
)
from training.trainer import TensorBatches, TrainConfig

KEY = GroupKey(b"site secret")


def _recording(network: nn.Module) -> list[list[torch.Tensor]]:
    """Record the tensors every forward call of ``network`` receives (a forward pre-hook)."""
    seen: list[list[torch.Tensor]] = []
    network.register_forward_pre_hook(
        lambda _module, args: seen.append([x.detach().clone() for x in args])
    )
    return seen


def _record(uid: str, outcome: str, level: LabelLevel = LabelLevel.STUDY) -> LabelRecord:
    return LabelRecord(level, uid, PathologyOutcome(outcome), None, None)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[LabelRecord]]:
    """Four phantom studies (two ambiguous), the last without Doppler; their labels."""
    root = tmp_path_factory.mktemp("studies")
    records = []
    for seed in range(4):
        _, truth = write_phantom_study(
            root / f"s{seed}", seed, malignant=seed % 2 == 1, with_doppler=seed != 3,
            rows=96, cols=128, cine_frames=6, ceus_frames=5, ambiguous=seed < 2,
        )  # fmt: skip
        records.append(_record(truth.study_instance_uid, "metastatic" if seed % 2 else "benign"))
    return root, records


def _spec(network: str, frames: int | None = None) -> ModelSpec:
    return draft_spec("t", network, "resnet10-w8", size=32, frames=frames)


@pytest.mark.parametrize(("network", "frames"), [("dual-crossattn", None), ("tin", 4),
                                                  ("ceus-fusion", 3)])  # fmt: skip
def test_trainer_loader_and_run_model_feed_bit_identical_tensors(
    studies: tuple[Path, list[LabelRecord]], tmp_path: Path, network: str, frames: int | None
) -> None:
    root, records = studies
    spec = _spec(network, frames)
    units, _ = labelled_units(sorted(root.rglob("*.dcm")), records, KEY)
    manifest, tensors = build_study_dataset(spec, units, "test", k=2, seed=0)
    write_study_dataset(manifest, tensors, tmp_path / "ds")
    cases, _ = load_cases(tmp_path / "ds", spec)
    loader = TensorBatches(cases, TrainConfig(batch_size=64, augment=False))
    (inputs, _, _, _) = next(iter(loader.epoch()))  # one shuffled batch holding every case
    order = {name: i for i, name in enumerate(cases.names)}
    network = build_network(spec)
    seen = _recording(network)
    unit = units[0]
    run_model(spec, network, unit.paths, "cpu")
    fed = seen[0]
    position = [i for i in range(len(inputs[0]))
                if all(torch.equal(x[i], y[0]) for x, y in zip(inputs, fed, strict=True))]  # fmt: skip
    assert position, "no training case equals what run_model fed the network"
    stored = [torch.from_numpy(x[order[unit.uid]]) for x in cases.inputs]
    assert all(torch.equal(a, b[0]) for a, b in zip(stored, fed, strict=True))


def test_study_without_an_input_excluded_with_reason_folds_frozen(
    studies: tuple[Path, list[LabelRecord]], tmp_path: Path
) -> None:
    root, records = studies
    spec = _spec("dual-crossattn")
    records = [*records, _record("1.2.3.4", "benign"), _record(records[0].uid, "unknown")]
    units, left_out = labelled_units(sorted(root.rglob("*.dcm")), records, KEY)
    assert left_out == LeftOut(labels_without_study=(("study", "1.2.3.4"),),
                               labels_outcome_unknown=(("study", records[0].uid),))  # fmt: skip
    manifest, tensors = build_study_dataset(spec, units, "test", k=2, seed=0, left_out=left_out)
    assert manifest["n"] == 3 and manifest["n_excluded"] == 1
    assert manifest["fold_balance"]["thin_folds"] == [0, 1]  # 3 studies in 2 folds
    assert "no colour Doppler image" in manifest["excluded"][0]["reason"]
    assert all(len(f["sha256"]) == 64 for row in manifest["rows"] for f in row["files"])
    keys = {KEY.legacy(f"SYN00000{i}") for i in range(3)}  # keyed; no issuer here
    assert {row["group"] for row in manifest["rows"]} == keys
    write_study_dataset(manifest, tensors, tmp_path / "ds")
    for written in ("manifest.json", "manifest.csv"):  # the PatientID was the group, in clear
        assert "SYN00000" not in (tmp_path / "ds" / written).read_text()
    written = json.loads((tmp_path / "ds" / "manifest.json").read_text())["left_out"]
    assert written["labels_without_study"] == {"n": 1, "labels": [{"level": "study",
                                                                   "uid": "1.2.3.4"}]}  # fmt: skip
    assert (
        "1.2.3.4,study,,,,,label matches no study" in (tmp_path / "ds" / "manifest.csv").read_text()
    )
    arrays, folds = load_study_arrays(tmp_path / "ds", spec)
    assert len(arrays.malignant) == 3 and arrays.inputs[1].shape[1:] == (3, 32, 32)
    tests = frozen_folds(folds)
    assert sorted(np.concatenate(tests).tolist()) == [0, 1, 2]
    assert [r["fold"] for r in manifest["rows"]] == folds.tolist()
    assert changed_files(manifest) == []


def test_dataset_of_other_inputs_refused(
    studies: tuple[Path, list[LabelRecord]], tmp_path: Path
) -> None:
    root, records = studies
    units, _ = labelled_units(sorted(root.rglob("*.dcm")), records, KEY)
    manifest, tensors = build_study_dataset(_spec("dual-crossattn"), units, "t", k=2, seed=0)
    write_study_dataset(manifest, tensors, tmp_path / "ds")
    with pytest.raises(ValueError, match="rebuild the dataset"):
        load_cases(tmp_path / "ds", _spec("tin", 4))
    np.savez(tmp_path / "ds" / "inputs.npz", **{k: v + 1 for k, v in tensors.items()})
    with pytest.raises(ValueError, match="not the file its manifest froze"):
        load_cases(tmp_path / "ds", _spec("dual-crossattn"))


def test_series_level_label_takes_only_that_series(
    studies: tuple[Path, list[LabelRecord]],
) -> None:
    root, _ = studies
    import pydicom

    series = str(pydicom.dcmread(root / "s0" / "bmode.dcm").SeriesInstanceUID)
    units, _ = labelled_units(sorted(root.rglob("*.dcm")), [_record(series, "benign",
                                                                     LabelLevel.SERIES)], KEY)  # fmt: skip
    assert [p.name for p in units[0].paths] == ["bmode.dcm"]


def test_a_file_belongs_to_its_most_specific_label_never_to_two_units(
    studies: tuple[Path, list[LabelRecord]],
) -> None:
    """A study labelled benign whose Doppler series is labelled metastatic (another node):
    the Doppler image was in both units, under both outcomes (found by a probe)."""
    root, records = studies
    import pydicom

    doppler = str(pydicom.dcmread(root / "s0" / "doppler.dcm").SeriesInstanceUID)
    study = records[0]
    units, left_out = labelled_units(
        sorted(root.rglob("*.dcm")), [study, _record(doppler, "metastatic", LabelLevel.SERIES)], KEY
    )
    by_uid = {unit.uid: unit for unit in units}
    assert [p.name for p in by_uid[doppler].paths] == ["doppler.dcm"]
    assert by_uid[doppler].malignant == 1 and by_uid[study.uid].malignant == 0
    assert "doppler.dcm" not in [p.name for p in by_uid[study.uid].paths]
    assert left_out.labels_overridden == () and left_out.labels_without_study == ()


def test_studies_without_a_label_listed_by_uid_with_no_patient_identity(
    studies: tuple[Path, list[LabelRecord]], tmp_path: Path
) -> None:
    """Studies received but not labelled were in no list: a site could not see them (found
    last session)."""
    root, records = studies
    spec = _spec("dual-crossattn")
    units, left_out = labelled_units(sorted(root.rglob("*.dcm")), records[:3], KEY)
    assert left_out.studies_without_label == (records[3].uid,)
    assert left_out.summary() == "left out: 1 study without a label (manifest.json left_out)"
    manifest, tensors = build_study_dataset(spec, units, "t", k=2, seed=0, left_out=left_out)
    write_study_dataset(manifest, tensors, tmp_path / "ds")
    text = (tmp_path / "ds" / "manifest.json").read_text()
    assert json.loads(text)["left_out"]["studies_without_label"] == {
        "n": 1, "uids": [records[3].uid]}  # fmt: skip
    assert "SYN00000" not in text
