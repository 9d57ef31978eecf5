"""Tests for inference.encode.outputs: roles, deterministic identity, links between outputs."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit

from inference.encode.not_run import build_not_run_outputs
from inference.encode.outputs import NOTE_NO_SEG_UNCALIBRATED, NOTE_NO_SEGMENTATION, build_outputs
from inference.encode.source import PATIENT_AND_STUDY, clean_source
from inference.measure import NOTE_NO_REGIONS, measure_axes
from inference.prediction import Call
from kernel.errors import EncodeError
from tests.support.predictions import lesion_spec, model_spec
from tests.support.sr_content import content_items, numeric_value

SOURCES = {
    "grey": {},
    "rgb": {"rgb": True},
    "jpeg": {"rgb": True, "transfer_syntax": JPEGBaseline8Bit},
    "uncalibrated": {"mm_per_pixel": None},
    "cine": {"frames": 3},
}


def _comments(sr):
    """Every note of the SR's comments (the notes share one comment, " | "-separated)."""
    return [
        note
        for i in content_items(sr)
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == "121106"
        for note in i.TextValue.split(" | ")
    ]


def _bytes(dataset) -> BytesIO:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("kind", list(SOURCES))
def test_build_outputs_phantom_roundtrip_read_by_highdicom(phantom, make_prediction, kind, spec):
    source, mask = phantom(seed=5, **SOURCES[kind])
    outputs = build_outputs(make_prediction(source, mask), source, job_id=11, spec=spec)
    expected = {"sr", "heatmap"} if kind in {"cine", "uncalibrated"} else {"seg", "sr", "heatmap"}
    assert set(outputs) == expected
    if "seg" in outputs:
        seg = pydicom.dcmread(_bytes(outputs["seg"]))
        assert len(seg.SegmentSequence) == 1
        assert "PixelMeasuresSequence" in seg.SharedFunctionalGroupsSequence[0]
    sr = hd.sr.srread(_bytes(outputs["sr"]))
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    image = hd.imread(_bytes(outputs["heatmap"]))
    assert image.BurnedInAnnotation == "YES"


def test_build_outputs_twice_same_uids_and_numbers(phantom, make_prediction, spec):
    source, mask = phantom(seed=5)
    first = build_outputs(make_prediction(source, mask), source, job_id=12, spec=spec)
    second = build_outputs(make_prediction(source, mask), source, job_id=12, spec=spec)
    for role in first:
        for keyword in ("SeriesInstanceUID", "SOPInstanceUID", "SeriesNumber", "InstanceNumber"):
            assert first[role][keyword].value == second[role][keyword].value


def test_build_outputs_other_job_other_uids(phantom, make_prediction, spec):
    source, mask = phantom(seed=5)
    first = build_outputs(make_prediction(source, mask), source, job_id=12, spec=spec)
    other = build_outputs(make_prediction(source, mask), source, job_id=13, spec=spec)
    assert {d.SOPInstanceUID for d in first.values()}.isdisjoint(
        d.SOPInstanceUID for d in other.values()
    )


def test_build_outputs_series_numbers_from_base_and_descriptions(phantom, make_prediction, spec):
    source, mask = phantom(seed=5)
    outputs = build_outputs(
        make_prediction(source, mask), source, 14, series_number_base=500, spec=spec
    )
    assert [outputs[r].SeriesNumber for r in ("seg", "sr", "heatmap")] == [501, 502, 503]
    descriptions = {role: outputs[role].SeriesDescription for role in outputs}
    assert descriptions == {
        "seg": "SEG AI tiny-ynet@0.1.0",
        "sr": "SR AI tiny-ynet@0.1.0",
        "heatmap": "Grad-CAM AI tiny-ynet@0.1.0",
    }
    for dataset in outputs.values():
        assert dataset.SeriesInstanceUID != source.SeriesInstanceUID


