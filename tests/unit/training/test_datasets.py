"""Tests of training.datasets: reading an image folder, grey images, masks, model-grid arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kernel.errors import DatasetError
from training.datasets import (
    arrays_from_rows,
    load_grey,
    load_mask,
    read_image_folder,
    usable_rows,
)


def test_read_image_folder_tiny_folder_rows_with_labels_and_groups(image_folder: Path) -> None:
    rows = read_image_folder(image_folder)
    assert len(rows) == 12
    assert rows[0].image == image_folder / "images" / "case00.png"
    assert rows[0].mask == image_folder / "masks" / "case00_mask.png"
    assert [r.malignant for r in rows[:4]] == [0, 1, 0, 1]
    assert rows[0].group == rows[1].group == "g0"
    assert not any(r.label_conflict for r in rows)


def test_read_image_folder_minimal_columns_defaults_group_to_image(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("image\na.png\n")
    (row,) = read_image_folder(tmp_path)
    assert (row.mask, row.malignant, row.group) == (None, None, "a.png")


def test_read_image_folder_no_labels_csv_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="labels.csv"):
        read_image_folder(tmp_path)


def test_read_image_folder_no_image_column_raises(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("path\na.png\n")
    with pytest.raises(DatasetError, match="'image'"):
        read_image_folder(tmp_path)


def test_usable_rows_label_conflict_rows_dropped(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text(
        "image,malignant,group,label_conflict\na,0,g,1\nb,1,g,1\nc,0,h,0\n"
    )
    kept = usable_rows(read_image_folder(tmp_path))
    assert [r.image.name for r in kept] == ["c"]


def test_load_grey_rgb_png_luma_in_unit_range(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 255
    Image.fromarray(rgb).save(tmp_path / "g.png")
    grey = load_grey(tmp_path / "g.png")
    assert grey.shape == (4, 4) and grey.dtype == np.float32
    assert grey[0, 0] == pytest.approx(0.587, abs=1e-3)


def test_load_mask_grey_255_becomes_one(tmp_path: Path) -> None:
    mask = np.zeros((5, 6), np.uint8)
    mask[1:3, 2:4] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    loaded = load_mask(tmp_path / "m.png", (5, 6))
    assert loaded.dtype == np.uint8 and set(np.unique(loaded)) == {0, 1} and loaded.sum() == 4


def test_load_mask_none_zeros_of_shape() -> None:
    assert load_mask(None, (3, 4)).sum() == 0 and load_mask(None, (3, 4)).shape == (3, 4)


def test_load_mask_wrong_shape_raises(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match="does not match"):
        load_mask(tmp_path / "m.png", (6, 5))


def test_arrays_from_rows_tiny_folder_on_model_grid(image_folder: Path) -> None:
    arrays = arrays_from_rows(read_image_folder(image_folder), 32, root=image_folder)
    assert arrays.images.shape == (12, 32, 32) and arrays.images.dtype == np.uint8
    assert arrays.masks.shape == (12, 32, 32) and set(np.unique(arrays.masks)) == {0, 1}
    assert arrays.size == 32
    assert arrays.names[0] == "images/case00.png"
    assert arrays.subset([3, 1]).malignant.tolist() == [1, 1]
