"""Long and short axis of a segmented node in mm, from the ultrasound region calibration."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import find_contours, label

from inference.prediction import AxisMeasurements
from inference.regions import mm_per_pixel, region_containing, tissue_regions

logger = logging.getLogger(__name__)

NOTE_EMPTY_MASK = "no measurement: the segmentation is empty"
NOTE_NO_REGIONS = "no measurement: the image carries no ultrasound tissue region (no calibration)"
NOTE_OUTSIDE_REGION = "no measurement: the segmentation lies outside every ultrasound tissue region"
NOTE_NOT_CALIBRATED = (
    "no measurement: the ultrasound region holding the segmentation is not calibrated in cm"
)
NOTE_DEGENERATE = "no measurement: the segmentation is too small to measure"
NOTE_OTHER_REGIONS = (
    "the segmentation has {count} more separate region(s), {share} of its area: only the "
    "largest is outlined and measured"
)


#: a segmentation's lesion probability above this is lesion
MASK_THRESHOLD = 0.5


def lesion_regions(probability: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The mask the node delivers from a 2D lesion probability map, the largest 8-connected
    component of ``probability > MASK_THRESHOLD`` (empty if none), and a note saying how many
    other regions it leaves out and their share of the segmented area (``None``: none), from one
    labelling. Inference outlines and measures the mask; training and evaluation score it
    (:func:`lesion_mask`), so their Dice is the Dice of the outline a radiologist sees."""
    segmented = np.asarray(probability) > MASK_THRESHOLD
    if not segmented.any():
        return segmented, None
    labels, counts = _components(segmented)
    largest = int(np.argmax(counts))
    others = int(labels.max()) - 1  # labels are 1..number of components
    if others == 0:
        return labels == largest, None
    share = 1.0 - counts[largest] / counts.sum()
    note = NOTE_OTHER_REGIONS.format(count=others, share=f"{share:.0%}" if share >= 0.005 else "<1%")
    return labels == largest, note


def lesion_mask(probability: np.ndarray) -> np.ndarray:
    """The mask of :func:`lesion_regions` alone."""
    return lesion_regions(probability)[0]


