"""Tests for inference.encode.sr: outline from a mask and the TID 1500 report content."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pytest
from highdicom.sr import CodedConcept

from inference.encode.seg import OutputIdentity
from inference.encode.source import clean_source
from inference.encode.sr import NodeReport, SRClass, build_sr, outline_from_mask
from inference.measure import measure_axes
from inference.prediction import Call

IDENTITY = OutputIdentity(
    "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12", 9002, 1, "AI Tiny SR"
)
TRACKING_UID = "1.2.826.0.1.3680043.8.498.13"


def _report(**overrides) -> NodeReport:
    fields = {
        "model_key": "tiny-ynet",
        "model_name": "Tiny Y-Net",
        "model_version": "0.1.0",
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


def _items(dataset):
    """Every content item of an SR tree, depth first."""
    for item in dataset.get("ContentSequence", []):
        yield item
        yield from _items(item)


def _num(sr, code_value):
    for item in _items(sr):
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == code_value:
            return float(item.MeasuredValueSequence[0].NumericValue)
    return None


def _texts(sr, code_value="121106"):
    return [
        item.TextValue
        for item in _items(sr)
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
    sr = _read(build_sr(report, clean_source(source), IDENTITY))
    assert sr.SOPClassUID == SRClass.COMPREHENSIVE_3D
    assert _num(sr, "103339001") == pytest.approx(measurements.long_axis_mm, rel=1e-9)
    assert _num(sr, "103340004") == pytest.approx(measurements.short_axis_mm, rel=1e-9)
    assert _num(sr, "118586006") == pytest.approx(measurements.short_to_long_ratio, rel=1e-9)
    assert _num(sr, "111047") == pytest.approx(0.75)
    assert _texts(sr, "121050") == ["Short axis to long axis ratio"]


def test_build_sr_measured_node_group_tracking_outline_call(phantom):
    source, mask = phantom(seed=2)
    report = _report(outline=outline_from_mask(mask), call=Call.ABSENT)
    sr = _read(build_sr(report, clean_source(source), IDENTITY))
    (group,) = sr.content.get_planar_roi_measurement_groups()
    assert group.tracking_uid == TRACKING_UID
    assert group.finding_type.value == "59441001"
    assert group.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert (
        group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == source.SOPInstanceUID
    )
    evaluations = group.get_qualitative_evaluations(name=CodedConcept("128462008", "SCT", "x"))
    assert [e.value.value for e in evaluations] == ["272519000"]
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"


def test_build_sr_algorithm_and_image_library_present(phantom):
    source, mask = phantom(seed=2)
    sr = _read(build_sr(_report(outline=outline_from_mask(mask)), clean_source(source), IDENTITY))
    assert "tiny-ynet" in _texts(sr, "111001")
    assert "0.1.0" in _texts(sr, "111003")
    library = [i for i in _items(sr) if i.ConceptNameCodeSequence[0].CodeValue == "111028"]
    assert library, "image library (TID 1600) missing"


def test_build_sr_no_measurement_comment_and_no_mm(phantom):
    source, mask = phantom(seed=2, mm_per_pixel=None)
    measurements, note = measure_axes(mask, source)
    report = _report(outline=outline_from_mask(mask), measurements=measurements, comments=[note])
    sr = _read(build_sr(report, clean_source(source), IDENTITY))
    assert _num(sr, "103339001") is None and _num(sr, "103340004") is None
    assert any("no measurement" in text for text in _texts(sr))
    assert _num(sr, "111047") == pytest.approx(0.75)


def test_build_sr_nothing_segmented_probability_and_call_only(phantom):
    source, _ = phantom(seed=2)
    report = _report(call=Call.UNDETERMINED, comments=["nothing was segmented"])
    sr = _read(build_sr(report, clean_source(source), IDENTITY))
    assert sr.content.get_planar_roi_measurement_groups() == []
    assert not [i for i in _items(sr) if i.ValueType == "SCOORD"]
    assert _num(sr, "111047") == pytest.approx(0.75)
    codes = [i.ConceptCodeSequence[0].CodeValue for i in _items(sr) if i.ValueType == "CODE"]
    assert "373068000" in codes


def test_build_sr_cine_outline_references_frame(phantom):
    source, mask = phantom(seed=2, frames=3)
    report = _report(outline=outline_from_mask(mask), frame_index=1)
    sr = _read(build_sr(report, clean_source(source), IDENTITY))
    (scoord,) = [i for i in _items(sr) if i.ValueType == "SCOORD"]
    reference = scoord.ContentSequence[0].ReferencedSOPSequence[0]
    assert int(reference.ReferencedFrameNumber) == 2


def test_build_sr_comprehensive_fallback_class(phantom):
    source, mask = phantom(seed=2)
    sr = build_sr(
        _report(outline=outline_from_mask(mask)),
        clean_source(source),
        IDENTITY,
        sr_class=SRClass.COMPREHENSIVE,
    )
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"


def test_build_sr_finding_site_and_laterality_coded(phantom):
    source, mask = phantom(seed=2)
    report = _report(outline=outline_from_mask(mask), finding_site="axillary", laterality="left")
    sr = _read(build_sr(report, clean_source(source), IDENTITY))
    codes = [i.ConceptCodeSequence[0].CodeValue for i in _items(sr) if i.ValueType == "CODE"]
    assert "68171009" in codes and "7771000" in codes
