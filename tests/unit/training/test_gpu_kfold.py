"""The GPU k-fold entry point's verbs, run in process on CPU on a tiny pack (its dry run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from cli.main import app
from tests.unit.training.conftest import write_image_folder
from training.exclusion import read_excluded_groups
from training.gpu_kfold import CONFIGURATIONS, main, select
from training.kfold import POOLED_FILE, PREDICTIONS_FILE
from training.pack import load_arrays, pack_exclusion, pack_image_folder
from training.retrain import ENCODER_FILE
from training.ssl_frames import load_frames

runner = CliRunner()


def test_gpu_kfold_pretrain_then_pretrained_fold_writes_predictions(
    image_folder: Path, tmp_path: Path
) -> None:
    pack = pack_image_folder(image_folder, tmp_path / "tiny.npz", 64)
    common = ["--busi", str(pack), "--ddti", str(pack), "--work", str(tmp_path / "work"),
              "--device", "cpu", "--size", "64", "--epochs", "1", "--batch-size", "4", "--folds", "2"]  # fmt: skip
    assert main(["pretrain", *common]) == 0
    assert (tmp_path / "work" / "pretrain" / ENCODER_FILE).is_file()
    assert main(["fold", *common, "--configuration", "hybrid-ddti", "--fold", "1"]) == 0
    with np.load(tmp_path / "work" / "hybrid-ddti" / "fold_1" / PREDICTIONS_FILE) as saved:
        assert len(saved["probability"]) == len(saved["index"]) > 0


def test_load_arrays_other_size_resized_limit_keeps_both_classes(
    image_folder: Path, tmp_path: Path
) -> None:
    pack = pack_image_folder(image_folder, tmp_path / "tiny.npz", 64)
    arrays = load_arrays(pack, 32, limit=4)
    assert arrays.images.shape == (4, 32, 32) and set(arrays.malignant.tolist()) == {0, 1}


def test_run_leaves_the_holdout_out_selects_on_out_of_fold_and_packages_here(
    tmp_path: Path,
) -> None:
    """The GPU entry point's whole round trip, on CPU: an SSL pretraining from a frames pack,
    folds without the hold-out, fp16 weights of the selected configuration, then `unpack` and
    `lnm-node train --package --members all` resuming every fold into one ensemble here."""
    folder = write_image_folder(tmp_path / "images", count=20, size=64)
    holdout = tmp_path / "holdout.json"
    holdout.write_text(json.dumps({"groups": ["g0", "g1"]}))  # case00-case03
    pack = pack_image_folder(folder, tmp_path / "busi.npz", 64)  # stays here
    travels = pack_image_folder(folder, tmp_path / "busi-kept.npz", 64,
                                read_excluded_groups([holdout]), png=True)  # fmt: skip
    assert pack_exclusion(travels).excluded_cases == 4
    kept = load_arrays(travels, 64)
    assert len(kept.images) == 16 and not {"g0", "g1"} & set(kept.groups.tolist())
    frames_dir = tmp_path / "ssl-frames"
    made = runner.invoke(app, ["pretrain-ssl", str(frames_dir), "--busi", str(folder), "--size",
                               "64", "--exclude-groups", str(holdout), "--frames-only"])  # fmt: skip
    assert made.exit_code == 0, made.output
    frames, record = load_frames(frames_dir / "frames.npz", 64)
    assert frames.inputs.shape == (16, 1, 64, 64) and record["excluded_groups"] == 2

    out, work = tmp_path / "out", tmp_path / "work"
    common = ["--busi", str(travels), "--ddti", str(pack), "--frames", str(frames_dir / "frames.npz"),
              "--exclude-groups", str(holdout), "--device", "cpu", "--size", "64", "--epochs",
              "1", "--batch-size", "4", "--ssl-batch-size", "8", "--folds", "2",
              "--ema-decay", "0.9"]  # fmt: skip
    status = main(["run", *common, "--configurations", "ynet,hybrid-ssl", "--out", str(out),
                   "--work", str(work), "--budget-s", "600"])  # fmt: skip
    assert status == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["excluded"]["cases"] == 4 and summary["pretrainings"] == ["ssl"]
    ssl = json.loads((work / "ssl" / "ssl.json").read_text())
    assert [(s["name"], s["frames"]) for s in ssl["frames"]["sources"]] == [
        ("busi", 16), ("ddti", 20), ("busi", 16)]  # the last: the frames pack
    assert set(summary["configurations"]) == {"ynet", "hybrid-ssl"}
    selected = summary["selected"]
    fold_summary = json.loads((work / selected / "fold_1" / "train.json").read_text())
    assert fold_summary["config"]["ema_decay"] == 0.9  # passed on to every fold process
    challenger = summary["selection_tests"]["hybrid-ssl"]  # paired DeLong against the Y-Net
    beaten = challenger["difference"] > 0 and challenger["p_value"] < 0.05
    assert selected == ("hybrid-ssl" if beaten else "ynet")
    weights = sorted((out / "weights").glob("*.pt"))
    assert [p.name for p in weights] == [f"{selected}-fold_0.pt", f"{selected}-fold_1.pt"]
    assert all(v.dtype != torch.float32 for v in torch.load(weights[0], weights_only=True).values())

    here = tmp_path / "here"
    assert main(["unpack", "--out", str(out), "--work", str(here)]) == 0
    with np.load(here / selected / "oof.npz") as pooled:
        names = [str(n) for n in pooled["names"]]
    assert len(names) == 16 and not any(f"case0{i}" in n for n in names for i in range(4))
    assert json.loads((here / "ssl" / "ssl.json").read_text())["excluded_groups"] == 2
    network = CONFIGURATIONS[selected].network
    home = tmp_path / "home"
    packaged = runner.invoke(app, ["train", "site-candidate", str(pack), "--out",
                                   str(here / selected), "--network", network, "--size", "64",
                                   "--folds", "2", "--exclude-groups", str(holdout), "--package",
                                   "1.0.0", "--members", "all", "--home", str(home)])  # fmt: skip
    assert packaged.exit_code == 0, packaged.output
    assert "an ensemble of all 2 folds" in packaged.output
    model = home / "models" / "site-candidate-1.0.0"
    assert json.loads((model / "holdout.json").read_text())["groups"] == ["g0", "g1"]


def test_probe_times_each_network_alone_and_plans_the_folds(
    image_folder: Path, tmp_path: Path
) -> None:
    pack = pack_image_folder(image_folder, tmp_path / "tiny.npz", 64)
    assert main(["probe", "--ddti", str(pack), "--limit", "6", "--batch-size", "4", "--device",
                 "cpu", "--configurations", "ynet,hybrid", "--budget-s", "420", "--out",
                 str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 0  # fmt: skip
    record = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert set(record["seconds_per_epoch_alone"]) == {"256", "128"}
    assert set(record["seconds_per_epoch_alone"]["128"]) == {"ynet", "hybrid-swin"}
    assert all(s > 0 for s in record["seconds_per_epoch_alone"]["256"].values())
    options = record["options"]
    assert list(options) == ["5x256", "3x256", "5x128", "3x128"]
    five, three = options["5x256"]["epochs_expected"], options["3x256"]["epochs_expected"]
    assert three["hybrid"] >= five["hybrid"] and five["ynet"] >= five["hybrid"]
    chosen = options[f"{record['planned_folds']}x{record['planned_size']}"]
    enough = [o for o in options.values() if min(o["epochs_expected"].values()) >= 30]
    assert chosen == (enough[0] if enough else options["3x128"])


def _pooled_run(work: Path, name: str, malignant: np.ndarray, probability: np.ndarray) -> None:
    """A run folder holding only its pooled out-of-fold arrays, cases in shuffled order."""
    order = np.random.default_rng(0).permutation(len(malignant))
    (work / name).mkdir(parents=True)
    np.savez(work / name / POOLED_FILE, index=order, malignant=malignant[order],
             probability=probability[order])  # fmt: skip


def test_select_keeps_the_ynet_unless_a_configuration_beats_it_significantly(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    y = np.array([1] * 60 + [0] * 140)
    noise = rng.normal(size=len(y))
    ynet = 0.8 * y + noise  # AUC about 0.71
    slightly = ynet + 0.15 * y + 0.3 * rng.normal(size=len(y))  # a little higher, within noise
    clearly = 2.5 * y + noise  # AUC about 0.96
    for name, scores in (("ynet", ynet), ("hybrid", slightly), ("hybrid-ddti", clearly)):
        _pooled_run(tmp_path, name, y, 1 / (1 + np.exp(-scores)))
    auc = {"ynet": 0.71, "hybrid": 0.74, "hybrid-ddti": 0.96}
    summary = {name: {"auc": value} for name, value in auc.items()}

    without_clear = {name: summary[name] for name in ("ynet", "hybrid")}
    selected, tests = select(without_clear, tmp_path)
    assert selected == "ynet"  # the best AUC, but not significantly better
    assert tests["hybrid"]["difference"] > 0 and tests["hybrid"]["p_value"] >= 0.05

    selected, tests = select(summary, tmp_path)
    assert selected == "hybrid-ddti" and tests["hybrid-ddti"]["p_value"] < 0.05

    _pooled_run(tmp_path, "hybrid-ssl", y[:-10], 1 / (1 + np.exp(-clearly[:-10])))
    selected, tests = select({**summary, "hybrid-ssl": {"auc": 0.99}}, tmp_path)
    assert selected == "hybrid-ddti" and "different cases" in tests["hybrid-ssl"]["error"]

    no_reference = {name: summary[name] for name in ("hybrid", "hybrid-ddti")}
    assert select(no_reference, tmp_path) == ("hybrid-ddti", {})  # the best pooled AUC
    assert select({}, tmp_path) == (None, {})