def test_outputs_replacing_earlier_ones_numbered_and_described_as_revisions(phantom, make_prediction, spec):
    """A viewer's series list tells a replacing report's outputs from those they replace (OHIF
    listed two identical "SR AI ... S:9002"): revision n numbers them 10 n higher and says so."""
    source, mask = phantom(seed=5)
    prediction = make_prediction(source, mask)
    first = build_outputs(prediction, source, 21, spec=spec)
    second = build_outputs(prediction, source, 22, spec=spec, replaces=first["sr"])
    third = build_outputs(prediction, source, 23, spec=spec, replaces=second["sr"])
    numbers = [[o[r].SeriesNumber for r in ("seg", "sr", "heatmap")] for o in (first, second, third)]
    assert numbers == [[9001, 9002, 9003], [9011, 9012, 9013], [9021, 9022, 9023]]
    assert [o["sr"].SeriesDescription for o in (first, second, third)] == [
        "SR AI tiny-ynet@0.1.0",
        "SR AI tiny-ynet@0.1.0 (revision 1)",
        "SR AI tiny-ynet@0.1.0 (revision 2)",
    ]
    assert second["heatmap"].SeriesDescription == "Grad-CAM AI tiny-ynet@0.1.0 (revision 1)"


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_outputs_state_the_offset_of_their_local_times(phantom, make_prediction, spec, monkeypatch, zone):
    """highdicom writes local dates and times; each output says their offset from UTC."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        source, mask = phantom(seed=5)
        expected = time.strftime("%z")
        for dataset in build_outputs(make_prediction(source, mask), source, 16, spec=spec).values():
            assert dataset.TimezoneOffsetFromUTC == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_build_outputs_every_output_air_equipment(phantom, make_prediction, spec):
    source, mask = phantom(seed=5)
    for dataset in build_outputs(make_prediction(source, mask), source, 15, spec=spec).values():
        purposes = [
            item.PurposeOfReferenceCodeSequence[0].CodeValue
            for item in dataset.ContributingEquipmentSequence
        ]
        assert "Newcode1" in purposes


def test_build_outputs_sr_mm_equal_measure_axes(phantom, make_prediction, roundtrip, spec):
    source, mask = phantom(seed=6)
    expected, note = measure_axes(mask, source)
    assert note is None
    sr = roundtrip(build_outputs(make_prediction(source, mask), source, 16, spec=spec)["sr"])
    assert numeric_value(sr, "103339001") == round(expected.long_axis_mm, 2)
    assert numeric_value(sr, "103340004") == round(expected.short_axis_mm, 2)


def test_build_outputs_prediction_measurements_used_as_given(
    phantom, make_prediction, roundtrip, spec
):
    source, mask = phantom(seed=6)
    measured, _ = measure_axes(mask, source)
    prediction = make_prediction(source, mask, measurements=measured)
    sr = roundtrip(build_outputs(prediction, source, 16, spec=spec)["sr"])
    assert numeric_value(sr, "103339001") == round(measured.long_axis_mm, 2)


def test_build_outputs_no_calibration_sr_says_why(phantom, make_prediction, roundtrip, spec):
    source, mask = phantom(seed=6, mm_per_pixel=None)
    sr = roundtrip(build_outputs(make_prediction(source, mask), source, 17, spec=spec)["sr"])
    assert numeric_value(sr, "103339001") is None
    assert NOTE_NO_REGIONS in _comments(sr)


def test_build_outputs_mask_none_sr_probability_and_call_only(
    phantom, make_prediction, roundtrip, spec
):
    source, _ = phantom(seed=6)
    prediction = make_prediction(source, None, probability=0.2, call=Call.ABSENT)
    outputs = build_outputs(prediction, source, 18, spec=spec)
    assert set(outputs) == {"sr", "heatmap"}
    sr = roundtrip(outputs["sr"])
    assert numeric_value(sr, "111047") == 20.0
    assert not [i for i in content_items(sr) if i.ValueType == "SCOORD"]
    assert NOTE_NO_SEGMENTATION in _comments(sr)


def test_build_outputs_empty_mask_no_seg(phantom, make_prediction, spec):
    source, mask = phantom(seed=6)
    outputs = build_outputs(make_prediction(source, np.zeros_like(mask)), source, 19, spec=spec)
    assert "seg" not in outputs


def test_build_outputs_seg_and_sr_share_tracking_uid_seg_is_evidence(
    phantom, make_prediction, roundtrip, spec
):
    source, mask = phantom(seed=6)
    outputs = build_outputs(make_prediction(source, mask), source, 20, spec=spec)
    seg, sr = roundtrip(outputs["seg"]), roundtrip(outputs["sr"])
    segment_uid = seg.SegmentSequence[0].TrackingUID
    uids = [i.UID for i in content_items(sr) if i.ValueType == "UIDREF"]
    assert segment_uid in uids
    evidence = [
        instance.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    ]
    assert seg.SOPInstanceUID in evidence and source.SOPInstanceUID in evidence


def test_build_outputs_notes_in_sr(phantom, make_prediction, roundtrip, spec):
    source, mask = phantom(seed=6)
    prediction = make_prediction(source, mask, notes=["input cropped to the tissue region"])
    sr = roundtrip(build_outputs(prediction, source, 21, spec=spec)["sr"])
    assert "input cropped to the tissue region" in _comments(sr)


def test_build_outputs_cine_outline_on_prediction_frame(phantom, make_prediction, roundtrip, spec):
    source, mask = phantom(seed=6, frames=3)
    sr = roundtrip(
        build_outputs(make_prediction(source, mask, frame_index=2), source, 22, spec=spec)["sr"]
    )
    scoords = [i for i in content_items(sr) if i.ValueType == "SCOORD"]
    assert len(scoords) == 3  # the outline and the long and short axis
    frames = {int(s.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber) for s in scoords}
    assert frames == {3}


def test_build_outputs_retired_source_class_referenced_as_is(phantom, make_prediction, spec):
    source, mask = phantom(seed=6, sop_class_uid="1.2.840.10008.5.1.4.1.1.6")
    outputs = build_outputs(make_prediction(source, mask), source, 23, spec=spec)
    seg = outputs["seg"]
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.6"


def test_build_outputs_lesion_spec_lesion_everywhere_never_lymph_node(phantom, make_prediction):
    source, mask = phantom(seed=6)
    outputs = build_outputs(make_prediction(source, mask), source, 21, spec=lesion_spec())
    seg_segment = outputs["seg"].SegmentSequence[0]
    assert seg_segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Lesion"
    assert seg_segment.TrackingID == "Lesion 1"
    finding = [
        i for i in content_items(outputs["sr"]) if i.ConceptNameCodeSequence[0].CodeValue == "121071"
    ]
    assert finding[0].ConceptCodeSequence[0].CodeMeaning == "Lesion"
    for dataset in outputs.values():
        assert "Lymph node" not in str(dataset) and "Metastasis" not in str(dataset)


def test_build_outputs_finding_site_spec_else_source_anatomy_laterality_from_source(
    phantom, make_prediction, roundtrip
):
    source, mask = phantom(seed=6)
    sr = build_outputs(make_prediction(source, mask), source, 22, spec=lesion_spec())["sr"]
    sites = [i for i in content_items(sr) if i.ConceptNameCodeSequence[0].CodeValue == "363698007"]
    assert sites[0].ConceptCodeSequence[0].CodeMeaning == "Breast"
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator = "68171009", "SCT"
    region.CodeMeaning = "Axillary lymph node"
    source.AnatomicRegionSequence = [region]
    source.ImageLaterality = "L"
    sr = build_outputs(make_prediction(source, mask), source, 22, spec=lesion_spec())["sr"]
    sites = [i for i in content_items(sr) if i.ConceptNameCodeSequence[0].CodeValue == "363698007"]
    assert sites[0].ConceptCodeSequence[0].CodeMeaning == "Axillary lymph node"
    lateralities = [i for i in content_items(sr) if i.ConceptNameCodeSequence[0].CodeValue == "272741003"]
    assert lateralities[0].ConceptCodeSequence[0].CodeValue == "7771000"


def test_build_outputs_every_output_same_patient_and_study_attributes(phantom, make_prediction, spec):
    """The heatmap carried no StudyDescription, IssuerOfPatientID or PatientAge (highdicom's SC
    copies part of the modules): a PACS showed an empty study description when it came first,
    and could file it apart where patients are told apart by issuer."""
    source, mask = phantom(seed=3)
    source.StudyDescription, source.IssuerOfPatientID, source.PatientAge = "US BREAST", "HOSP", "045Y"
    outputs = build_outputs(make_prediction(source, mask), source, 1, spec=spec)
    keywords = PATIENT_AND_STUDY
    expected = {k: str(clean_source(source).get(k) or "") for k in keywords}
    assert expected["StudyDescription"] == "US BREAST" and expected["IssuerOfPatientID"] == "HOSP"
    for role, output in outputs.items():
        assert all(k in output for k in expected if expected[k]), role
        assert {k: str(output.get(k) or "") for k in keywords} == expected, role


def test_build_outputs_other_model_spec_refused(phantom, make_prediction):
    source, mask = phantom(seed=6)
    with pytest.raises(EncodeError, match="spec"):
        build_outputs(make_prediction(source, mask), source, 23, spec=model_spec(version="9.9.9"))


def test_build_outputs_one_model_name_on_every_output(phantom, make_prediction, spec):
    source, mask = phantom(seed=6)
    outputs = build_outputs(make_prediction(source, mask), source, 24, spec=spec)
    for role in ("seg", "heatmap"):
        assert outputs[role].ManufacturerModelName == "tiny-ynet@0.1.0"
    for dataset in outputs.values():
        assert dataset.ContributingEquipmentSequence[-1].ManufacturerModelName == "tiny-ynet@0.1.0"
    names = [
        i.TextValue
        for i in content_items(outputs["sr"])
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue in {"121013", "121015"}
    ]
    assert names == ["tiny-ynet@0.1.0", "tiny-ynet@0.1.0"]


def test_build_outputs_uncalibrated_no_seg_sr_polygon_and_why(
    phantom, make_prediction, roundtrip, spec
):
    source, mask = phantom(seed=6, mm_per_pixel=None)
    outputs = build_outputs(make_prediction(source, mask), source, 25, spec=spec)
    assert set(outputs) == {"sr", "heatmap"}
    sr = roundtrip(outputs["sr"])
    assert [i for i in content_items(sr) if i.ValueType == "SCOORD"]
    assert NOTE_NO_SEG_UNCALIBRATED in _comments(sr)


def test_build_outputs_seg_pixel_spacing_from_region_calibration(phantom, make_prediction, spec):
    source, mask = phantom(seed=6)  # 0.1 mm per pixel
    seg = build_outputs(make_prediction(source, mask), source, 26, spec=spec)["seg"]
    spacing = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.1, 0.1])


def _library_modality(sr) -> tuple[str, str]:
    """(CodeValue, CodeMeaning) of the image library entry's Modality (121139, DCM)."""
    coded = [i.ConceptCodeSequence[0] for i in content_items(sr)
             if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "121139"]
    assert len(coded) == 1
    return coded[0].CodeValue, coded[0].CodeMeaning


