"""Build every output of one job (SEG, SR, heatmap) from a Prediction and its source image."""

from __future__ import annotations

import logging

import numpy as np
from pydicom.dataset import Dataset

from inference.encode.equipment import add_air_equipment
from inference.encode.heatmap import build_heatmap, source_frame_rgb
from inference.encode.seg import OutputIdentity, build_seg
from inference.encode.source import clean_source, restore_source_class, source_laterality
from inference.encode.sr import NodeReport, SRClass, build_sr, outline_from_mask
from inference.measure import measure_axes
from inference.prediction import Prediction
from kernel.uids import derive_uid

logger = logging.getLogger(__name__)

ROLES = ("seg", "sr", "heatmap")
"""Output roles, in the order of their series numbers (base + 1, + 2, + 3)."""
TRACKING_ID = "Lymph node 1"
NOTE_NO_SEGMENTATION = "no outline and no measurement: nothing was segmented"
NOTE_CINE_OUTLINE = "outline on frame {frame} of the cine (no SEG is built for a cine source)"

_DESCRIPTIONS = {"seg": "SEG", "sr": "SR", "heatmap": "Grad-CAM"}


def output_identity(
    role: str, job_id: int, model_name: str, model_version: str, series_number_base: int
) -> OutputIdentity:
    """Deterministic UIDs, numbers and SeriesDescription of the ``role`` output of a job."""
    return OutputIdentity(
        series_instance_uid=str(derive_uid(job_id, role, "series")),
        sop_instance_uid=str(derive_uid(job_id, role, "instance")),
        series_number=series_number_base + ROLES.index(role) + 1,
        instance_number=1,
        series_description=f"AI {model_name} {model_version} {_DESCRIPTIONS[role]}"[:64],
    )


def tracking_uid(job_id: int) -> str:
    """The node's tracking UID, shared by the SEG segment and the SR measurement group."""
    return str(derive_uid(job_id, "tracking", 1))


def _has_foreground(mask: np.ndarray | None) -> bool:
    return mask is not None and bool(np.asarray(mask).any())


def build_outputs(
    prediction: Prediction,
    source: Dataset,
    job_id: int,
    series_number_base: int = 9000,
    *,
    finding_site: str | None = None,
    sr_class: SRClass = SRClass.COMPREHENSIVE_3D,
) -> dict[str, Dataset]:
    """The job's outputs by role: ``"seg"`` (single-frame source with a mask), ``"sr"``, ``"heatmap"``.

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
    finding_site
        ``cervical``, ``axillary``, ``supraclavicular`` or ``inguinal`` when known.
    sr_class
        SR storage class for this destination (Comprehensive 3D by default).

    Returns
    -------
    dict
        pydicom datasets keyed by role, each carrying the IHE AIR Contributing Equipment item.
    """
    clean = clean_source(source)
    frames = int(clean.get("NumberOfFrames", 1) or 1)
    has_mask = _has_foreground(prediction.mask)
    uid = tracking_uid(job_id)

    def identity(role: str) -> OutputIdentity:
        return output_identity(
            role, job_id, prediction.model_name, prediction.model_version, series_number_base
        )

    outputs: dict[str, Dataset] = {}
    if has_mask and frames == 1:
        outputs["seg"] = build_seg(
            prediction.mask,  # type: ignore[arg-type]
            clean,
            identity("seg"),
            model_key=prediction.model_key,
            model_version=prediction.model_version,
            tracking_id=TRACKING_ID,
            tracking_uid=uid,
        )

    comments: list[str] = []
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

    report = NodeReport(
        model_key=prediction.model_key,
        model_name=prediction.model_name,
        model_version=prediction.model_version,
        probability=float(prediction.probability),
        call=prediction.call,
        tracking_id=TRACKING_ID,
        tracking_uid=uid,
        frame_index=prediction.frame_index,
        outline=outline,
        measurements=measurements,
        comments=comments,
        finding_site=finding_site,
        laterality=source_laterality(source),
    )
    evidence = [outputs["seg"]] if "seg" in outputs else []
    outputs["sr"] = build_sr(report, clean, identity("sr"), evidence=evidence, sr_class=sr_class)

    frame = source_frame_rgb(source, prediction.frame_index)
    outputs["heatmap"] = build_heatmap(
        frame,
        prediction.heatmap,
        clean,
        identity("heatmap"),
        label=f"{prediction.model_name} {prediction.model_version} Grad-CAM"[:60],
        frame_index=prediction.frame_index,
    )
    for dataset in outputs.values():
        restore_source_class(dataset, source)
        add_air_equipment(
            dataset, prediction.model_key, prediction.model_name, prediction.model_version
        )
    logger.info("built outputs %s for job %s", sorted(outputs), job_id)
    return outputs
