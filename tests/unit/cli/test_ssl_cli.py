"""`lnm-node pretrain-ssl`: frames from an image folder and a DICOM folder, a hold-out left
out, one epoch, an encoder that `network_maker` loads."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from phantom.us_dicom import write_us_study
from tests.unit.training.conftest import write_image_folder
from training.exclusion import read_excluded_groups
from training.networks import draft_spec
from training.retrain import network_maker
from training.ssl_frames import collect_frames, load_frames

runner = CliRunner()


def test_pretrain_ssl_writes_encoder_and_record(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "busi", count=6)
    write_us_study(tmp_path / "dicom", seed=2, frames=3, rows=96, cols=128)
    holdout = tmp_path / "holdout.json"
    holdout.write_text(json.dumps({"groups": ["g0"]}))
    out = tmp_path / "ssl"

    result = runner.invoke(app, ["pretrain-ssl", str(out), "--network", "hybrid-swin",
                                 "--backbone", "swin-f12", "--size", "64", "--busi", str(images),
                                 "--dicom", str(tmp_path / "dicom"), "--exclude-groups",
                                 str(holdout), "--epochs", "1", "--batch-size", "4",
                                 "--seconds", "600"])  # fmt: skip

    assert result.exit_code == 0, result.output
    record = json.loads((out / "ssl.json").read_text())
    sources = {s["name"]: s for s in record["frames"]["sources"]}
    assert sources["busi"]["frames"] == 4 and sources["busi"]["excluded"] == 2
    assert sources["dicom:dicom"]["frames"] == 3
    assert record["excluded_groups"] == 1 and record["epochs"] == 1
    spec = draft_spec("ssl-encoder", "hybrid-swin", "swin-f12", size=64)
    network_maker(spec, encoder=out / "encoder.pt")()


def test_pretrain_ssl_without_frames_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pretrain-ssl", str(tmp_path / "ssl"), "--size", "64"])

    assert result.exit_code == 1
    assert "no frame" in result.output


def test_frames_only_packs_the_frames_that_pretraining_then_reads_back(tmp_path: Path) -> None:
    """`--frames-only` writes OUT/frames.npz and trains nothing; `--frames` pretrains on it
    (another grid: resized) and records the pack's hold-out in ssl.json."""
    images = write_image_folder(tmp_path / "busi", count=6)
    holdout = tmp_path / "holdout.json"
    holdout.write_text(json.dumps({"groups": ["g0"]}))
    packed = tmp_path / "frames"
    result = runner.invoke(app, ["pretrain-ssl", str(packed), "--size", "32", "--busi",
                                 str(images), "--exclude-groups", str(holdout), "--frames-only"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (packed / "frames.npz").is_file() and not (packed / "encoder.pt").exists()
    direct = collect_frames(draft_spec("x", "hybrid-swin", "swin-f12", 32), [("busi", images)],
                            [], read_excluded_groups([holdout]))  # fmt: skip
    frames, _ = load_frames(packed / "frames.npz", 32)
    assert (frames.inputs - direct.inputs).abs().max() <= 1.0 / 255 / 0.25 / 2 + 1e-6

    out = tmp_path / "ssl"
    result = runner.invoke(app, ["pretrain-ssl", str(out), "--backbone", "swin-f12", "--size",
                                 "64", "--frames", str(packed / "frames.npz"), "--epochs", "1",
                                 "--batch-size", "4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "ssl.json").read_text())
    assert record["frames"]["total"] == 4 and record["input_size"] == 64
    assert record["excluded_groups"] == 1 and record["frames_pack"].endswith("frames.npz")