def test_build_outputs_ultrasound_secondary_capture_listed_as_us_not_ot(
    phantom, make_prediction, spec
):
    """highdicom codes an image library entry's modality from its SOP class: an ultrasound
    Secondary Capture (Modality US) was listed as OT, "Other" (pixelmed: not in CID 29)."""
    source, mask = phantom(seed=6, sop_class_uid="1.2.840.10008.5.1.4.1.1.7")
    assert source.Modality == "US"
    outputs = build_outputs(make_prediction(source, mask), source, 23, spec=spec)
    assert _library_modality(outputs["sr"]) == ("US", "Ultrasound")
    plain, plain_mask = phantom(seed=6)
    assert _library_modality(build_outputs(make_prediction(plain, plain_mask), plain, 24,
                                           spec=spec)["sr"]) == ("US", "Ultrasound")


def test_not_run_sr_of_a_job_other_uids_than_its_run_sr(phantom, make_prediction, spec):
    """A job encoded run and, requeued after a scope or gate change, not run gave two
    different reports one SOP Instance UID (a PACS keeps one of them)."""
    source, mask = phantom(seed=6)
    run = build_outputs(make_prediction(source, mask), source, 23, spec=spec)["sr"]
    not_run = build_not_run_outputs(model_key=spec.key, model_name=spec.key,
                                    model_version=spec.version, reason="out of scope",
                                    source=source, job_id=23)["sr"]
    assert not_run.SOPInstanceUID != run.SOPInstanceUID
    assert not_run.SeriesInstanceUID != run.SeriesInstanceUID
    again = build_not_run_outputs(model_key=spec.key, model_name=spec.key,
                                  model_version=spec.version, reason="out of scope",
                                  source=source, job_id=23)["sr"]
    assert again.SOPInstanceUID == not_run.SOPInstanceUID  # still deterministic
