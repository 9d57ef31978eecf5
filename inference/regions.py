"""Ultrasound regions (PS3.3 C.8.5.5 US Region Calibration Module): boxes and pixel size.

Reading is tolerant: real scanners write boxes past the image edge, negative deltas, missing
attributes. A region whose box does not overlap the image is ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pydicom

logger = logging.getLogger(__name__)

SPATIAL_FORMAT_2D = 1
"""RegionSpatialFormat 1: 2D (tissue or flow), PS3.3 C.8.5.5.1.1."""
TISSUE_DATA_TYPES = frozenset({1, 2})
"""RegionDataType 1 (tissue) and 2 (colour flow), PS3.3 C.8.5.5.1.2."""
UNITS_CM = 3
"""PhysicalUnitsX/YDirection 3: cm, PS3.3 C.8.5.5.1.15."""


@dataclass(frozen=True)
class Region:
    """One item of SequenceOfUltrasoundRegions (0018,6011).

    The box is in pixels; ``max_x1`` and ``max_y1`` are INCLUSIVE as in the standard.
    Absent numeric attributes are ``None``.
    """

    min_x0: int
    min_y0: int
    max_x1: int
    max_y1: int
    spatial_format: int | None
    data_type: int | None
    units_x: int | None
    units_y: int | None
    delta_x: float | None
    delta_y: float | None

    @property
    def area(self) -> int:
        """Number of pixels in the (inclusive) box."""
        return max(0, self.max_x1 - self.min_x0 + 1) * max(0, self.max_y1 - self.min_y0 + 1)

    @property
    def is_tissue(self) -> bool:
        """True for a 2D tissue or colour-flow region (spatial format 1, data type 1 or 2)."""
        return self.spatial_format == SPATIAL_FORMAT_2D and self.data_type in TISSUE_DATA_TYPES

    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) with x1 and y1 EXCLUSIVE."""
        return self.min_x0, self.min_y0, self.max_x1 + 1, self.max_y1 + 1


def _int_or_none(item: pydicom.Dataset, keyword: str) -> int | None:
    value = item.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(item: pydicom.Dataset, keyword: str) -> float | None:
    value = item.get(keyword)
    if value is None or value == "":
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if np.isfinite(result) else None


def _image_shape(ds: pydicom.Dataset) -> tuple[int, int] | None:
    rows, cols = _int_or_none(ds, "Rows"), _int_or_none(ds, "Columns")
    if rows is None or cols is None or rows <= 0 or cols <= 0:
        return None
    return rows, cols


def _parse_item(item: pydicom.Dataset, shape: tuple[int, int] | None) -> Region | None:
    corners = [
        _int_or_none(item, k)
        for k in (
            "RegionLocationMinX0",
            "RegionLocationMinY0",
            "RegionLocationMaxX1",
            "RegionLocationMaxY1",
        )
    ]
    if any(c is None for c in corners):
        return None
    x0, y0, x1, y1 = (int(c) for c in corners)  # type: ignore[arg-type]
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    if shape is not None:
        rows, cols = shape
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, cols - 1), min(y1, rows - 1)
        if x0 > x1 or y0 > y1:
            return None
    return Region(
        min_x0=x0,
        min_y0=y0,
        max_x1=x1,
        max_y1=y1,
        spatial_format=_int_or_none(item, "RegionSpatialFormat"),
        data_type=_int_or_none(item, "RegionDataType"),
        units_x=_int_or_none(item, "PhysicalUnitsXDirection"),
        units_y=_int_or_none(item, "PhysicalUnitsYDirection"),
        delta_x=_float_or_none(item, "PhysicalDeltaX"),
        delta_y=_float_or_none(item, "PhysicalDeltaY"),
    )


def ultrasound_regions(ds: pydicom.Dataset) -> list[Region]:
    """All usable regions of ``ds``, boxes clipped to the image, in file order.

    Items without a complete box, or whose box lies outside the image, are skipped.
    """
    shape = _image_shape(ds)
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        region = _parse_item(item, shape)
        if region is None:
            logger.debug("skipping an ultrasound region without a usable box")
            continue
        regions.append(region)
    return regions


def tissue_regions(ds: pydicom.Dataset) -> list[Region]:
    """The 2D tissue and colour-flow regions of ``ds`` (spatial format 1, data type 1 or 2)."""
    return [r for r in ultrasound_regions(ds) if r.is_tissue]


def region_containing(ds: pydicom.Dataset, mask: np.ndarray) -> Region | None:
    """The tissue region whose box holds every pixel of ``mask`` (split screen aware).

    When several regions contain the mask (e.g. a colour-flow box inside a B-mode region),
    the smallest is returned. ``None`` when the mask is empty or no region contains it.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        return None
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    containing = [
        r
        for r in tissue_regions(ds)
        if r.min_x0 <= c0 and c1 <= r.max_x1 and r.min_y0 <= r0 and r1 <= r.max_y1
    ]
    if not containing:
        return None
    return min(containing, key=lambda r: r.area)


def mm_per_pixel(region: Region) -> tuple[float, float] | None:
    """Pixel size (x, y) in mm, or ``None`` when the region cannot be measured in.

    Only a 2D region (spatial format 1) of data type 1 or 2 with both physical units in cm
    (3) and non-zero deltas is calibrated: mm = abs(PhysicalDelta) * 10 (PS3.3 C.8.5.5.1.14).
    Anisotropic pixels are allowed.
    """
    if not region.is_tissue:
        return None
    if region.units_x != UNITS_CM or region.units_y != UNITS_CM:
        return None
    if region.delta_x is None or region.delta_y is None:
        return None
    dx, dy = abs(region.delta_x) * 10.0, abs(region.delta_y) * 10.0
    if dx <= 0.0 or dy <= 0.0:
        return None
    return dx, dy


def tissue_box(ds: pydicom.Dataset) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), x1 and y1 EXCLUSIVE, to crop the image to for the model.

    The largest tissue region clipped to the image; the whole image when there is none.
    """
    shape = _image_shape(ds)
    rows, cols = shape if shape is not None else (0, 0)
    regions = tissue_regions(ds)
    if not regions:
        return 0, 0, cols, rows
    return max(regions, key=lambda r: r.area).box()
