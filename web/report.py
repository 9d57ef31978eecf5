"""Our SR (TID 1500) read back as what a radiologist reads: model, probability, call, axes, notes.

The SR is read with highdicom (``hd.sr.srread``) and its content tree walked by concept name
codes (the ones :mod:`inference.encode.codes` writes), so Comprehensive and Comprehensive 3D
SR read the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from inference.encode import codes as c
from inference.encode.sr import NOTES_SEPARATOR
from inference.encode.wording import THRESHOLD_PARAMETER, call_text, parse_parameters

_LONG, _SHORT = c.LONG_AXIS.value, c.SHORT_AXIS.value
_RATIO = c.RATIO.value
_CALL_VALUES = {code.value for code in c.CALL_CODES.values()}


@dataclass
class Finding:
    """One measurement group (one node)."""

    tracking_id: str | None = None
    tracking_uid: str | None = None
    finding: str | None = None
    finding_site: str | None = None
    laterality: str | None = None
    algorithm_name: str | None = None
    algorithm_version: str | None = None
    #: the probability in percent, and the concept it is the probability of
    probability: float | None = None
    probability_name: str | None = None
    #: the concept the call is made on (e.g. "Metastasis"), its value ("Present"), the threshold
    call_concept: str | None = None
    call: str | None = None
    threshold: float | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    ratio: float | None = None
    notes: list[str] = field(default_factory=list)
    #: the outline: closed polyline (column, row) in image pixel coordinates
    outline: list[tuple[float, float]] = field(default_factory=list)
    #: the long and short axis as measured: each its two endpoints (column, row), as the outline
    axes: list[list[tuple[float, float]]] = field(default_factory=list)
    source_sop_instance_uid: str | None = None
    #: 1-based frame number of the source the outline (or measurements) refer to
    source_frame_number: int = 1

    @property
    def call_text(self) -> str | None:
        """The call in the SR's words, e.g. "Metastasis: present (threshold 28.5 %)"."""
        if self.call is None or self.call_concept is None or self.threshold is None:
            return self.call
        return call_text(self.call_concept, self.call, self.threshold)


@dataclass
class ReadableReport:
    """An SR document, flattened for display."""

    title: str
    sop_instance_uid: str
    sr_class: str
    device_name: str | None
    device_model_name: str | None
    completion: str
    verification: str
    content_datetime: str
    findings: list[Finding]


def _concept(item: Dataset) -> str | None:
    names = item.get("ConceptNameCodeSequence")
    return str(names[0].CodeValue) if names else None


def _meaning(item: Dataset) -> str | None:
    names = item.get("ConceptNameCodeSequence")
    return str(names[0].CodeMeaning) if names else None


def _code_meaning(item: Dataset) -> str | None:
    values = item.get("ConceptCodeSequence")
    return str(values[0].CodeMeaning) if values else None


def _code_value(item: Dataset) -> str | None:
    values = item.get("ConceptCodeSequence")
    return str(values[0].CodeValue) if values else None


def _unit(item: Dataset) -> str | None:
    values = item.get("MeasuredValueSequence")
    units = values[0].get("MeasurementUnitsCodeSequence") if values else None
    return str(units[0].CodeValue) if units else None


def _number(item: Dataset) -> float | None:
    values = item.get("MeasuredValueSequence")
    return float(values[0].NumericValue) if values else None


def _first_frame(reference: Dataset) -> int:
    """The first ReferencedFrameNumber (1 when absent); pydicom gives an int or a MultiValue."""
    value = reference.get("ReferencedFrameNumber")
    if value is None or value == "":
        return 1
    if isinstance(value, MultiValue | list | tuple):
        return int(value[0]) if len(value) else 1
    return int(value)


def _referenced_image(item: Dataset) -> tuple[str | None, int]:
    """SOP Instance UID and 1-based frame of the IMAGE item under (or being) ``item``."""
    candidates = [item, *item.get("ContentSequence", [])]
    for candidate in candidates:
        refs = candidate.get("ReferencedSOPSequence")
        if candidate.get("ValueType") == "IMAGE" and refs:
            return str(refs[0].ReferencedSOPInstanceUID), _first_frame(refs[0])
    return None, 1


def _points(item: Dataset) -> list[tuple[float, float]]:
    data = [float(v) for v in item.GraphicData]
    return list(zip(data[0::2], data[1::2], strict=True))


def _read_scoord(finding: Finding, item: Dataset) -> None:
    finding.outline = _points(item)
    finding.source_sop_instance_uid, finding.source_frame_number = _referenced_image(item)


