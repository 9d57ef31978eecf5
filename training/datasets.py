"""Read an image folder (``labels.csv`` + images + optional masks) into rows and model-grid arrays.

The folder format is the node's "image folder": ``labels.csv`` with columns ``image`` (path
relative to the folder), optional ``mask``, optional ``malignant`` (0/1), optional ``group``
(near-duplicates share one; defaults to the image path) and optional ``label_conflict`` (0/1).
A folder whose columns are named otherwise is read through a :class:`ColumnMap` (ddti's
``tirads_binary`` and ``case`` are recognised from the header).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from inference.transforms import to_grey_unit
from kernel.errors import DatasetError
from training.csv_files import read_csv

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"


@dataclass(frozen=True)
class Row:
    """One image of an image folder; paths are absolute."""

    image: Path
    mask: Path | None
    malignant: int | None
    group: str
    label_conflict: bool = False


@dataclass(frozen=True)
class TrainingArrays:
    """Images and masks on the model grid (N,S,S uint8 grey and N,S,S {0,1}), labels and groups."""

    images: np.ndarray
    masks: np.ndarray
    malignant: np.ndarray
    groups: np.ndarray
    names: np.ndarray
    #: (N,) bool: the case has a reference mask (an empty one says "no lesion"); None: all have
    has_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.masks) == len(self.malignant) == len(self.groups) == len(self.names) == n):
            raise ValueError(
                "TrainingArrays: images, masks, malignant, groups, names differ in length"
            )
        if self.has_mask is None:
            object.__setattr__(self, "has_mask", np.ones(n, bool))

    def network_inputs(self) -> list[torch.Tensor]:
        """The network's one input, (N,1,S,S) normalised as ``to_model_input`` normalises."""
        return [(torch.from_numpy(self.images.astype(np.float32) / 255.0)[:, None] - 0.5) / 0.25]

    def mask_tensor(self) -> torch.Tensor:
        """The masks as (N,1,S,S) float32."""
        return torch.from_numpy(self.masks[:, None].astype(np.float32))

    @property
    def size(self) -> int:
        """The model grid's side in pixels."""
        return int(self.images.shape[-1])

    def subset(self, indices: Sequence[int] | np.ndarray) -> TrainingArrays:
        """The arrays restricted to ``indices`` (in that order)."""
        index = np.asarray(indices, dtype=np.int64)
        return TrainingArrays(
            self.images[index],
            self.masks[index],
            self.malignant[index],
            self.groups[index],
            self.names[index],
            self.has_mask[index],  # type: ignore[index]
        )


def binary_label(text: str | None, labels: Path, line: int, column: str) -> int | None:
    """A 0/1 cell of ``labels`` (row ``line``) as an int, None when empty; raises
    :class:`DatasetError` for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    if text not in ("0", "1", "0.0", "1.0"):
        raise DatasetError(f"{labels} row {line}: {column} must be 0 or 1, got {text!r}")
    return int(float(text))


def labels_csv(folder: Path) -> Path:
    """``folder/labels.csv``; raises :class:`DatasetError` when the folder or the file is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder")
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise DatasetError(f"{labels} not found: an image folder needs a labels.csv")
    return labels


@dataclass(frozen=True)
class ColumnMap:
    """Which ``labels.csv`` columns hold the image, mask, 0/1 label, group and label conflict."""

    image: str = "image"
    mask: str = "mask"
    malignant: str = "malignant"
    group: str = "group"
    label_conflict: str = "label_conflict"


#: the thyroid ddti folder: TI-RADS >= 4 as positive, one group per patient case
DDTI_COLUMNS = ColumnMap(malignant="tirads_binary", group="case")


def detect_columns(header: list[str]) -> ColumnMap:
    """The column map of a header: the node's own names, or ddti's when those are absent."""
    if ColumnMap.malignant not in header and DDTI_COLUMNS.malignant in header:
        return DDTI_COLUMNS if DDTI_COLUMNS.group in header else replace(DDTI_COLUMNS, group=ColumnMap.group)
    return ColumnMap()


