"""The report as a TID 1500 Measurement Report in a Comprehensive 3D SR (PS3.16 TID 1500).

One measurement group (TID 1501) per finding, every concept from the model's spec: tracking
identifier and UID (shared with the SEG segment), the finding, its site (the source's coded
anatomy, else the spec's) and laterality (the source's), the algorithm with its parameters
(threshold, weights sha256, operating point, calibration), the probability in % (UCUM "%") and, when the source is calibrated,
long and short axis in mm and their ratio, values rounded; the call as a qualitative
evaluation and in words (a comment, so viewers show it), then the notes in one comment. The outline is a closed
POLYLINE SCOORD on the source image that the first measurement is INFERRED FROM: the form
OHIF draws together with the group's comments and measurements. Each axis is INFERRED FROM
a POLYLINE SCOORD of its two endpoints on the same image (the calipers a viewer draws).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from skimage.measure import approximate_polygon, find_contours

from inference.encode import codes as c
from inference.encode.equipment import MANUFACTURER, algorithm_device_uid, model_name
from inference.encode.seg import OutputIdentity
from inference.encode.source import references_frames
from inference.encode.wording import (
    CALIBRATION_PARAMETER,
    OPERATING_POINT_PARAMETER,
    THRESHOLD_PARAMETER,
    WEIGHTS_PARAMETER,
    calibration_text,
    call_text,
    parameter_text,
    percent,
)
from inference.measure import largest_component
from inference.prediction import AxisMeasurements, Call
from inference.registry import ModelSpec

logger = logging.getLogger(__name__)

MAX_OUTLINE_POINTS = 128
NOTES_SEPARATOR = " | "
MM_DECIMALS = 2
RATIO_DECIMALS = 2


class SRClass(StrEnum):
    """Which SR storage class carries the report (per destination)."""

    COMPREHENSIVE_3D = "1.2.840.10008.5.1.4.1.1.88.34"
    COMPREHENSIVE = "1.2.840.10008.5.1.4.1.1.88.33"


@dataclass(frozen=True)
class NodeReport:
    """What the SR says about one finding (one measurement group) beyond the model's spec."""

    probability: float
    call: Call
    tracking_id: str
    tracking_uid: str
    frame_index: int = 0
    outline: np.ndarray | None = None
    measurements: AxisMeasurements | None = None
    comments: list[str] = field(default_factory=list)
    finding_site: Code | None = None
    laterality: Code | None = None


def outline_from_mask(mask: np.ndarray, max_points: int = MAX_OUTLINE_POINTS) -> np.ndarray | None:
    """Closed outline (N, 2) of the mask's largest component in SCOORD image coordinates.

    Coordinates are (column, row) with (0, 0) the top-left corner of the top-left pixel
    (PS3.3 C.18.6.1.1), i.e. pixel centres at +0.5; the first point repeats as the last. The
    contour (skimage ``find_contours`` at 0.5) is simplified to at most ``max_points``
    points. ``None`` for an empty mask.
    """
    component = largest_component(mask)
    if not component.any():
        return None
    padded = np.pad(component.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    contour = max(contours, key=len) - 1.0  # (row, col) on the unpadded grid
    tolerance = 0.25
    simplified = approximate_polygon(contour, tolerance)
    while len(simplified) > max_points:
        tolerance *= 1.5
        simplified = approximate_polygon(contour, tolerance)
    if len(simplified) < 4:  # tiny blob: keep the raw contour (at least a triangle)
        simplified = contour
    points = scoord_points(simplified[:, ::-1], component.shape)
    if not np.array_equal(points[0], points[-1]):
        points = np.vstack([points, points[:1]])
    return points


def scoord_points(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(column, row) points on the pixel grid (pixel centres at whole numbers, as
    :mod:`inference.measure` gives them) in SCOORD image coordinates (PS3.3 C.18.6.1.1:
    (0, 0) is the top-left corner of the top-left pixel), kept on an image of ``shape``
    (Rows, Columns)."""
    shifted = np.asarray(points, dtype=np.float64) + 0.5
    rows, cols = shape
    shifted[:, 0] = shifted[:, 0].clip(0.0, cols)
    shifted[:, 1] = shifted[:, 1].clip(0.0, rows)
    return shifted.astype(np.float32)


def _measurement(
    name: Code, value: float, unit: Code, region: hd.sr.CoordinatesForMeasurement | None
) -> hd.sr.Measurement:
    return hd.sr.Measurement(
        name=name,
        value=value,
        unit=unit,
        referenced_coordinates=[region] if region is not None else None,
    )


def _ratio(value: float) -> hd.sr.Measurement:
    ratio = _measurement(c.RATIO, round(value, RATIO_DECIMALS), c.NO_UNITS, None)
    item = ratio[0]
    if "ContentSequence" not in item:
        item.ContentSequence = hd.sr.ContentSequence(is_root=False)
    item.ContentSequence.append(
        hd.sr.TextContentItem(
            name=c.EQUIVALENT_MEANING,
            value=c.RATIO_MEANING_TEXT,
            relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD,
        )
    )
    return ratio


def _polyline(
    points: np.ndarray, report: NodeReport, source: Dataset
) -> hd.sr.CoordinatesForMeasurement:
    """A POLYLINE SCOORD of ``points`` (SCOORD image coordinates) on the report's source frame."""
    return hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=points,
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=source.SOPClassUID,
            referenced_sop_instance_uid=source.SOPInstanceUID,
            referenced_frame_numbers=_frame_numbers(report, source),
        ),
    )


