"""Tests for inference.encode.heatmap: frame decoding, blending and the Secondary Capture."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from inference.encode.heatmap import BAR_WIDTH, blend_heatmap, build_heatmap, source_frame_rgb
from inference.encode.seg import OutputIdentity
from inference.encode.source import clean_source
from kernel.errors import EncodeError

IDENTITY = OutputIdentity(
    "1.2.826.0.1.3680043.8.498.21", "1.2.826.0.1.3680043.8.498.22", 9003, 1, "AI Tiny Grad-CAM"
)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rgb": True},
        {"rgb": True, "transfer_syntax": JPEGBaseline8Bit},
        {"transfer_syntax": RLELossless},
    ],
    ids=["grey", "rgb", "jpeg-ybr", "rle"],
)
def test_source_frame_rgb_any_encoding_uint8_rgb(phantom, kwargs):
    source, _ = phantom(seed=4, **kwargs)
    frame = source_frame_rgb(source, 0)
    assert frame.shape == (source.Rows, source.Columns, 3) and frame.dtype == np.uint8
    # the phantom is grey: the three channels agree (JPEG: within compression error)
    assert np.abs(frame[..., 0].astype(int) - frame[..., 2]).mean() < 3


def test_source_frame_rgb_cine_selected_frame(phantom):
    source, _ = phantom(seed=4, frames=3)
    assert np.array_equal(source_frame_rgb(source, 2)[..., 0], source.pixel_array[2])


def test_source_frame_rgb_of_a_jpeg_cine_decodes_only_the_frame_shown(phantom):
    source, _ = phantom(seed=4, frames=3, transfer_syntax=JPEGBaseline8Bit)
    frames = list(generate_frames(source.PixelData, number_of_frames=3))
    source.PixelData = encapsulate([b"\xff\xd8 not a JPEG", *frames[1:]])
    assert source_frame_rgb(source, 2).shape == (source.Rows, source.Columns, 3)
    with pytest.raises(Exception):  # noqa: B017  (the damaged frame 0 is decoded only when shown)
        source_frame_rgb(source, 0)


def test_source_frame_rgb_frame_out_of_range_raises(phantom):
    source, _ = phantom(seed=4, frames=3)
    with pytest.raises(EncodeError, match="frame index"):
        source_frame_rgb(source, 3)


def test_source_frame_rgb_monochrome1_inverted(phantom):
    source, _ = phantom(seed=4)
    expected = 255 - source.pixel_array
    source.PhotometricInterpretation = "MONOCHROME1"
    assert np.array_equal(source_frame_rgb(source, 0)[..., 0], expected)


def test_blend_heatmap_hot_pixel_red_cold_pixel_grey():
    frame = np.full((100, 100, 3), 100, np.uint8)
    heat = np.zeros((100, 100))
    heat[40:60, 40:60] = 1.0
    out = blend_heatmap(frame, heat, "")
    assert out.shape == (100, 100 + BAR_WIDTH, 3)
    red, _, blue = out[50, 50].astype(int)
    assert red > blue and red > 100
    assert tuple(out[90, 5]) == (100, 100, 100)


def test_blend_heatmap_shape_mismatch_raises():
    with pytest.raises(EncodeError, match="heatmap shape"):
        blend_heatmap(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 5)), "")


def test_build_heatmap_rgb_secondary_capture_roundtrip(phantom, roundtrip):
    source, _ = phantom(seed=4)
    frame = source_frame_rgb(source, 0)
    heat = np.linspace(0, 1, source.Rows * source.Columns).reshape(source.Rows, source.Columns)
    image = roundtrip(build_heatmap(frame, heat, clean_source(source), IDENTITY, label="Tiny"))
    assert image.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert image.PhotometricInterpretation == "RGB"
    assert image.BurnedInAnnotation == "YES"
    assert image.Laterality == "" or image.Laterality is None
    assert image.StudyInstanceUID == source.StudyInstanceUID
    assert image.SeriesInstanceUID == IDENTITY.series_instance_uid
    assert image.pixel_array.shape == (source.Rows, source.Columns + BAR_WIDTH, 3)
    assert image.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
