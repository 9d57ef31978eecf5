"""Our SR read back as a radiologist's report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.prediction import Call
from tests.support.predictions import lesion_spec
from web.report import ReportError, read_report


def test_read_report_single_frame_gives_model_probability_call_axes(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs(probability=0.8, call=Call.PRESENT, notes=["test note"])
    report = read_report(out.files["sr"])
    assert report.title == "Imaging Measurement Report"
    assert report.sr_class == "Comprehensive 3D SR Storage"
    assert report.device_name == "tiny-ynet@0.1.0"
    assert report.completion == "COMPLETE"
    (finding,) = report.findings
    assert finding.algorithm_name == "tiny-ynet" and finding.algorithm_version == "0.1.0"
    assert finding.probability == 80.0 and finding.probability_name == "Probability of cancer"
    assert finding.call == "Present" and finding.threshold == 0.5
    assert finding.call_text == "Metastasis: present (threshold 50.0 %)"
    assert finding.finding == "Lymph node"
    assert finding.long_axis_mm == round(out.long_axis_mm, 2)
    assert finding.short_axis_mm == round(out.short_axis_mm, 2)
    assert finding.ratio == pytest.approx(out.short_axis_mm / out.long_axis_mm, abs=0.01)
    assert finding.notes == ["test note"]  # the call reads as the call, not as a note
    assert finding.source_sop_instance_uid == str(out.source.SOPInstanceUID)
    assert finding.source_frame_number == 1
    assert len(finding.outline) >= 4 and finding.outline[0] == finding.outline[-1]


def test_read_report_cine_gives_frame_and_outline_without_seg(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs(frames=3, frame_index=2, probability=0.2, call=Call.ABSENT)
    assert "seg" not in out.files
    (finding,) = read_report(out.files["sr"]).findings
    assert finding.source_frame_number == 3
    assert finding.call == "Absent" and finding.probability == 20.0
    assert finding.outline
    assert any("frame 3" in note for note in finding.notes)


def test_read_report_not_an_sr_raises(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs()
    with pytest.raises(ReportError, match="not a readable SR"):
        read_report(out.files["heatmap"])


def test_read_report_lesion_spec_reads_lesion_breast_and_its_call(written_outputs) -> None:  # type: ignore[no-untyped-def]
    out = written_outputs(spec=lesion_spec())
    (finding,) = read_report(out.files["sr"]).findings
    assert (finding.finding, finding.finding_site) == ("Lesion", "Breast")
    assert finding.tracking_id == "Lesion 1"
    assert finding.call_text == "Malignant neoplastic disease: present (threshold 28.5 %)"


def test_read_report_gives_the_calipers_the_axes_were_measured_along(written_outputs) -> None:  # type: ignore[no-untyped-def]
    """The study page drew the outline only: the SR's axis calipers were not read."""
    out = written_outputs()
    (finding,) = read_report(out.files["sr"]).findings
    assert len(finding.axes) == 2 and all(len(axis) == 2 for axis in finding.axes)
    long_px, short_px = (math.dist(*axis) for axis in finding.axes)
    assert short_px / long_px == pytest.approx(out.short_axis_mm / out.long_axis_mm, abs=0.01)
    rows, cols = np.nonzero(out.mask)
    for x, y in (point for axis in finding.axes for point in axis):  # on the node's edge
        assert cols.min() - 1 <= x <= cols.max() + 2 and rows.min() - 1 <= y <= rows.max() + 2
