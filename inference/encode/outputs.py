"""Build every output of one job (SEG, SR, heatmap) from a Prediction and its source image."""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset

from inference.encode.codes import LATERALITIES, from_spec
from inference.encode.equipment import add_air_equipment, model_name
from inference.encode.heatmap import build_heatmap, source_frame_rgb
from inference.encode.seg import OutputIdentity, build_seg
from inference.encode.source import (
    MULTI_FRAME_CLASSES,
    clean_source,
    restore_source,
    source_anatomy,
    source_laterality,
)
from inference.encode.sr import NodeReport, SRClass, build_sr, outline_from_mask
from inference.measure import largest_component, measure_axes
from inference.prediction import Prediction
from inference.regions import mm_per_pixel, region_containing
from inference.registry import ModelSpec
from kernel.errors import EncodeError
from kernel.uids import derive_uid

logger = logging.getLogger(__name__)

ROLES = ("seg", "sr", "heatmap")
"""Output roles, in the order of their series numbers (base + 1, + 2, + 3)."""
REVISION_STEP = 10
"""A report that replaces an earlier one (revision n) numbers its series base + 10 n + 1..3."""
NOTE_NO_SEGMENTATION = "no outline and no measurement: nothing was segmented"
NOTE_NO_SEG_UNCALIBRATED = (
    "no SEG: the segmentation lies in no calibrated ultrasound region, so no pixel size can be "
    "given; the outline is this report's polygon"
)
NOTE_CINE_OUTLINE = "outline on frame {frame} of the cine (no SEG is built for a cine source)"
NOTE_REPLACES = (
    "replaces this model's earlier report on this study (Predecessor Documents): instances "
    "arrived after that report's images were assembled"
)
NOTE_NO_SEG_MULTI_FRAME_CLASS = (
    "no SEG: the source holds one frame but is of a multi-frame storage class, for which no SEG "
    "is built; the outline is this report's polygon"
)

_DESCRIPTIONS = {"seg": "SEG", "sr": "SR", "heatmap": "Grad-CAM"}


def output_identity(
    role: str,
    job_id: int,
    model_key: str,
    model_version: str,
    series_number_base: int,
    revision: int = 0,
    not_run: bool = False,
) -> OutputIdentity:
    """Deterministic UIDs, numbers and SeriesDescription of the ``role`` output of a job.

    A "not run" report (``not_run``) has UIDs of its own: a job encoded once as run and once
    as not run (requeued after its scope or gate changed) must not give two different
    objects one SOP Instance UID.

    The description starts with the role, then the model's name: "SEG AI ynet-busi@1.0.0"
    (cut at 64 characters, so the role always shows). Outputs whose report replaces earlier
    ones (``revision`` n > 0, :func:`report_revision`) end their description with
    "(revision n)" and number their series ``REVISION_STEP`` n higher, so a viewer's series
    list tells them from the outputs they replace.
    """
    suffix = f" (revision {revision})" if revision else ""
    uid_role = f"not-run-{role}" if not_run else role
    name = f"{_DESCRIPTIONS[role]} AI {model_name(model_key, model_version)}"
    return OutputIdentity(
        series_instance_uid=str(derive_uid(job_id, uid_role, "series")),
        sop_instance_uid=str(derive_uid(job_id, uid_role, "instance")),
        series_number=series_number_base + REVISION_STEP * revision + ROLES.index(role) + 1,
        instance_number=1,
        series_description=name[: 64 - len(suffix)] + suffix,
    )