def _outline(report: NodeReport, source: Dataset) -> hd.sr.CoordinatesForMeasurement | None:
    if report.outline is None:
        return None
    return _polyline(report.outline, report, source)


def _axis(
    endpoints: tuple[tuple[float, float], tuple[float, float]],
    report: NodeReport,
    source: Dataset,
) -> hd.sr.CoordinatesForMeasurement:
    """The axis as a 2-point POLYLINE between its endpoints (pixel grid, see
    :class:`inference.prediction.AxisMeasurements`)."""
    shape = (int(source.Rows), int(source.Columns))
    return _polyline(scoord_points(np.array(endpoints), shape), report, source)


def _frame_numbers(report: NodeReport, source: Dataset) -> list[int] | None:
    return [report.frame_index + 1] if references_frames(source) else None


def _measurements(report: NodeReport, spec: ModelSpec, source: Dataset) -> list[hd.sr.Measurement]:
    probability = c.from_spec(spec.outputs.probability.meaning)
    items = [
        _measurement(probability, percent(report.probability), c.PERCENT, _outline(report, source))
    ]
    m = report.measurements
    if m is not None:
        items += [
            _measurement(
                c.LONG_AXIS,
                round(m.long_axis_mm, MM_DECIMALS),
                c.MILLIMETER,
                _axis(m.long_axis_endpoints, report, source),
            ),
            _measurement(
                c.SHORT_AXIS,
                round(m.short_axis_mm, MM_DECIMALS),
                c.MILLIMETER,
                _axis(m.short_axis_endpoints, report, source),
            ),
            _ratio(m.short_to_long_ratio),
        ]
    return items


def _finding_sites(report: NodeReport) -> list[hd.sr.FindingSite] | None:
    if report.finding_site is None:
        return None
    return [hd.sr.FindingSite(anatomic_location=report.finding_site, laterality=report.laterality)]


def algorithm_parameters(spec: ModelSpec) -> list[str]:
    """The Algorithm Parameters (111002) texts: threshold, weights sha256, then the operating
    point's policy and the probability's calibration when the spec records them."""
    parameters = [
        parameter_text(THRESHOLD_PARAMETER, spec.threshold),
        parameter_text(WEIGHTS_PARAMETER, spec.weights_sha256),
    ]
    if spec.operating_point is not None:
        parameters.append(parameter_text(OPERATING_POINT_PARAMETER, spec.operating_point.policy))
    calibration = spec.calibration
    if calibration is not None and calibration.method.value != "none":
        knots = None if calibration.points is None else len(calibration.points)
        text = calibration_text(calibration.method.value, calibration.temperature, knots)
        parameters.append(parameter_text(CALIBRATION_PARAMETER, text))
    return parameters


def algorithm_identification(spec: ModelSpec) -> hd.sr.AlgorithmIdentification:
    """TID 4019: the model key and version, with :func:`algorithm_parameters`."""
    return hd.sr.AlgorithmIdentification(
        name=spec.key,
        version=spec.version,
        family=c.ALGORITHM_FAMILY_AI,
        parameters=algorithm_parameters(spec),
    )


def _comment(text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=c.COMMENT,
        value=text[:1024],
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )


def _group(report: NodeReport, spec: ModelSpec, source: Dataset) -> hd.sr.Template:
    call_concept = c.from_spec(spec.outputs.finding.call)
    call_value = c.CALL_CODES[report.call]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=report.tracking_uid, identifier=report.tracking_id
        ),
        finding_type=c.from_spec(spec.outputs.finding.type),
        algorithm_id=algorithm_identification(spec),
        finding_sites=_finding_sites(report),
        measurements=_measurements(report, spec, source),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=call_concept, value=call_value)],
        source_images=[
            hd.sr.SourceImageForMeasurementGroup(
                referenced_sop_class_uid=source.SOPClassUID,
                referenced_sop_instance_uid=source.SOPInstanceUID,
                referenced_frame_numbers=_frame_numbers(report, source),
            )
        ],
    )
    # two comments at most: viewers show the group's comments before its measurements, and
    # OHIF only the first five lines of both
    texts = [call_text(call_concept.meaning, call_value.meaning, spec.threshold)]
    if report.comments:
        texts.append(NOTES_SEPARATOR.join(report.comments))
    for text in texts:
        group[0].ContentSequence.append(_comment(text))
    return group


