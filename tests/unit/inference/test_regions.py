"""Tests for inference.regions: parsing SequenceOfUltrasoundRegions, tissue box, pixel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from inference.regions import (
    mm_per_pixel,
    region_containing,
    tissue_box,
    tissue_regions,
    ultrasound_regions,
)


def _item(box, *, fmt=1, dtype=1, units=(3, 3), delta=(0.01, 0.01)) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = fmt
    item.RegionDataType = dtype
    (
        item.RegionLocationMinX0,
        item.RegionLocationMinY0,
        item.RegionLocationMaxX1,
        item.RegionLocationMaxY1,
    ) = box
    item.PhysicalUnitsXDirection, item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX, item.PhysicalDeltaY = delta
    return item


def _image(rows: int = 100, cols: int = 200, items=()) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = rows, cols
    if items:
        ds.SequenceOfUltrasoundRegions = list(items)
    return ds


def test_tissue_box_no_regions_whole_image():
    assert tissue_box(_image()) == (0, 0, 200, 100)


def test_tissue_box_inclusive_corners_exclusive_box():
    ds = _image(items=[_item((10, 20, 109, 79))])
    assert tissue_box(ds) == (10, 20, 110, 80)


def test_tissue_box_region_past_edge_clipped():
    # Real Philips files write MaxX1 = Columns, or boxes for a larger image.
    ds = _image(items=[_item((120, 60, 800, 518))], rows=350, cols=800)
    assert tissue_box(ds) == (120, 60, 800, 350)


def test_tissue_box_split_screen_largest_region():
    ds = _image(items=[_item((0, 0, 49, 99)), _item((100, 0, 199, 99))])
    assert tissue_box(ds) == (100, 0, 200, 100)


def test_tissue_box_only_spectral_region_whole_image():
    ds = _image(items=[_item((0, 50, 199, 99), fmt=4, dtype=10, units=(4, 0))])
    assert tissue_box(ds) == (0, 0, 200, 100)


def test_ultrasound_regions_odd_items_skipped():
    incomplete = Dataset()
    incomplete.RegionSpatialFormat = 1
    outside = _item((500, 500, 600, 600))
    ds = _image(items=[incomplete, outside, _item((0, 0, 9, 9))])
    assert [r.box() for r in ultrasound_regions(ds)] == [(0, 0, 10, 10)]


def test_tissue_regions_spectral_excluded():
    ds = _image(items=[_item((0, 0, 99, 49)), _item((0, 50, 199, 99), fmt=4, dtype=10)])
    assert [r.box() for r in tissue_regions(ds)] == [(0, 0, 100, 50)]


def test_mm_per_pixel_cm_units_times_ten():
    (region,) = tissue_regions(_image(items=[_item((0, 0, 9, 9), delta=(0.02, 0.03))]))
    assert mm_per_pixel(region) == pytest.approx((0.2, 0.3))


def test_mm_per_pixel_negative_delta_absolute():
    (region,) = tissue_regions(_image(items=[_item((0, 0, 9, 9), delta=(0.02, -0.02))]))
    assert mm_per_pixel(region) == pytest.approx((0.2, 0.2))


@pytest.mark.parametrize(
    ("units", "delta"), [((3, 0), (0.01, 0.01)), ((4, 3), (0.01, 0.01)), ((3, 3), (0.01, 0.0))]
)
def test_mm_per_pixel_not_cm_or_zero_none(units, delta):
    (region,) = ultrasound_regions(_image(items=[_item((0, 0, 9, 9), units=units, delta=delta)]))
    assert mm_per_pixel(region) is None


def test_mm_per_pixel_spectral_region_none():
    (region,) = ultrasound_regions(_image(items=[_item((0, 0, 9, 9), fmt=4, dtype=3)]))
    assert mm_per_pixel(region) is None


def test_region_containing_split_screen_right_half():
    left, right = (
        _item((0, 0, 99, 99), delta=(0.01, 0.01)),
        _item((100, 0, 199, 99), delta=(0.02, 0.02)),
    )
    ds = _image(items=[left, right])
    mask = np.zeros((100, 200), bool)
    mask[40:60, 140:170] = True
    region = region_containing(ds, mask)
    assert region is not None and region.box() == (100, 0, 200, 100)


def test_region_containing_straddling_mask_none():
    ds = _image(items=[_item((0, 0, 99, 99)), _item((100, 0, 199, 99))])
    mask = np.zeros((100, 200), bool)
    mask[40:60, 90:110] = True
    assert region_containing(ds, mask) is None


def test_region_containing_nested_regions_smallest():
    ds = _image(items=[_item((0, 0, 199, 99)), _item((50, 20, 149, 79), dtype=2)])
    mask = np.zeros((100, 200), bool)
    mask[40:50, 60:70] = True
    region = region_containing(ds, mask)
    assert region is not None and region.data_type == 2


def test_region_containing_empty_mask_none():
    ds = _image(items=[_item((0, 0, 199, 99))])
    assert region_containing(ds, np.zeros((100, 200), bool)) is None


SHARED_US = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "us-dicom"


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_US.is_dir(), reason=f"real US files not found under {SHARED_US}")
@pytest.mark.parametrize(
    ("name", "box", "spacing"),
    [
        ("pydicom_wheel/examples_palette.dcm", (120, 60, 800, 350), (0.2623, 0.2623)),
        ("orthanc_tests/Issue16.dcm", (42, 4, 439, 354), (0.2857, 0.2286)),
        ("pydicom_data/US1_UNCR.dcm", (0, 0, 640, 480), None),
    ],
)
def test_tissue_box_real_file_clipped_box_and_spacing(name, box, spacing):
    ds = pydicom.dcmread(SHARED_US / name, stop_before_pixels=True)
    assert tissue_box(ds) == box
    regions = tissue_regions(ds)
    if spacing is None:
        assert regions == []
    else:
        assert mm_per_pixel(regions[0]) == pytest.approx(spacing, abs=1e-4)
