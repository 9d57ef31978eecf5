"""Tests of training.pack: an image folder packed to .npz and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets import arrays_from_rows, read_image_folder
from training.exclusion import read_excluded_groups
from training.pack import load_packed, pack_exclusion, pack_image_folder


def test_pack_image_folder_round_trip_same_arrays(image_folder: Path, tmp_path: Path) -> None:
    path = pack_image_folder(image_folder, tmp_path / "tiny.npz", 32)
    packed, conflict = load_packed(path)
    direct = arrays_from_rows(read_image_folder(image_folder), 32, root=image_folder)
    np.testing.assert_array_equal(packed.images, direct.images)
    np.testing.assert_array_equal(packed.masks, direct.masks)
    np.testing.assert_array_equal(packed.malignant, direct.malignant)
    assert packed.groups.tolist() == direct.groups.tolist()
    assert conflict.tolist() == [False] * 12


def test_pack_of_a_ddti_folder_keeps_its_tirads_labels_and_cases(ddti_folder: Path, tmp_path: Path) -> None:
    """The GPU run's ddti pack (scripts/device/prepare.sh) once held no label (all -1) and one
    group per image: its pretraining was segmentation only, unlike `train --pretrain`."""
    packed, _ = load_packed(pack_image_folder(ddti_folder, tmp_path / "ddti.npz", 32))
    assert packed.malignant.tolist() == [r.malignant for r in read_image_folder(ddti_folder)]
    assert set(packed.malignant.tolist()) == {0, 1}
    assert packed.groups.tolist()[:4] == ["0", "0", "0", "1"] and len(set(packed.groups)) == 4


def test_png_pack_without_holdout_holds_the_same_pixels_and_records_what_it_left_out(
    image_folder: Path, tmp_path: Path
) -> None:
    holdout = tmp_path / "holdout.json"
    holdout.write_text('{"groups": ["g1"]}')  # case02, case03
    plain, _ = load_packed(pack_image_folder(image_folder, tmp_path / "plain.npz", 32))
    path = pack_image_folder(image_folder, tmp_path / "png.npz", 32,
                             read_excluded_groups([holdout]), png=True)  # fmt: skip
    packed, _ = load_packed(path)
    kept = plain.groups != "g1"
    np.testing.assert_array_equal(packed.images, plain.images[kept])
    np.testing.assert_array_equal(packed.masks, plain.masks[kept])
    assert packed.names.tolist() == plain.names[kept].tolist()
    exclusion = pack_exclusion(path)
    assert exclusion is not None and exclusion.groups == {"g1"} and exclusion.excluded_cases == 2
    assert pack_exclusion(tmp_path / "plain.npz") is None
