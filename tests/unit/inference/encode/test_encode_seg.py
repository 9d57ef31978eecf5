"""Tests for inference.encode.seg: the BINARY SEG round-trips and carries dicom.md's codes."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from inference.encode.seg import OutputIdentity, build_seg
from inference.encode.source import clean_source
from kernel.errors import EncodeError
from tests.support.predictions import lesion_spec, model_spec, roundtrip

IDENTITY = OutputIdentity(
    "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", 9001, 1, "AI Tiny Y-Net 0.1.0 SEG"
)


def _build(source, mask, spec=None, pixel_spacing_mm=(0.1, 0.1)):
    return build_seg(
        mask,
        clean_source(source),
        IDENTITY,
        spec=spec or model_spec(),
        tracking_id="Lymph node 1",
        tracking_uid="1.2.826.0.1.3680043.8.498.3",
        pixel_spacing_mm=pixel_spacing_mm,
    )


def _segment(seg) -> Dataset:
    """The segment description, read back with pydicom (highdicom's reader refuses Pixel
    Measures without Slice Thickness, which a 2D ultrasound SEG has no value for)."""
    return roundtrip(seg).SegmentSequence[0]


def test_build_seg_grey_source_roundtrip_mask_equal(phantom):
    source, mask = phantom(seed=3)
    seg = roundtrip(_build(source, mask))
    assert np.array_equal(seg.pixel_array.astype(bool), mask.astype(bool))
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_build_seg_segment_codes_algorithm_and_tracking(phantom):
    source, mask = phantom(seed=3)
    segment = _segment(_build(source, mask))
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "59441001"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("tiny-ynet", "0.1.0")
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"
    assert segment.TrackingUID == "1.2.826.0.1.3680043.8.498.3"


def test_build_seg_us_source_patient_orientation_present(phantom):
    source, mask = phantom(seed=3, rgb=True)
    seg = _build(source, mask)
    assert "PatientOrientation" in seg
    assert seg.SeriesDescription == IDENTITY.series_description
    assert seg.StudyInstanceUID == source.StudyInstanceUID


def test_build_seg_cine_source_refused(phantom):
    source, mask = phantom(seed=3, frames=3)
    with pytest.raises(EncodeError, match="multi-frame"):
        _build(source, mask)


def test_build_seg_empty_mask_refused(phantom):
    source, mask = phantom(seed=3)
    with pytest.raises(EncodeError, match="empty"):
        _build(source, np.zeros_like(mask))


def test_build_seg_lesion_spec_segment_from_spec(phantom):
    source, mask = phantom(seed=3)
    segment = _segment(_build(source, mask, spec=lesion_spec()))
    assert segment.SegmentLabel == "lesion"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    segmented = segment.SegmentedPropertyTypeCodeSequence[0]
    assert (segmented.CodeValue, segmented.CodeMeaning) == ("52988006", "Lesion")


def test_build_seg_pixel_measures_and_orientation_for_viewers(phantom):
    source, mask = phantom(seed=3)
    seg = _build(source, mask, pixel_spacing_mm=(0.2, 0.1))
    shared = seg.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.2, 0.1]
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == [
        1.0, 0.0, 0.0, 0.0, 1.0, 0.0
    ]


def test_build_seg_equipment_named_key_at_version(phantom):
    source, mask = phantom(seed=3)
    seg = _build(source, mask)
    assert (seg.ManufacturerModelName, seg.SoftwareVersions) == ("tiny-ynet@0.1.0", "0.1.0")
