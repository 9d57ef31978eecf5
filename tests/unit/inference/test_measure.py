"""Tests for inference.measure: long/short axis in mm on phantom ellipses with known semi-axes."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from inference.measure import (
    NOTE_EMPTY_MASK,
    NOTE_NO_REGIONS,
    NOTE_NOT_CALIBRATED,
    NOTE_OUTSIDE_REGION,
    _longest_chord,
    largest_component,
    lesion_mask,
    lesion_regions,
    measure_axes,
    measure_component,
)
from phantom.us_dicom import make_us_dataset


def _ellipse(shape, center, semi_axes, angle_deg=0.0) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    theta = np.deg2rad(angle_deg)
    x, y = xx - center[0], yy - center[1]
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    return (u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 <= 1.0


@pytest.mark.parametrize("malignant", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measure_axes_phantom_ellipse_matches_truth(seed, malignant):
    ds, mask, truth = make_us_dataset(seed=seed, malignant=malignant, mm_per_pixel=0.1)
    measurements, note = measure_axes(mask, ds)
    assert note is None and measurements is not None
    ax, ay = truth.semi_axes_xy
    # within one pixel (0.1 mm) of the true diameters
    assert measurements.long_axis_mm == pytest.approx(2 * ax * 0.1, abs=0.1)
    assert measurements.short_axis_mm == pytest.approx(2 * ay * 0.1, abs=0.1)
    (x0, y0), (x1, y1) = measurements.long_axis_endpoints
    assert abs(x1 - x0) > abs(y1 - y0)  # long axis is horizontal in the phantom


def test_measure_axes_rotated_ellipse_axes_perpendicular():
    shape = (200, 200)
    mask = _ellipse(shape, (100, 100), (60, 25), angle_deg=30)
    ds, _, _ = make_us_dataset(rows=200, cols=200, mm_per_pixel=0.2)
    measurements, note = measure_axes(mask, ds)
    assert note is None and measurements is not None
    assert measurements.long_axis_mm == pytest.approx(24.0, abs=0.3)
    assert measurements.short_axis_mm == pytest.approx(10.0, abs=0.3)
    long_vec = np.subtract(*measurements.long_axis_endpoints)
    short_vec = np.subtract(*measurements.short_axis_endpoints)
    cosine = long_vec @ short_vec / np.linalg.norm(long_vec) / np.linalg.norm(short_vec)
    assert abs(cosine) < 1e-6
    angle = np.rad2deg(np.arctan2(long_vec[1], long_vec[0])) % 180
    assert angle == pytest.approx(30, abs=2)


def test_measure_axes_anisotropic_pixels_measured_in_mm_space():
    ds, _, _ = make_us_dataset(rows=200, cols=200, mm_per_pixel=0.1)
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaY = 0.03  # 0.3 mm per row
    # a circle in pixels is an ellipse in mm: 80 px wide = 8 mm, 80 px tall = 24 mm
    mask = _ellipse((200, 200), (100, 100), (40, 40))
    measurements, note = measure_axes(mask, ds)
    assert note is None and measurements is not None
    assert measurements.long_axis_mm == pytest.approx(24.0, abs=0.35)
    assert measurements.short_axis_mm == pytest.approx(8.0, abs=0.15)
    (_, y0), (_, y1) = measurements.long_axis_endpoints
    assert abs(y1 - y0) == pytest.approx(80, abs=1.5)


def test_measure_axes_two_blobs_largest_component_measured():
    ds, _, _ = make_us_dataset(rows=200, cols=200, mm_per_pixel=0.1)
    mask = _ellipse((200, 200), (60, 60), (30, 10)) | _ellipse((200, 200), (150, 150), (10, 5))
    measurements, _ = measure_axes(mask, ds)
    assert measurements is not None
    assert measurements.long_axis_mm == pytest.approx(6.0, abs=0.15)


def test_measure_axes_split_screen_uses_containing_region():
    ds, _, _ = make_us_dataset(rows=100, cols=200, mm_per_pixel=0.1)
    left = ds.SequenceOfUltrasoundRegions[0]
    left.RegionLocationMaxX1 = 99
    right = Dataset()
    right.update(left)
    right.RegionLocationMinX0, right.RegionLocationMaxX1 = 100, 199
    right.PhysicalDeltaX = right.PhysicalDeltaY = 0.02
    ds.SequenceOfUltrasoundRegions.append(right)
    mask = _ellipse((100, 200), (150, 50), (20, 10))
    measurements, _ = measure_axes(mask, ds)
    assert measurements is not None
    assert measurements.long_axis_mm == pytest.approx(8.0, abs=0.2)


def test_measure_axes_no_calibration_note():
    ds, mask, _ = make_us_dataset(mm_per_pixel=None)
    assert measure_axes(mask, ds) == (None, NOTE_NO_REGIONS)


def test_measure_axes_empty_mask_note():
    ds, mask, _ = make_us_dataset()
    assert measure_axes(np.zeros_like(mask), ds) == (None, NOTE_EMPTY_MASK)


def test_measure_axes_mask_outside_region_note():
    ds, _, _ = make_us_dataset(rows=100, cols=200)
    ds.SequenceOfUltrasoundRegions[0].RegionLocationMaxX1 = 49
    blob = _ellipse((100, 200), (150, 50), (20, 10))
    assert measure_axes(blob, ds) == (None, NOTE_OUTSIDE_REGION)


def test_measure_axes_region_units_not_cm_note():
    ds, mask, _ = make_us_dataset()
    ds.SequenceOfUltrasoundRegions[0].PhysicalUnitsYDirection = 0
    assert measure_axes(mask, ds) == (None, NOTE_NOT_CALIBRATED)


def test_measure_axes_single_pixel_measures_one_pixel():
    ds, mask, _ = make_us_dataset(mm_per_pixel=0.1)
    single = np.zeros_like(mask)
    single[100, 100] = 1
    measurements, note = measure_axes(single, ds)
    assert note is None and measurements is not None
    assert 0.0 < measurements.long_axis_mm <= 0.15


def test_measure_axes_wrong_shape_raises():
    ds, mask, _ = make_us_dataset()
    with pytest.raises(ValueError, match="differs"):
        measure_axes(mask[:10], ds)


def test_largest_component_diagonal_pixels_one_component():
    mask = np.eye(5, dtype=bool)
    assert largest_component(mask).sum() == 5


def test_lesion_mask_is_the_largest_component_above_the_threshold():
    probability = np.zeros((12, 12), np.float32)
    probability[1:4, 1:4] = 0.9  # 9 pixels
    probability[8:10, 8:10] = 0.95  # 4 pixels, more confident but smaller
    probability[5:12, 0:2] = 0.45  # 14 pixels, under the threshold

    mask = lesion_mask(probability)

    expected = np.zeros((12, 12), bool)
    expected[1:4, 1:4] = True
    assert mask.dtype == bool and np.array_equal(mask, expected)
    assert not lesion_mask(np.full((4, 4), 0.5, np.float32)).any()  # strictly above 0.5


def test_lesion_regions_note_counts_the_regions_the_delivered_mask_leaves_out():
    probability = np.zeros((12, 12), np.float32)
    probability[1:4, 1:4] = 0.9  # 9 pixels: delivered
    probability[8:10, 8:10] = 0.95  # 4 pixels
    probability[0, 11] = 0.7  # 1 pixel
    probability[6:12, 0:2] = 0.45  # under the threshold: not a region

    mask, note = lesion_regions(probability)

    assert mask.sum() == 9 and mask[1:4, 1:4].all()  # the same mask lesion_mask gives
    assert np.array_equal(mask, lesion_mask(probability))
    assert note == (
        "the segmentation has 2 more separate region(s), 36% of its area: only the largest is "
        "outlined and measured"
    )


def test_lesion_regions_note_tiny_share_is_not_rounded_to_zero():
    probability = np.zeros((40, 40), np.float32)
    probability[:30, :] = 0.9  # 1200 pixels: delivered
    probability[39, 39] = 0.9  # 1 pixel

    assert "<1% of its area" in lesion_regions(probability)[1]


def test_lesion_regions_note_none_for_one_region_or_none():
    one = np.zeros((6, 6), np.float32)
    one[1:4, 1:4] = 0.9
    assert lesion_regions(one)[1] is None
    empty = np.zeros((6, 6), np.float32)
    assert lesion_regions(empty)[1] is None


def test_measure_component_of_largest_component_equals_measure_axes():
    ds, mask, _ = make_us_dataset(seed=4, malignant=True, mm_per_pixel=0.1)
    noisy = mask.copy()
    noisy[:3, :3] = True  # a second, smaller component

    assert measure_component(largest_component(noisy), ds) == measure_axes(noisy, ds)


def test_longest_chord_triangle_through_top_vertex():
    triangle = np.array([[0.0, 0.0], [4.0, -1.0], [2.0, 3.0]])

    assert _longest_chord(triangle) == pytest.approx((2.0, -0.5, 3.0))


def test_longest_chord_edge_along_the_chord_gives_both_ends_first_longest_kept():
    rectangle = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]])

    assert _longest_chord(rectangle) == (0.0, 0.0, 1.0)
