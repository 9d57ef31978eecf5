"""Tests for inference.encode.sr: outline from a mask and the TID 1500 report content."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pytest
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

from inference.encode.codes import LATERALITIES
from inference.encode.seg import OutputIdentity
from inference.encode.source import clean_source
from inference.encode.sr import NodeReport, SRClass, build_sr, outline_from_mask, scoord_points
from inference.measure import measure_axes
from inference.prediction import Call
from phantom.us_dicom import US_IMAGE_STORAGE
from tests.support.predictions import lesion_spec, model_spec
from tests.support.sr_content import content_items, inferred_from, numeric_value

IDENTITY = OutputIdentity(
    "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12", 9002, 1, "AI Tiny SR"
)
TRACKING_UID = "1.2.826.0.1.3680043.8.498.13"
SPEC = model_spec()


def _report(**overrides) -> NodeReport:
    fields = {
        "probability": 0.75,
        "call": Call.PRESENT,
        "tracking_id": "Lymph node 1",
        "tracking_uid": TRACKING_UID,
    }
    fields.update(overrides)
    return NodeReport(**fields)


def _read(sr):
    buffer = BytesIO()
    sr.save_as(buffer)
    buffer.seek(0)
    return hd.sr.srread(buffer)


def _texts(sr, code_value="121106"):
    return [
        item.TextValue
        for item in content_items(sr)
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == code_value
    ]


def test_outline_from_mask_closed_bounded_and_close_to_mask():
    mask = np.zeros((100, 120), bool)
    mask[20:71, 30:91] = True  # rows 20..70, columns 30..90
    outline = outline_from_mask(mask)
    assert outline is not None
    assert np.array_equal(outline[0], outline[-1])
    assert len(outline) <= 129
    # SCOORD: pixel (column c, row r) spans [c, c + 1] x [r, r + 1]
    assert outline[:, 0].min() == pytest.approx(30.0, abs=0.5)
    assert outline[:, 0].max() == pytest.approx(91.0, abs=0.5)
    assert outline[:, 1].min() == pytest.approx(20.0, abs=0.5)
    assert outline[:, 1].max() == pytest.approx(71.0, abs=0.5)


def test_outline_from_mask_ellipse_simplified_below_limit():
    yy, xx = np.mgrid[0:400, 0:400]
    mask = ((xx - 200) / 180) ** 2 + ((yy - 200) / 120) ** 2 <= 1
    outline = outline_from_mask(mask, max_points=32)
    assert outline is not None and 8 <= len(outline) <= 33


def test_outline_from_mask_empty_none():
    assert outline_from_mask(np.zeros((10, 10), bool)) is None


def test_build_sr_measured_node_roundtrip_values(phantom):
    source, mask = phantom(seed=2)
    measurements, _ = measure_axes(mask, source)
    report = _report(outline=outline_from_mask(mask), measurements=measurements)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    assert sr.SOPClassUID == SRClass.COMPREHENSIVE_3D
    assert numeric_value(sr, "103339001") == round(measurements.long_axis_mm, 2)
    assert numeric_value(sr, "103340004") == round(measurements.short_axis_mm, 2)
    assert numeric_value(sr, "118586006") == round(measurements.short_to_long_ratio, 2)
    assert numeric_value(sr, "111047") == 75.0
    assert _texts(sr, "121050") == ["Short axis to long axis ratio"]


def _endpoints(scoord) -> np.ndarray:
    return np.asarray(scoord.GraphicData, dtype=float).reshape(-1, 2)


@pytest.mark.parametrize(("code", "axis"), [("103339001", "long"), ("103340004", "short")])
def test_build_sr_axis_inferred_from_polyline_of_its_endpoints_on_the_source(phantom, code, axis):
    source, mask = phantom(seed=2)
    measurements, _ = measure_axes(mask, source)
    report = _report(outline=outline_from_mask(mask), measurements=measurements)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    (scoord,) = inferred_from(sr, code)
    assert scoord.GraphicType == "POLYLINE"
    endpoints = getattr(measurements, f"{axis}_axis_endpoints")
    # SCOORD (0, 0) is the top-left corner of the top-left pixel: pixel centres at +0.5
    assert _endpoints(scoord) == pytest.approx(np.array(endpoints) + 0.5, abs=1e-4)
    (image,) = scoord.ContentSequence
    assert image.ValueType == "IMAGE" and image.RelationshipType == "SELECTED FROM"
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert "ReferencedFrameNumber" not in image.ReferencedSOPSequence[0]
    # the calipers are as long as the axis they draw (the phantom: 0.1 mm square pixels)
    a, b = _endpoints(scoord)
    mm = float(np.hypot(*(b - a))) * 0.1
    assert mm == pytest.approx(getattr(measurements, f"{axis}_axis_mm"), abs=0.01)


def test_build_sr_axes_lie_on_the_outline_and_cross_it(phantom):
    source, mask = phantom(seed=2)
    measurements, _ = measure_axes(mask, source)
    report = _report(outline=outline_from_mask(mask), measurements=measurements)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    (outline,) = inferred_from(sr, "111047")  # the probability's outline, as before
    assert len(outline.GraphicData) > 4
    rows, cols = np.nonzero(mask)
    for code in ("103339001", "103340004"):
        (scoord,) = inferred_from(sr, code)
        points = _endpoints(scoord)
        assert points[:, 0].min() >= cols.min() - 0.5 and points[:, 0].max() <= cols.max() + 1.5
        assert points[:, 1].min() >= rows.min() - 0.5 and points[:, 1].max() <= rows.max() + 1.5


def test_build_sr_cine_axes_reference_the_outlined_frame(phantom):
    source, mask = phantom(seed=2, frames=3)
    measurements, _ = measure_axes(mask, source)
    report = _report(outline=outline_from_mask(mask), measurements=measurements, frame_index=1)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    for code in ("111047", "103339001", "103340004"):
        (scoord,) = inferred_from(sr, code)
        assert int(scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber) == 2


def test_build_sr_no_measurement_no_axis_geometry(phantom):
    source, mask = phantom(seed=2, mm_per_pixel=None)
    sr = _read(build_sr(_report(outline=outline_from_mask(mask)), SPEC, clean_source(source), IDENTITY))
    assert len([i for i in content_items(sr) if i.ValueType == "SCOORD"]) == 1  # the outline


def test_scoord_points_shift_to_pixel_corners_and_stay_on_the_image():
    points = np.array([[0.0, 0.0], [9.0, 4.0], [-0.7, 4.8]])
    shifted = scoord_points(points, (5, 10))
    assert shifted == pytest.approx(np.array([[0.5, 0.5], [9.5, 4.5], [0.0, 5.0]]))


def test_build_sr_measured_node_group_tracking_outline_call(phantom):
    source, mask = phantom(seed=2)
    report = _report(outline=outline_from_mask(mask), call=Call.ABSENT)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    (group,) = sr.content.get_image_measurement_groups()
    assert group.tracking_uid == TRACKING_UID
    assert group.finding_type.value == "59441001"
    (scoord,) = [i for i in content_items(sr) if i.ValueType == "SCOORD"]
    assert scoord.GraphicType == "POLYLINE" and scoord.RelationshipType == "INFERRED FROM"
    assert (
        scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == source.SOPInstanceUID
    )
    evaluations = group.get_qualitative_evaluations(name=CodedConcept("128462008", "SCT", "x"))
    assert [e.value.value for e in evaluations] == ["272519000"]
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"


def test_build_sr_algorithm_and_image_library_present(phantom):
    source, mask = phantom(seed=2)
    sr = _read(build_sr(_report(outline=outline_from_mask(mask)), SPEC, clean_source(source), IDENTITY))
    assert "tiny-ynet" in _texts(sr, "111001")
    assert "0.1.0" in _texts(sr, "111003")
    assert _texts(sr, "111002") == ["threshold=0.5", f"weights sha256={SPEC.weights_sha256}"]
    library = [i for i in content_items(sr) if i.ConceptNameCodeSequence[0].CodeValue == "111028"]
    assert library, "image library (TID 1600) missing"


CALIBRATED_SPEC = model_spec(
    threshold=0.31,
    calibration={"method": "temperature", "temperature": 1.8, "fitted_on": "inner validation"},
    operating_point={"policy": "sensitivity=0.90", "chosen_on": "inner validation"},
)


def test_build_sr_states_operating_point_and_calibration_as_algorithm_parameters(phantom):
    source, mask = phantom(seed=2)
    report = _report(outline=outline_from_mask(mask))
    sr = _read(build_sr(report, CALIBRATED_SPEC, clean_source(source), IDENTITY))
    assert _texts(sr, "111002") == [
        "threshold=0.31",
        f"weights sha256={SPEC.weights_sha256}",
        "operating point=sensitivity=0.90",
        "calibration=temperature T=1.8",
    ]
    uncalibrated = model_spec(operating_point={"policy": "youden", "chosen_on": "validation"})
    sr = _read(build_sr(report, uncalibrated, clean_source(source), IDENTITY))
    assert _texts(sr, "111002")[2:] == ["operating point=youden"]


def test_build_sr_no_measurement_comment_and_no_mm(phantom):
    source, mask = phantom(seed=2, mm_per_pixel=None)
    measurements, note = measure_axes(mask, source)
    report = _report(outline=outline_from_mask(mask), measurements=measurements, comments=[note])
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    assert numeric_value(sr, "103339001") is None and numeric_value(sr, "103340004") is None
    assert any("no measurement" in text for text in _texts(sr))
    assert numeric_value(sr, "111047") == 75.0


def test_build_sr_nothing_segmented_probability_and_call_only(phantom):
    source, _ = phantom(seed=2)
    report = _report(call=Call.UNDETERMINED, comments=["nothing was segmented"])
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    assert not [i for i in content_items(sr) if i.ValueType == "SCOORD"]
    assert numeric_value(sr, "111047") == 75.0
    codes = [i.ConceptCodeSequence[0].CodeValue for i in content_items(sr) if i.ValueType == "CODE"]
    assert "373068000" in codes


def test_build_sr_cine_outline_references_frame(phantom):
    source, mask = phantom(seed=2, frames=3)
    report = _report(outline=outline_from_mask(mask), frame_index=1)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    (scoord,) = [i for i in content_items(sr) if i.ValueType == "SCOORD"]
    reference = scoord.ContentSequence[0].ReferencedSOPSequence[0]
    assert int(reference.ReferencedFrameNumber) == 2


def test_build_sr_comprehensive_fallback_class(phantom):
    source, mask = phantom(seed=2)
    sr = build_sr(
        _report(outline=outline_from_mask(mask)),
        SPEC,
        clean_source(source),
        IDENTITY,
        sr_class=SRClass.COMPREHENSIVE,
    )
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"


def test_build_sr_finding_site_and_laterality_coded(phantom):
    source, mask = phantom(seed=2)
    report = _report(
        outline=outline_from_mask(mask),
        finding_site=codes.SCT.AxillaryLymphNode,
        laterality=LATERALITIES["left"],
    )
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    coded = [i.ConceptCodeSequence[0].CodeValue for i in content_items(sr) if i.ValueType == "CODE"]
    assert "68171009" in coded and "7771000" in coded


def test_build_sr_probability_percent_unit_and_call_in_words(phantom):
    source, mask = phantom(seed=2)
    report = _report(outline=outline_from_mask(mask), probability=0.123456789)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    (item,) = [
        i for i in content_items(sr)
        if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeValue == "111047"
    ]
    measured = item.MeasuredValueSequence[0]
    assert str(measured.NumericValue) == "12.3"
    assert measured.MeasurementUnitsCodeSequence[0].CodeValue == "%"
    assert _texts(sr)[0] == "Metastasis: present (threshold 50.0 %)"


def test_build_sr_spec_lesion_finding_call_and_probability_concepts(phantom):
    source, mask = phantom(seed=2)
    spec = lesion_spec()
    report = _report(outline=outline_from_mask(mask), tracking_id="Lesion 1")
    sr = _read(build_sr(report, spec, clean_source(source), IDENTITY))
    (group,) = sr.content.get_image_measurement_groups()
    assert (group.finding_type.value, group.finding_type.meaning) == ("52988006", "Lesion")
    names = [i.ConceptNameCodeSequence[0].CodeMeaning for i in content_items(sr) if i.ValueType == "CODE"]
    assert "Malignant neoplastic disease" in names and "Metastasis" not in names
    assert "Lymph node" not in str(sr)
    assert _texts(sr)[0] == "Malignant neoplastic disease: present (threshold 28.5 %)"


def test_build_sr_two_frames_single_frame_class_no_frame_number(phantom):
    source, mask = phantom(seed=2, frames=2, sop_class_uid=US_IMAGE_STORAGE)
    report = _report(outline=outline_from_mask(mask), frame_index=1)
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    assert "ReferencedFrameNumber" not in str(sr)


def test_build_sr_observer_device_named_key_at_version(phantom):
    source, mask = phantom(seed=2)
    sr = _read(build_sr(_report(outline=outline_from_mask(mask)), SPEC, clean_source(source), IDENTITY))
    assert _texts(sr, "121013") == ["tiny-ynet@0.1.0"]
    assert _texts(sr, "121015") == ["tiny-ynet@0.1.0"]


def test_build_sr_notes_share_one_comment_after_the_call(phantom):
    source, mask = phantom(seed=2)
    report = _report(outline=outline_from_mask(mask), comments=["first note", "second note"])
    sr = _read(build_sr(report, SPEC, clean_source(source), IDENTITY))
    assert _texts(sr) == ["Metastasis: present (threshold 50.0 %)", "first note | second note"]