def _components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected labels of a 2D boolean mask and each label's pixel count (background 0)."""
    labels = label(binary, connectivity=2)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels, counts


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 2D mask, as a boolean array (empty if none)."""
    binary = np.asarray(mask).astype(bool)
    if not binary.any():
        return binary
    labels, counts = _components(binary)
    return labels == int(np.argmax(counts))


def _outline_points(component: np.ndarray) -> np.ndarray:
    """Sub-pixel outline points (column, row) of a non-empty component (the 0.5 iso-contour)."""
    rows, cols = np.nonzero(component)
    r0, c0 = rows.min(), cols.min()
    crop = component[r0 : rows.max() + 1, c0 : cols.max() + 1]
    padded = np.pad(crop.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    points = np.concatenate(contours, axis=0)
    return np.column_stack([points[:, 1] - 1 + c0, points[:, 0] - 1 + r0])


def _longest_chord(hull_sw: np.ndarray) -> tuple[float, float, float] | None:
    """(t, w_min, w_max) of the longest chord ``s = t`` of the closed convex polygon ``hull_sw``
    over its vertices' ``t`` (the first longest in vertex order), or ``None``.

    Every vertex against every edge at once: an edge crossing ``s = t`` gives the ``w`` where it
    does, an edge along it (same ``s`` at both ends) gives both its ends.
    """
    start, end = hull_sw, np.roll(hull_sw, -1, axis=0)
    s_a, s_b, w_a, w_b = start[:, 0], end[:, 0], start[:, 1], end[:, 1]
    t = hull_sw[:, :1]  # one row per vertex, one column per edge below
    crossing = (np.minimum(s_a, s_b) <= t) & (t <= np.maximum(s_a, s_b))
    along = np.isclose(s_a, s_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = w_a + (t - s_a) * (w_b - w_a) / (s_b - s_a)
    w_min = np.where(crossing, np.where(along, np.minimum(w_a, w_b), w), np.inf).min(axis=1)
    w_max = np.where(crossing, np.where(along, np.maximum(w_a, w_b), w), -np.inf).max(axis=1)
    found = crossing.any(axis=1)
    if not found.any():
        return None
    best = int(np.argmax(np.where(found, w_max - w_min, -np.inf)))
    return float(t[best, 0]), float(w_min[best]), float(w_max[best])


def axes_in_mm(component: np.ndarray, dx: float, dy: float) -> AxisMeasurements | None:
    """Long and short axis of one component with pixel size (dx, dy) mm.

    Long axis: the longest diameter of the outline's convex hull in mm space. Short axis: the
    longest chord of that hull perpendicular to the long axis (the chord length along the axis
    is concave and piecewise linear, so its maximum sits at a hull vertex). ``None`` when the
    outline is degenerate.
    """
    points_px = _outline_points(component)
    scale = np.array([dx, dy])
    points_mm = points_px * scale
    try:
        hull = ConvexHull(points_mm)
    except QhullError:
        return None
    vertices = points_mm[hull.vertices]
    distances = np.linalg.norm(vertices[:, None, :] - vertices[None, :, :], axis=-1)
    i, j = np.unravel_index(int(np.argmax(distances)), distances.shape)
    long_mm = float(distances[i, j])
    if long_mm <= 0.0:
        return None
    origin = vertices[i]
    u = (vertices[j] - origin) / long_mm
    v = np.array([-u[1], u[0]])
    relative = vertices - origin
    hull_sw = np.column_stack([relative @ u, relative @ v])
    best = _longest_chord(hull_sw)
    if best is None:
        return None
    t, w_min, w_max = best

    def to_px(point_mm: np.ndarray) -> tuple[float, float]:
        x, y = point_mm / scale
        return float(x), float(y)

    short_a = origin + t * u + w_min * v
    short_b = origin + t * u + w_max * v
    return AxisMeasurements(
        long_axis_mm=long_mm,
        short_axis_mm=float(w_max - w_min),
        long_axis_endpoints=(to_px(vertices[i]), to_px(vertices[j])),
        short_axis_endpoints=(to_px(short_a), to_px(short_b)),
    )


def measure_axes(
    mask: np.ndarray, dataset: pydicom.Dataset
) -> tuple[AxisMeasurements | None, str | None]:
    """Measure the largest connected component of ``mask`` on the source image ``dataset``.

    Parameters
    ----------
    mask
        2D mask on the source frame's pixel grid (Rows x Columns); non-zero is foreground.
    dataset
        The source instance; its SequenceOfUltrasoundRegions (PS3.3 C.8.5.5) gives the pixel
        size of the region that holds the component.

    Returns
    -------
    tuple
        (measurements, None) on success; (None, note) otherwise, the note saying why
        (empty mask, no calibration, outside every tissue region...). Endpoints are
        (column, row) on the source pixel grid.

    Raises
    ------
    ValueError
        When ``mask`` is not 2D or its shape differs from the image's Rows x Columns.
    """
    _check_mask(mask, dataset)
    return measure_component(largest_component(mask), dataset)


def _check_mask(mask: np.ndarray, dataset: pydicom.Dataset) -> None:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be 2D (Rows x Columns), got shape {array.shape}")
    rows, cols = dataset.get("Rows"), dataset.get("Columns")
    if rows is not None and cols is not None and array.shape != (int(rows), int(cols)):
        raise ValueError(f"mask shape {array.shape} differs from the image ({rows}, {cols})")


def measure_component(
    component: np.ndarray, dataset: pydicom.Dataset
) -> tuple[AxisMeasurements | None, str | None]:
    """:func:`measure_axes` of a mask that is one connected component already (the
    :func:`largest_component` of a segmentation): the same checks, notes and figures."""
    _check_mask(component, dataset)
    component = np.asarray(component).astype(bool)
    if not component.any():
        return None, NOTE_EMPTY_MASK
    if not tissue_regions(dataset):
        return None, NOTE_NO_REGIONS
    region = region_containing(dataset, component)
    if region is None:
        return None, NOTE_OUTSIDE_REGION
    spacing = mm_per_pixel(region)
    if spacing is None:
        return None, NOTE_NOT_CALIBRATED
    measurements = axes_in_mm(component, *spacing)
    if measurements is None:
        return None, NOTE_DEGENERATE
    logger.debug(
        "measured long %.2f mm, short %.2f mm",
        measurements.long_axis_mm,
        measurements.short_axis_mm,
    )
    return measurements, None