def observation_context(model_key: str, model_version: str) -> hd.sr.ObservationContext:
    """The algorithm as the observing device, named :func:`model_name` like every output."""
    name = model_name(model_key, model_version)
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=algorithm_device_uid(model_key, model_version),
        name=name,
        manufacturer_name=MANUFACTURER,
        model_name=name,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device
        )
    )


def build_sr(
    report: NodeReport,
    spec: ModelSpec,
    source: Dataset,
    identity: OutputIdentity,
    *,
    evidence: list[Dataset] | None = None,
    sr_class: SRClass = SRClass.COMPREHENSIVE_3D,
    replaces: Dataset | None = None,
) -> hd.sr.Comprehensive3DSR | hd.sr.ComprehensiveSR:
    """The TID 1500 Measurement Report for one finding on one source image.

    Parameters
    ----------
    report
        The run's content; ``outline`` in SCOORD image coordinates (see
        :func:`outline_from_mask`), ``None`` when nothing was segmented; the axes'
        endpoints on the pixel grid of the source (written shifted by :func:`scoord_points`).
    spec
        The model: every concept of the report, its name, threshold and weights.
    source
        The CLEAN source header (:func:`inference.encode.source.clean_source`); it is listed
        in the image library (TID 1600) and referenced by the outline.
    identity
        UIDs, numbers and SeriesDescription of the SR.
    evidence
        Further instances listed as evidence (the SEG, whose segment shares the tracking UID).
    sr_class
        Comprehensive 3D SR (default) or Comprehensive SR for destinations without 88.34.
    replaces
        The SR of the same model on an earlier generation of the study (instances arrived
        after it), listed in Predecessor Documents Sequence: a viewer shows this report as
        its newer version.
    """
    measurement_report = hd.sr.MeasurementReport(
        observation_context=observation_context(spec.key, spec.version),
        procedure_reported=c.PROCEDURE_REPORTED,
        imaging_measurements=[_group(report, spec, source)],
        title=c.REPORT_TITLE,
        referenced_images=[source],
    )
    return sr_document(
        measurement_report, identity, [source, *(evidence or [])], sr_class, replaces=replaces
    )


def sr_document(
    content: hd.sr.MeasurementReport,
    identity: OutputIdentity,
    evidence: list[Dataset],
    sr_class: SRClass,
    replaces: Dataset | None = None,
) -> hd.sr.Comprehensive3DSR | hd.sr.ComprehensiveSR:
    """The SR instance of class ``sr_class`` holding ``content``, in the study of ``evidence``."""
    sr_type = (
        hd.sr.Comprehensive3DSR if sr_class is SRClass.COMPREHENSIVE_3D else hd.sr.ComprehensiveSR
    )
    sr = sr_type(
        evidence=evidence,
        content=content,
        series_instance_uid=identity.series_instance_uid,
        series_number=identity.series_number,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=identity.instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        previous_versions=[replaces] if replaces is not None else None,
        series_description=identity.series_description[:64],
    )
    _code_modality_from_sources(sr.ContentSequence, {str(ds.SOPInstanceUID): ds for ds in evidence})
    logger.debug("built SR %s", identity.series_description)
    return sr


#: CID 29 Acquisition Modality, by the Modality value it codes
_ACQUISITION_MODALITIES = {
    getattr(codes.cid29, name).value: getattr(codes.cid29, name) for name in codes.cid29.dir()
}


def _code_modality_from_sources(items: Sequence[Dataset], sources: Mapping[str, Dataset]) -> None:
    """Code each image library entry's Modality (121139, DCM) from its image's own Modality.

    highdicom codes it from the SOP class, so an ultrasound Secondary Capture (Modality US)
    was listed as "OT" (Other); an image whose Modality CID 29 does not list keeps highdicom's.
    """
    for item in items:
        children = item.get("ContentSequence") or []
        if item.get("ValueType") == "IMAGE" and "ReferencedSOPSequence" in item:
            source = sources.get(str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
            code = _ACQUISITION_MODALITIES.get(str(source.get("Modality", ""))) if source else None
            for child in children:
                name = child.ConceptNameCodeSequence[0]
                if code is not None and (name.CodeValue, name.CodingSchemeDesignator) == (
                    "121139",
                    "DCM",
                ):
                    child.ConceptCodeSequence = [hd.sr.CodedConcept.from_code(code)]
        _code_modality_from_sources(children, sources)
