"""Self-supervised pretraining (MONAI's recipe) of the hybrid's shared encoder on tiny
phantom frames: one epoch, an encoder that loads into a fresh network, finite losses, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from inference.registry import ModelSpec
from phantom.us_dicom import write_us_study
from tests.unit.training.conftest import write_image_folder
from training.exclusion import Exclusion
from training.networks import draft_spec
from training.retrain import network_maker
from training.ssl_frames import UnlabelledFrames, collect_frames
from training.ssl_pretrain import (
    CHECKPOINT_FILE,
    LOG_FILE,
    SSL_FILE,
    SslConfig,
    SslOutcome,
    pretrain_ssl,
    two_views,
    view_transform,
)

SIZE = 64
CONFIG = SslConfig(epochs=1, batch_size=8)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return draft_spec("ssl-encoder", "hybrid-swin", "swin-f12", size=SIZE)


@pytest.fixture(scope="module")
def frames(spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> UnlabelledFrames:
    root = tmp_path_factory.mktemp("ssl-data")
    images = write_image_folder(root / "busi", count=6)  # groups g0 g0 g1 g1 g2 g2
    write_us_study(root / "dicom", seed=7, frames=3, rows=96, cols=128)
    holdout = Exclusion(("holdout.json",), frozenset({"g0"}))
    return collect_frames(spec, [("busi", images)], [("us", root / "dicom")], holdout)


@pytest.fixture(scope="module")
def trained(
    spec: ModelSpec, frames: UnlabelledFrames, tmp_path_factory: pytest.TempPathFactory
) -> SslOutcome:
    out = tmp_path_factory.mktemp("ssl-run")
    return pretrain_ssl(spec, frames, out, CONFIG, {"excluded_groups": 1})


def test_pretrain_ssl_one_epoch_encoder_loads_into_fresh_network(
    spec: ModelSpec, trained: SslOutcome
) -> None:
    network = network_maker(spec, encoder=trained.encoder_path)()

    saved = torch.load(trained.encoder_path, weights_only=True)
    for key, value in network.encoder_state_dict().items():  # type: ignore[operator]
        torch.testing.assert_close(value, saved[key])
    assert trained.encoder_path.name == "encoder.pt"


def test_pretrain_ssl_record_counts_frames_losses_finite(trained: SslOutcome) -> None:
    out = trained.encoder_path.parent
    record = json.loads((out / SSL_FILE).read_text())

    assert record["epochs"] == 1 and record["excluded_groups"] == 1
    assert record["frames"]["total"] == 7  # 6 images - 2 of hold-out group g0 + 3 cine frames
    sources = {s["name"]: s for s in record["frames"]["sources"]}
    assert sources["busi"]["excluded"] == 2 and sources["us"]["frames"] == 3
    losses = record["loss_last_epoch"]
    assert all(torch.isfinite(torch.tensor(losses[k])) for k in ("loss", "l1", "contrastive"))
    assert "self_supervised_pretraining" in record["method"]
    assert len((out / LOG_FILE).read_text().splitlines()) == 1


def test_pretrain_ssl_resumes_after_its_last_epoch(
    spec: ModelSpec, frames: UnlabelledFrames, trained: SslOutcome, tmp_path: Path
) -> None:
    shutil.copytree(trained.encoder_path.parent, tmp_path, dirs_exist_ok=True)

    outcome = pretrain_ssl(spec, frames, tmp_path, SslConfig(epochs=2, batch_size=8))

    assert [r["epoch"] for r in outcome.history] == [1, 2]
    assert outcome.history[0] == trained.history[0]
    assert json.loads((tmp_path / SSL_FILE).read_text())["epochs"] == 2


def test_pretrain_ssl_checkpoint_of_other_frames_refused(
    spec: ModelSpec, frames: UnlabelledFrames, trained: SslOutcome, tmp_path: Path
) -> None:
    shutil.copy(trained.encoder_path.parent / CHECKPOINT_FILE, tmp_path / CHECKPOINT_FILE)
    fewer = UnlabelledFrames(frames.inputs[:4], frames.counts)

    with pytest.raises(ValueError, match="use a new output folder"):
        pretrain_ssl(spec, fewer, tmp_path, SslConfig(epochs=2, batch_size=8))


def test_two_views_differ_from_each_other_and_from_the_frames(frames: UnlabelledFrames) -> None:
    transform = view_transform(SIZE)
    transform.set_random_state(seed=0)

    first, second = two_views(frames.inputs[:4], transform)

    assert first.shape == second.shape == (4, 1, SIZE, SIZE)
    assert not torch.equal(first, second)
    assert not torch.equal(first, frames.inputs[:4])
