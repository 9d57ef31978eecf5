"""The study page's pictures: outline from the SEG or the SR polygon, heatmap pixels."""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image

from web import render
from web.report import read_report


def _outline_pixels(image: np.ndarray) -> np.ndarray:
    return (image == np.asarray(render.OUTLINE_RGB, dtype=np.uint8)).all(axis=-1)


def test_seg_mask_phantom_equals_true_mask(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs()
    mask = render.seg_mask(out.files["seg"], str(out.source.SOPInstanceUID))
    assert mask is not None and mask.shape == out.mask.shape
    assert np.array_equal(mask, out.mask)


def test_seg_mask_other_source_gives_none(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs()
    assert render.seg_mask(out.files["seg"], "1.2.3.4") is None


def test_draw_mask_outline_paints_boundary_only() -> None:
    image = np.full((40, 50, 3), 90, dtype=np.uint8)
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:30, 15:35] = True
    painted = _outline_pixels(render.draw_mask_outline(image, mask))
    assert painted[10, 20] and painted[29, 20] and painted[20, 15]
    assert not painted[20, 25]  # inside stays the image
    assert not painted[0, 0]  # far outside stays the image
    assert painted.sum() < mask.sum()


def test_draw_polyline_sr_outline_paints_around_node(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs(frames=3, frame_index=1)
    (finding,) = read_report(out.files["sr"]).findings
    frame = render.source_frame(out.source_path, finding.source_frame_number)
    painted = _outline_pixels(render.draw_polyline(frame, finding.outline))
    rows, cols = np.nonzero(painted)
    true_rows, true_cols = np.nonzero(out.mask)
    assert painted.sum() > 20
    assert abs(rows.mean() - true_rows.mean()) < 3 and abs(cols.mean() - true_cols.mean()) < 3


def test_source_frame_grey_gives_rgb8(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs()
    frame = render.source_frame(out.source_path, 1)
    assert frame.dtype == np.uint8 and frame.shape == (*out.mask.shape, 3)
    assert frame.std() > 5


def test_to_rgb8_sixteen_bit_scales_to_byte_range() -> None:
    grey = np.array([[0, 65535]], dtype=np.uint16)
    assert render.to_rgb8(grey)[0, :, 0].tolist() == [0, 255]


def test_heatmap_png_has_colour_scale(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs()
    image = np.asarray(Image.open(BytesIO(render.heatmap_png(out.files["heatmap"]))).convert("RGB"))
    assert image.shape[0] == out.mask.shape[0]
    red = ((image[..., 0] > 180) & (image[..., 1] < 80) & (image[..., 2] < 80)).sum()
    blue = ((image[..., 2] > 180) & (image[..., 0] < 80) & (image[..., 1] < 80)).sum()
    assert red > 50 and blue > 50


def test_draw_polyline_axes_cross_inside_the_node(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs()
    (finding,) = read_report(out.files["sr"]).findings
    frame = render.source_frame(out.source_path, 1)
    drawn = frame
    for axis in finding.axes:
        drawn = render.draw_polyline(drawn, axis)
    painted = _outline_pixels(drawn)
    assert painted.sum() > 10 and (painted & out.mask).sum() > 0.8 * painted.sum()
