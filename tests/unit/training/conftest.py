"""Fixtures for the training tests: a tiny generated image folder (phantom B-mode PNGs)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from phantom.us_dicom import bmode_image

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO / ".." / "shared" / "data"
TINY_COUNT = 12
TINY_SIZE = 64


def write_image_folder(folder: Path, count: int = TINY_COUNT, size: int = TINY_SIZE) -> Path:
    """``count`` phantom images (alternating benign/malignant, pairs share a group) + labels.csv."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask", "malignant", "group", "label_conflict"])
        for index in range(count):
            malignant = index % 2
            image, mask, _ = bmode_image(
                size, size + 8 * (index % 3), seed=index, malignant=bool(malignant)
            )
            Image.fromarray(image).save(folder / "images" / f"case{index:02d}.png")
            Image.fromarray(mask * 255).save(folder / "masks" / f"case{index:02d}_mask.png")
            writer.writerow(
                [
                    f"images/case{index:02d}.png",
                    f"masks/case{index:02d}_mask.png",
                    malignant,
                    f"g{index // 2 if index < 8 else index}",
                    0,
                ]
            )
    return folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only tiny image folder shared by the tests of this package."""
    return write_image_folder(tmp_path_factory.mktemp("tiny-folder"))


@pytest.fixture
def ddti_folder(image_folder: Path, tmp_path: Path) -> Path:
    """The tiny folder's images with ddti's columns: ``case`` (three images each), ``tirads``
    and ``tirads_binary`` (the tiny folder's labels), no ``malignant`` or ``group``."""
    with (image_folder / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    folder = tmp_path / "ddti"
    folder.mkdir()
    for name in ("images", "masks"):
        (folder / name).symlink_to(image_folder / name)
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask", "case", "tirads", "tirads_binary"])
        for index, row in enumerate(rows):
            writer.writerow([row["image"], row["mask"], index // 3, "4a", row["malignant"]])
    return folder


@pytest.fixture
def busi_dev() -> Path:
    """The real busi-dev folder; skips when ../shared/data is absent."""
    folder = SHARED_DATA / "busi-dev"
    if not (folder / "labels.csv").is_file():
        pytest.skip(
            f"shared data absent: {folder} not found (needs ../shared/data beside the repo)"
        )
    return folder


@pytest.fixture
def image_folder_factory(tmp_path: Path) -> Callable[..., Path]:
    """Make a fresh tiny image folder: ``factory(name, count=12, size=64)``."""

    def make(name: str = "folder", count: int = TINY_COUNT, size: int = TINY_SIZE) -> Path:
        return write_image_folder(tmp_path / name, count, size)

    return make
