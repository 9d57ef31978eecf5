"""Tests of training.pack: an image folder packed to .npz and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets import arrays_from_rows, read_image_folder
from training.pack import load_packed, pack_image_folder


def test_pack_image_folder_round_trip_same_arrays(image_folder: Path, tmp_path: Path) -> None:
    path = pack_image_folder(image_folder, tmp_path / "tiny.npz", 32)
    packed, conflict = load_packed(path)
    direct = arrays_from_rows(read_image_folder(image_folder), 32, root=image_folder)
    np.testing.assert_array_equal(packed.images, direct.images)
    np.testing.assert_array_equal(packed.masks, direct.masks)
    np.testing.assert_array_equal(packed.malignant, direct.malignant)
    assert packed.groups.tolist() == direct.groups.tolist()
    assert conflict.tolist() == [False] * 12