def report_revision(replaces: Dataset | None, series_number_base: int) -> int:
    """The revision of a report that replaces the SR ``replaces`` (0: it replaces none): one
    more than that SR's own, which its SeriesNumber says (:func:`output_identity`)."""
    if replaces is None:
        return 0
    number = int(replaces.get("SeriesNumber") or 0) - series_number_base - ROLES.index("sr") - 1
    return max(number // REVISION_STEP, 0) + 1


def stamp_timezone(dataset: Dataset) -> None:
    """State the offset from UTC of the node's local time, in which highdicom wrote the
    output's dates and times (Timezone Offset From UTC, SOP Common module): without it a reader
    cannot tell a node running in UTC from one in the hospital's time zone."""
    dataset.TimezoneOffsetFromUTC = datetime.now().astimezone().strftime("%z")


def tracking_uid(job_id: int) -> str:
    """The finding's tracking UID, shared by the SEG segment and the SR measurement group."""
    return str(derive_uid(job_id, "tracking", 1))


def tracking_id(spec: ModelSpec) -> str:
    """The finding's tracking identifier: the spec's finding, numbered ("Lesion 1")."""
    return f"{spec.outputs.finding.type.meaning} 1"[:64]


def _has_foreground(mask: np.ndarray | None) -> bool:
    return mask is not None and bool(np.asarray(mask).any())


def segment_pixel_spacing(source: Dataset, mask: np.ndarray) -> tuple[float, float] | None:
    """(row, column) pixel size in mm of the calibrated ultrasound region holding ``mask``'s
    largest component (the region the axes are measured in), else ``None``."""
    region = region_containing(source, largest_component(mask))
    spacing = mm_per_pixel(region) if region is not None else None
    if spacing is None:
        return None
    dx, dy = spacing
    return dy, dx


def build_outputs(
    prediction: Prediction,
    source: Dataset,
    job_id: int,
    series_number_base: int = 9000,
    *,
    spec: ModelSpec,
    sr_class: SRClass = SRClass.COMPREHENSIVE_3D,
    replaces: Dataset | None = None,
) -> dict[str, Dataset]:
    """The job's outputs by role: ``"seg"``, ``"sr"``, ``"heatmap"``.

    The SEG is built for a single-frame source whose mask lies in a calibrated ultrasound region
    (viewers such as OHIF need its pixel size); otherwise the SR's polygon is the outline and
    the SR says why there is no SEG.

    Parameters
    ----------
    prediction
        The infer stage's result; ``mask`` and ``heatmap`` on the source frame grid.
    source
        The source instance as received, with pixels (the heatmap shows its frame).
    job_id
        Seeds every UID (series, instance, tracking), so a retried job yields the same ones.
    series_number_base
        SeriesNumber of the outputs is this plus 1 (SEG), 2 (SR), 3 (heatmap).
    spec
        The model that made the prediction: every concept, name and parameter of the outputs.
    sr_class
        SR storage class for this destination (Comprehensive 3D by default).
    replaces
        The SR this job's SR replaces (the same model's on an earlier generation of the
        study): named in its Predecessor Documents Sequence and its notes.

    Returns
    -------
    dict
        pydicom datasets keyed by role, each carrying the IHE AIR Contributing Equipment item.

    Raises
    ------
    EncodeError
        When ``spec`` is not the model the prediction names.
    """
    if (prediction.model_key, prediction.model_version) != (spec.key, spec.version):
        raise EncodeError(
            f"prediction of {prediction.model_key}@{prediction.model_version} "
            f"encoded with the spec of {spec.ref}"
        )
    clean = clean_source(source)
    frames = int(clean.get("NumberOfFrames", 1) or 1)
    has_mask = _has_foreground(prediction.mask)
    uid, identifier = tracking_uid(job_id), tracking_id(spec)

    revision = report_revision(replaces, series_number_base)

    def identity(role: str) -> OutputIdentity:
        return output_identity(role, job_id, spec.key, spec.version, series_number_base, revision)

    outputs: dict[str, Dataset] = {}
    comments: list[str] = []
    # highdicom segments a multi-frame class as an enhanced multi-frame image (functional
    # groups), which US multi-frame and multi-frame SC instances are not, even with one frame
    multi_frame_class = str(clean.SOPClassUID) in MULTI_FRAME_CLASSES
    if has_mask and frames == 1 and multi_frame_class and spec.outputs.segments:
        comments.append(NOTE_NO_SEG_MULTI_FRAME_CLASS)
    elif has_mask and frames == 1 and spec.outputs.segments:
        spacing = segment_pixel_spacing(source, prediction.mask)  # type: ignore[arg-type]
        if spacing is None:
            comments.append(NOTE_NO_SEG_UNCALIBRATED)
        else:
            outputs["seg"] = build_seg(
                prediction.mask,  # type: ignore[arg-type]
                clean,
                identity("seg"),
                spec=spec,
                tracking_id=identifier,
                tracking_uid=uid,
                pixel_spacing_mm=spacing,
            )

    measurements = prediction.measurements
    outline = None
    if has_mask:
        outline = outline_from_mask(prediction.mask)  # type: ignore[arg-type]
        if measurements is None:
            measurements, note = measure_axes(prediction.mask, source)  # type: ignore[arg-type]
            if note:
                comments.append(note)
        if frames > 1:
            comments.append(NOTE_CINE_OUTLINE.format(frame=prediction.frame_index + 1))
    else:
        comments.append(NOTE_NO_SEGMENTATION)
    comments.extend(n for n in prediction.notes if n not in comments)
    if replaces is not None:  # first: a viewer showing a few lines shows this one
        comments.insert(0, NOTE_REPLACES)

    site = source_anatomy(source)
    if site is None and spec.outputs.finding.site is not None:
        site = from_spec(spec.outputs.finding.site)
    report = NodeReport(
        probability=float(prediction.probability),
        call=prediction.call,
        tracking_id=identifier,
        tracking_uid=uid,
        frame_index=prediction.frame_index,
        outline=outline,
        measurements=measurements,
        comments=comments,
        finding_site=site,
        laterality=LATERALITIES.get(source_laterality(source) or ""),
    )
    evidence = [outputs["seg"]] if "seg" in outputs else []
    outputs["sr"] = build_sr(
        report,
        spec,
        clean,
        identity("sr"),
        evidence=evidence,
        sr_class=sr_class,
        replaces=replaces,
    )

    frame = source_frame_rgb(source, prediction.frame_index)
    outputs["heatmap"] = build_heatmap(
        frame,
        prediction.heatmap,
        clean,
        identity("heatmap"),
        spec=spec,
        frame_index=prediction.frame_index,
    )
    for dataset in outputs.values():
        restore_source(dataset, source)
        add_air_equipment(dataset, spec.key, spec.name, spec.version)
        stamp_timezone(dataset)
    logger.info("built outputs %s for job %s", sorted(outputs), job_id)
    return outputs
