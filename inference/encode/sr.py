"""The report as a TID 1500 Measurement Report in a Comprehensive 3D SR (PS3.16 TID 1500).

One measurement group per node: tracking identifier and UID (shared with the SEG segment), the
outline as a closed POLYLINE SCOORD on the source image (frame), finding, long/short axis and
their ratio in mm, probability of cancer, the call, the algorithm, and free-text comments for
notes and for why there is no measurement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from skimage.measure import approximate_polygon, find_contours

from inference.encode import codes as c
from inference.encode.equipment import MANUFACTURER, algorithm_device_uid
from inference.encode.seg import OutputIdentity
from inference.measure import largest_component
from inference.prediction import AxisMeasurements, Call

logger = logging.getLogger(__name__)

MAX_OUTLINE_POINTS = 128


class SRClass(StrEnum):
    """Which SR storage class carries the report (per destination)."""

    COMPREHENSIVE_3D = "1.2.840.10008.5.1.4.1.1.88.34"
    COMPREHENSIVE = "1.2.840.10008.5.1.4.1.1.88.33"


@dataclass(frozen=True)
class NodeReport:
    """What the SR says about one node (one measurement group)."""

    model_key: str
    model_name: str
    model_version: str
    probability: float
    call: Call
    tracking_id: str
    tracking_uid: str
    frame_index: int = 0
    outline: np.ndarray | None = None
    measurements: AxisMeasurements | None = None
    comments: list[str] = field(default_factory=list)
    finding_site: str | None = None
    laterality: str | None = None


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
    points = simplified[:, ::-1] + 0.5
    rows, cols = component.shape
    points[:, 0] = points[:, 0].clip(0.0, cols)
    points[:, 1] = points[:, 1].clip(0.0, rows)
    if not np.array_equal(points[0], points[-1]):
        points = np.vstack([points, points[:1]])
    return points.astype(np.float32)


def _measurement(name: object, value: float, unit: object) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit)  # type: ignore[arg-type]


def _ratio(value: float) -> hd.sr.Measurement:
    ratio = _measurement(c.RATIO, value, c.NO_UNITS)
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


def _measurements(report: NodeReport) -> list[hd.sr.Measurement]:
    items = []
    m = report.measurements
    if m is not None:
        items += [
            _measurement(c.LONG_AXIS, m.long_axis_mm, c.MILLIMETER),
            _measurement(c.SHORT_AXIS, m.short_axis_mm, c.MILLIMETER),
            _ratio(m.short_to_long_ratio),
        ]
    items.append(_measurement(c.PROBABILITY_OF_CANCER, report.probability, c.NO_UNITS))
    return items


def _finding_sites(report: NodeReport) -> list[hd.sr.FindingSite] | None:
    site = c.FINDING_SITES.get(report.finding_site or "")
    if site is None:
        return None
    laterality = c.LATERALITIES.get(report.laterality or "")
    return [hd.sr.FindingSite(anatomic_location=site, laterality=laterality)]


def _group(report: NodeReport, source: Dataset) -> hd.sr.Template:
    tracking = hd.sr.TrackingIdentifier(uid=report.tracking_uid, identifier=report.tracking_id)
    algorithm = hd.sr.AlgorithmIdentification(
        name=report.model_key, version=report.model_version, family=c.ALGORITHM_FAMILY_AI
    )
    common = {
        "tracking_identifier": tracking,
        "finding_type": c.LYMPH_NODE,
        "algorithm_id": algorithm,
        "finding_sites": _finding_sites(report),
        "measurements": _measurements(report),
        "qualitative_evaluations": [
            hd.sr.QualitativeEvaluation(name=c.METASTASIS, value=c.CALL_CODES[report.call])
        ],
    }
    frames = int(source.get("NumberOfFrames", 1) or 1)
    frame_numbers = [report.frame_index + 1] if frames > 1 else None
    if report.outline is not None:
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=report.outline,
            source_image=hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=source.SOPClassUID,
                referenced_sop_instance_uid=source.SOPInstanceUID,
                referenced_frame_numbers=frame_numbers,
            ),
        )
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            referenced_region=region, **common
        )
    else:
        image = hd.sr.SourceImageForMeasurementGroup(
            referenced_sop_class_uid=source.SOPClassUID,
            referenced_sop_instance_uid=source.SOPInstanceUID,
            referenced_frame_numbers=frame_numbers,
        )
        group = hd.sr.MeasurementsAndQualitativeEvaluations(source_images=[image], **common)
    for comment in report.comments:
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=c.COMMENT,
                value=comment[:1024],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    return group


def _observation_context(report: NodeReport) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=algorithm_device_uid(report.model_key, report.model_version),
        name=report.model_name[:64] or report.model_key,
        manufacturer_name=MANUFACTURER,
        model_name=f"{report.model_key} {report.model_version}"[:64],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device
        )
    )


def build_sr(
    report: NodeReport,
    source: Dataset,
    identity: OutputIdentity,
    *,
    evidence: list[Dataset] | None = None,
    sr_class: SRClass = SRClass.COMPREHENSIVE_3D,
) -> hd.sr.Comprehensive3DSR | hd.sr.ComprehensiveSR:
    """The TID 1500 Measurement Report for one node on one source image.

    Parameters
    ----------
    report
        The node's content; ``outline`` in SCOORD image coordinates (see
        :func:`outline_from_mask`), ``None`` when nothing was segmented.
    source
        The CLEAN source header (:func:`inference.encode.source.clean_source`); it is listed
        in the image library (TID 1600) and referenced by the outline.
    identity
        UIDs, numbers and SeriesDescription of the SR.
    evidence
        Further instances listed as evidence (the SEG, whose segment shares the tracking UID).
    sr_class
        Comprehensive 3D SR (default) or Comprehensive SR for destinations without 88.34.
    """
    measurement_report = hd.sr.MeasurementReport(
        observation_context=_observation_context(report),
        procedure_reported=c.PROCEDURE_REPORTED,
        imaging_measurements=[_group(report, source)],
        title=c.REPORT_TITLE,
        referenced_images=[source],
    )
    sr_type = (
        hd.sr.Comprehensive3DSR if sr_class is SRClass.COMPREHENSIVE_3D else hd.sr.ComprehensiveSR
    )
    sr = sr_type(
        evidence=[source, *(evidence or [])],
        content=measurement_report,
        series_instance_uid=identity.series_instance_uid,
        series_number=identity.series_number,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=identity.instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=identity.series_description[:64],
    )
    logger.debug("built SR with %d comment(s)", len(report.comments))
    return sr