def read_image_folder(path: Path, columns: ColumnMap | None = None) -> list[Row]:
    """Rows of ``path/labels.csv`` read with ``columns`` (detected from the header when None);
    raises :class:`DatasetError` on a bad folder."""
    folder = Path(path)
    labels = labels_csv(folder)
    rows: list[Row] = []
    try:
        header, records = read_csv(labels)
    except ValueError as error:
        raise DatasetError(str(error)) from error
    names = columns or detect_columns(header)
    if names.image not in header:
        raise DatasetError(f"{labels}: the column {names.image!r} is required")
    for line, record in records:
        image = (record.get(names.image) or "").strip()
        if not image:
            raise DatasetError(f"{labels} row {line}: empty {names.image!r}")
        mask = (record.get(names.mask) or "").strip()
        label, conflict = (
            binary_label(record.get(column), labels, line, column)
            for column in (names.malignant, names.label_conflict)
        )
        rows.append(
            Row(
                image=folder / image,
                mask=folder / mask if mask else None,
                malignant=label,
                group=(record.get(names.group) or "").strip() or image,
                label_conflict=conflict == 1,
            )
        )
    return rows


def usable_rows(rows: Iterable[Row]) -> list[Row]:
    """Rows fit for training and evaluation: those of groups with conflicting labels are dropped."""
    kept, dropped = [], 0
    for row in rows:
        if row.label_conflict:
            dropped += 1
        else:
            kept.append(row)
    if dropped:
        logger.info("excluded %d rows of groups with conflicting labels", dropped)
    return kept


def load_grey(path: Path) -> np.ndarray:
    """An image file as float32 grey in [0, 1] (H,W), through ``to_grey_unit``."""
    with Image.open(path) as image:
        if image.mode in ("P", "PA", "CMYK", "YCbCr", "LA"):
            image = image.convert("RGB")
        array = np.asarray(image)
    if array.dtype == np.int32:  # PIL mode "I": 16-bit PNGs arrive as int32
        array = array.clip(0, 65535).astype(np.uint16)
    return to_grey_unit(array)


def load_mask(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    """A mask file as uint8 {0,1} (H,W); any non-zero pixel is foreground. None gives zeros."""
    if path is None:
        return np.zeros(shape, np.uint8)
    with Image.open(path) as image:
        array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3].max(axis=-1)
    mask = (array > 0).astype(np.uint8)
    if mask.shape != shape:
        raise ValueError(f"{path}: mask {mask.shape} does not match its image {shape}")
    return mask


def resize_grey(grey: np.ndarray, size: int) -> np.ndarray:
    """Grey [0,1] (H,W) to uint8 (size,size) with the bilinear resampling of ``to_model_input``."""
    tensor = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return (resized[0, 0].numpy() * 255.0).round().clip(0, 255).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Mask {0,1} (H,W) to {0,1} (size,size): bilinear then > 0.5, as predictions go back."""
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return (resized[0, 0].numpy() > 0.5).astype(np.uint8)


def arrays_from_rows(rows: Sequence[Row], size: int, root: Path | None = None) -> TrainingArrays:
    """Load and resize every row to the model grid; ``malignant`` None becomes -1."""
    images = np.zeros((len(rows), size, size), np.uint8)
    masks = np.zeros((len(rows), size, size), np.uint8)
    for index, row in enumerate(rows):
        grey = load_grey(row.image)
        images[index] = resize_grey(grey, size)
        masks[index] = resize_mask(load_mask(row.mask, grey.shape), size)
    names = [str(row.image.relative_to(root)) if root else row.image.name for row in rows]
    return TrainingArrays(
        images=images,
        masks=masks,
        malignant=np.array([-1 if r.malignant is None else r.malignant for r in rows], np.int8),
        groups=np.array([r.group for r in rows], dtype=str),
        names=np.array(names, dtype=str),
    )