def _read_axis(finding: Finding, item: Dataset) -> float | None:
    """The axis NUM's value; its caliper (the SCOORD it is inferred from) joins ``axes``."""
    for child in item.get("ContentSequence", []):
        if child.get("ValueType") == "SCOORD":
            finding.axes.append(_points(child))
    return _number(item)


def _read_group(group: Dataset) -> Finding:
    finding = Finding()
    for item in group.get("ContentSequence", []):
        code, value_type = _concept(item), item.get("ValueType")
        if code == c.TRACKING_IDENTIFIER.value:
            finding.tracking_id = str(item.TextValue)
        elif code == c.TRACKING_UID.value:
            finding.tracking_uid = str(item.UID)
        elif code == c.FINDING.value:
            finding.finding = _code_meaning(item)
        elif code == c.FINDING_SITE.value:
            finding.finding_site = _code_meaning(item)
            for modifier in item.get("ContentSequence", []):
                if _concept(modifier) == c.LATERALITY.value:
                    finding.laterality = _code_meaning(modifier)
        elif code == c.ALGORITHM_NAME.value:
            finding.algorithm_name = str(item.TextValue)
        elif code == c.ALGORITHM_PARAMETERS.value:
            finding.parameters.update(parse_parameters([str(item.TextValue)]))
        elif code == c.ALGORITHM_VERSION.value:
            finding.algorithm_version = str(item.TextValue)
        elif code == _LONG:
            finding.long_axis_mm = _read_axis(finding, item)
        elif code == _SHORT:
            finding.short_axis_mm = _read_axis(finding, item)
        elif code == _RATIO:
            finding.ratio = _number(item)
        elif value_type == "NUM" and _unit(item) == c.PERCENT.value:
            finding.probability, finding.probability_name = _number(item), _meaning(item)
            for child in item.get("ContentSequence", []):
                if child.get("ValueType") == "SCOORD":
                    _read_scoord(finding, child)
        elif value_type == "CODE" and _code_value(item) in _CALL_VALUES:
            finding.call_concept, finding.call = _meaning(item), _code_meaning(item)
        elif code == c.COMMENT.value:
            finding.notes.extend(str(item.TextValue).split(NOTES_SEPARATOR))
        elif value_type == "SCOORD":
            _read_scoord(finding, item)
        elif value_type == "IMAGE" and finding.source_sop_instance_uid is None:
            finding.source_sop_instance_uid, finding.source_frame_number = _referenced_image(item)
    threshold = finding.parameters.get(THRESHOLD_PARAMETER)
    finding.threshold = float(threshold) if threshold else None
    if finding.call_text in finding.notes:
        finding.notes.remove(finding.call_text)  # shown as the call
    return finding


def _groups(container: Dataset) -> list[Dataset]:
    """Every "Measurement Group" container under the document root."""
    found = []
    for item in container.get("ContentSequence", []):
        if item.get("ValueType") == "CONTAINER":
            if _concept(item) == "125007":
                found.append(item)
            else:
                found.extend(_groups(item))
    return found


def _observer(document: Dataset, code: str) -> str | None:
    for item in document.get("ContentSequence", []):
        if item.get("RelationshipType") == "HAS OBS CONTEXT" and _concept(item) == code:
            return str(item.get("TextValue", "")) or None
    return None


def _datetime(date: str, time: str) -> str:
    """DICOM DA + TM as ``YYYY-MM-DD HH:MM:SS`` (what is there of it)."""
    shown = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else date
    if len(time) >= 6:
        shown += f" {time[:2]}:{time[2:4]}:{time[4:6]}"
    return shown.strip()


class ReportError(ValueError):
    """The file is not an SR this page can read."""


def read_report(path: Path) -> ReadableReport:
    """Read the SR at ``path``; :class:`ReportError` for a file that is no readable SR."""
    try:
        sr = hd.sr.srread(path)
    except (InvalidDicomError, RuntimeError, ValueError, AttributeError, KeyError) as exc:
        raise ReportError(f"not a readable SR: {exc}") from exc
    title = _meaning(sr) or "Structured report"
    return ReadableReport(
        title=title,
        sop_instance_uid=str(sr.SOPInstanceUID),
        sr_class=str(sr.SOPClassUID.name),
        device_name=_observer(sr, "121013"),
        device_model_name=_observer(sr, "121015"),
        completion=str(sr.get("CompletionFlag", "")),
        verification=str(sr.get("VerificationFlag", "")),
        content_datetime=_datetime(str(sr.get("ContentDate", "")), str(sr.get("ContentTime", ""))),
        findings=[_read_group(group) for group in _groups(sr)],
    )
