"""Tests for inference.encode.seg: the BINARY SEG round-trips and carries dicom.md's codes."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pytest

from inference.encode.seg import OutputIdentity, build_seg
from inference.encode.source import clean_source
from kernel.errors import EncodeError

IDENTITY = OutputIdentity(
    "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", 9001, 1, "AI Tiny Y-Net 0.1.0 SEG"
)


def _build(source, mask):
    return build_seg(
        mask,
        clean_source(source),
        IDENTITY,
        model_key="tiny-ynet",
        model_version="0.1.0",
        tracking_id="Lymph node 1",
        tracking_uid="1.2.826.0.1.3680043.8.498.3",
    )


def _read(seg):
    buffer = BytesIO()
    seg.save_as(buffer)
    buffer.seek(0)
    return hd.seg.segread(buffer)


def test_build_seg_grey_source_roundtrip_mask_equal(phantom):
    source, mask = phantom(seed=3)
    seg = _read(_build(source, mask))
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    assert np.array_equal(pixels.squeeze().astype(bool), mask.astype(bool))


def test_build_seg_segment_codes_algorithm_and_tracking(phantom):
    source, mask = phantom(seed=3)
    seg = _read(_build(source, mask))
    segment = seg.get_segment_description(1)
    assert segment.segmented_property_category.value == "91723000"
    assert segment.segmented_property_type.value == "59441001"
    assert segment.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    algorithm = segment.algorithm_identification[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("tiny-ynet", "0.1.0")
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"
    assert segment.tracking_uid == "1.2.826.0.1.3680043.8.498.3"


def test_build_seg_us_source_patient_orientation_present(phantom):
    source, mask = phantom(seed=3, rgb=True)
    seg = _build(source, mask)
    assert "PatientOrientation" in seg
    assert seg.SeriesDescription == "AI Tiny Y-Net 0.1.0 SEG"
    assert seg.StudyInstanceUID == source.StudyInstanceUID


def test_build_seg_cine_source_refused(phantom):
    source, mask = phantom(seed=3, frames=3)
    with pytest.raises(EncodeError, match="multi-frame"):
        _build(source, mask)


def test_build_seg_empty_mask_refused(phantom):
    source, mask = phantom(seed=3)
    with pytest.raises(EncodeError, match="empty"):
        _build(source, np.zeros_like(mask))
