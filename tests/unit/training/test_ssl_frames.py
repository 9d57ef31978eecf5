"""Unlabelled frames for self-supervised pretraining: image folders minus hold-out groups, every
frame of every DICOM file, on the spec's grid as inference brings them."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
import torch

from inference.frames import read_frames
from inference.registry import ModelSpec
from inference.runner import frame_box, frame_planes
from phantom.us_dicom import write_us_study
from training.exclusion import Exclusion, no_exclusion
from training.networks import draft_spec
from training.ssl_frames import bmode_input, collect_frames, dicom_frames

SIZE = 64


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return draft_spec("ssl-encoder", "hybrid-swin", "swin-f12", size=SIZE)


def test_collect_frames_holdout_groups_left_out_cine_frames_all_counted(
    spec: ModelSpec, image_folder: Path, tmp_path: Path
) -> None:
    write_us_study(tmp_path / "dicom", seed=3, count=2, frames=5, rows=96, cols=128)
    write_us_study(tmp_path / "dicom" / "single", seed=4, rows=96, cols=128)
    (tmp_path / "dicom" / "readme.txt").write_text("not DICOM")
    holdout = Exclusion(("holdout.json",), frozenset({"g0", "g1"}))  # 4 images of 12

    frames = collect_frames(spec, [("busi", image_folder)], [("us", tmp_path / "dicom")], holdout)

    counts = {c.name: c for c in frames.counts}
    assert (counts["busi"].files, counts["busi"].frames, counts["busi"].excluded) == (12, 8, 4)
    assert (counts["us"].files, counts["us"].frames, counts["us"].unreadable) == (3, 11, 0)
    assert frames.inputs.shape == (19, 1, SIZE, SIZE)
    assert frames.to_json()["total"] == 19


def test_dicom_frames_match_run_model_preprocessing(spec: ModelSpec, tmp_path: Path) -> None:
    path = write_us_study(tmp_path, seed=5, frames=3, rows=96, cols=128)[0]
    header = pydicom.dcmread(path, stop_before_pixels=True)
    frames = read_frames(path, [0, 1, 2], header)
    box = frame_box(header, frames[0].shape[:2])
    expected = [frame_planes(frame, box, bmode_input(spec)) for frame in frames]

    found, count = dicom_frames(tmp_path, bmode_input(spec), "us")

    assert count.frames == 3
    for got, want in zip(found, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_collect_frames_nothing_named_raises(spec: ModelSpec) -> None:
    with pytest.raises(ValueError, match="no frame"):
        collect_frames(spec, [], [], no_exclusion())
