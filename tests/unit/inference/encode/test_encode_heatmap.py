"""Tests for inference.encode.heatmap: frame decoding, blending and the Secondary Capture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageFont
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from inference.encode.heatmap import (
    BAR_WIDTH,
    blend_heatmap,
    build_heatmap,
    heatmap_label,
    label_lines,
    source_frame_rgb,
)
from inference.encode.seg import OutputIdentity
from inference.encode.source import clean_source
from kernel.errors import EncodeError
from phantom.us_dicom import US_IMAGE_STORAGE
from tests.support.predictions import model_spec

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
    image = roundtrip(
        build_heatmap(frame, heat, clean_source(source), IDENTITY, spec=model_spec())
    )
    assert image.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert image.PhotometricInterpretation == "RGB"
    assert image.BurnedInAnnotation == "YES"
    assert image.Laterality == "" or image.Laterality is None
    assert image.StudyInstanceUID == source.StudyInstanceUID
    assert image.SeriesInstanceUID == IDENTITY.series_instance_uid
    assert image.pixel_array.shape == (source.Rows, source.Columns + BAR_WIDTH, 3)
    assert image.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert image.ConversionType == "WSD"
    assert "Grad-CAM" in image.DerivationDescription
    assert image.DerivationCodeSequence[0].CodeValue == "113042"
    assert (image.ManufacturerModelName, image.SoftwareVersions) == ("tiny-ynet@0.1.0", "0.1.0")


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("Laterality", "R", "R"),
        ("ImageLaterality", "l", "L"),  # the image's own side, as the SR's finding site says
        ("Laterality", "B", ""),  # no one side: unknown, as for no laterality at all
        (None, None, ""),
    ],
)
def test_build_heatmap_laterality_of_the_source_else_empty(phantom, roundtrip, keyword, value, expected):
    """The heatmap's series Laterality (Type 2C, which dciodvfy requires of a Secondary Capture)
    is the source's side; empty (unknown) only when the source names none (it was always empty,
    and dciodvfy warned that it is "only permitted to be empty when actually unknown")."""
    source, _ = phantom(seed=4)
    if keyword is not None:
        setattr(source, keyword, value)
    frame = source_frame_rgb(source, 0)
    heat = np.zeros((source.Rows, source.Columns))
    image = roundtrip(build_heatmap(frame, heat, clean_source(source), IDENTITY, spec=model_spec()))
    assert "Laterality" in image and image.Laterality == expected


def test_heatmap_label_whole_version_and_method():
    spec = model_spec(key="a-rather-long-model-key-for-a-label", version="10.20.30rc4")
    assert heatmap_label(spec) == "Grad-CAM a-rather-long-model-key-for-a-label@10.20.30rc4"


def test_label_lines_narrow_image_wraps_never_cuts():
    font = ImageFont.load_default()
    lines = label_lines("Grad-CAM ynet-busi@1.0.0", 60, font)
    assert lines == ["Grad-CAM", "ynet-busi@1.0.0"]
    assert label_lines("Grad-CAM ynet-busi@1.0.0", 600, font) == ["Grad-CAM ynet-busi@1.0.0"]


def test_build_heatmap_two_frames_single_frame_class_no_frame_number(phantom):
    source, _ = phantom(seed=4, frames=2, sop_class_uid=US_IMAGE_STORAGE)
    frame = source_frame_rgb(source, 1)
    heat = np.zeros((source.Rows, source.Columns))
    image = build_heatmap(frame, heat, clean_source(source), IDENTITY, spec=model_spec(), frame_index=1)
    assert "ReferencedFrameNumber" not in image.SourceImageSequence[0]


def test_build_heatmap_cine_frame_number_referenced(phantom):
    source, _ = phantom(seed=4, frames=3)
    frame = source_frame_rgb(source, 1)
    heat = np.zeros((source.Rows, source.Columns))
    image = build_heatmap(frame, heat, clean_source(source), IDENTITY, spec=model_spec(), frame_index=1)
    assert image.SourceImageSequence[0].ReferencedFrameNumber == 2
