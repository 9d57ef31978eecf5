"""Read an image folder whose ``labels.csv`` names its columns differently (ddti: tirads_binary, case).

The node's own format (``image, mask, malignant, group``) is read by
``training.datasets.read_image_folder``; this module maps other column names onto it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import DatasetError
from training.datasets import Row, binary_label, labels_csv, read_image_folder


@dataclass(frozen=True)
class ColumnMap:
    """Which ``labels.csv`` columns hold the image, mask, 0/1 label and group."""

    image: str = "image"
    mask: str = "mask"
    malignant: str = "malignant"
    group: str = "group"


#: the thyroid ddti folder: TI-RADS >= 4 as positive, one group per patient case
DDTI_COLUMNS = ColumnMap(malignant="tirads_binary", group="case")


def detect_columns(header: list[str]) -> ColumnMap:
    """The column map of a header: the node's own names, or ddti's when those are absent."""
    if "malignant" not in header and "tirads_binary" in header:
        return ColumnMap(malignant="tirads_binary", group="case" if "case" in header else "group")
    return ColumnMap()


def read_labelled_folder(folder: Path, columns: ColumnMap | None = None) -> list[Row]:
    """Rows of ``folder/labels.csv`` with ``columns`` (detected from the header when None)."""
    folder = Path(folder)
    labels = labels_csv(folder)
    with labels.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        columns = columns or detect_columns(header)
        if columns == ColumnMap():
            return read_image_folder(folder)
        if columns.image not in header:
            raise DatasetError(f"{labels}: the column {columns.image!r} is required")
        rows = []
        for line, record in enumerate(reader, start=2):
            image = (record.get(columns.image) or "").strip()
            if not image:
                raise DatasetError(f"{labels} row {line}: empty {columns.image!r}")
            mask = (record.get(columns.mask) or "").strip()
            group = (record.get(columns.group) or "").strip() or image
            rows.append(
                Row(
                    image=folder / image,
                    mask=folder / mask if mask else None,
                    malignant=binary_label(
                        record.get(columns.malignant), labels, line, columns.malignant
                    ),
                    group=group,
                )
            )
    return rows
