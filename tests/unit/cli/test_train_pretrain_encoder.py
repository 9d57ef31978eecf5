"""`train --pretrain-encoder FILE --patience N --ema-decay D`: every fold starts from a saved
shared encoder; the run records the file, each fold its settings and why it stopped, and draws
its learning curves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from cli.main import app
from inference.loading import build_network
from tests.unit.training.conftest import write_image_folder
from training.networks import draft_spec

runner = CliRunner()


def _said(output: str) -> str:
    """The output on one line (rich wraps long messages)."""
    return " ".join(output.split())


def _encoder(path: Path, backbone: str = "swin-f12", size: int = 64) -> Path:
    network = build_network(draft_spec("enc", "hybrid-swin", backbone, size))
    torch.save(network.encoder_state_dict(), path)  # type: ignore[operator]
    return path


def _train(folder: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "hyb", str(folder), "--network", "hybrid-swin", "--backbone", "swin-f12",
            "--size", "64", "--folds", "2", "--epochs", "1", "--batch-size", "4",
            "--home", str(run.parent / "home"), "--out", str(run), *extra]  # fmt: skip


def test_train_pretrain_encoder_starts_every_fold_from_the_file(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "images")
    encoder = _encoder(tmp_path / "encoder.pt")
    run = tmp_path / "run"
    # learning rate 0: the trained folds (and the average of their weights) keep the encoder
    result = runner.invoke(app, _train(folder, run, "--pretrain-encoder", str(encoder),
                                       "--learning-rate", "0", "--patience", "3",
                                       "--ema-decay", "0.9"))  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((run / "encoder.json").read_text())
    assert record["sha256"] == hashlib.sha256(encoder.read_bytes()).hexdigest()
    saved = torch.load(encoder, weights_only=True)
    for fold in (0, 1):
        best = torch.load(run / f"fold_{fold}" / "best.pt", weights_only=True)
        assert all(torch.equal(best[f"encoder.{k}"], v.float()) for k, v in saved.items())
        summary = json.loads((run / f"fold_{fold}" / "train.json").read_text())
        assert summary["config"]["patience"] == 3 and summary["stopped"] == "epochs"
        assert summary["config"]["ema_decay"] == 0.9
        assert (run / f"fold_{fold}" / "learning_curve.png").is_file()
    assert (run / "learning_curves.png").is_file()


def test_train_pretrain_encoder_refuses_pretrain_too_or_a_file_that_does_not_fit(
    tmp_path: Path,
) -> None:
    folder = write_image_folder(tmp_path / "images")
    encoder = _encoder(tmp_path / "encoder.pt")
    both = runner.invoke(app, _train(folder, tmp_path / "a", "--pretrain-encoder", str(encoder),
                                     "--pretrain", str(folder)))  # fmt: skip
    assert both.exit_code == 2 and "exclude each other" in _said(both.output)
    other = _encoder(tmp_path / "f24.pt", backbone="swin-f24")
    wrong = runner.invoke(app, _train(folder, tmp_path / "b", "--pretrain-encoder", str(other)))
    assert wrong.exit_code == 1 and "not an encoder state dict" in _said(wrong.output)
    ynet = ["train", "yn", str(folder), "--network", "ynet", "--size", "64", "--folds", "2",
            "--epochs", "1", "--home", str(tmp_path / "home"), "--out", str(tmp_path / "c"),
            "--pretrain-encoder", str(encoder)]  # fmt: skip
    refused = runner.invoke(app, ynet)
    assert refused.exit_code == 1 and "no shared encoder" in _said(refused.output)


def test_train_refuses_an_ema_decay_outside_zero_one_with_the_reason(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "images")
    for decay in ("1.0", "0", "-0.5"):
        refused = runner.invoke(app, _train(folder, tmp_path / "run", "--ema-decay", decay))
        assert refused.exit_code == 2 and "strictly between 0 and 1" in _said(refused.output)
    assert not (tmp_path / "run" / "fold_0").exists()
