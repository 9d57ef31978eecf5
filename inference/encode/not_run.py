"""The SR of a model that was not run on a study, and why.

A TID 1500 Measurement Report like the one of a run, with one measurement group that names the
algorithm (name = model key, version) but asserts no finding, holds no measurement, no
evaluation and no outline; its comments say that the model was not run, why, and any figures
behind that decision (e.g. a score and the threshold it was compared with). It is built from a
study header (any instance of the study: patient and study modules), which is listed as
evidence and, when it is an image, in the image library.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import highdicom as hd
from pydicom.dataset import Dataset

from inference.encode import codes as c
from inference.encode.equipment import add_air_equipment
from inference.encode.outputs import output_identity, stamp_timezone, tracking_uid
from inference.encode.seg import OutputIdentity
from inference.encode.source import clean_source, restore_source
from inference.encode.sr import SRClass, observation_context, sr_document

logger = logging.getLogger(__name__)

NOT_RUN_TRACKING_ID = "Model not run"
NOT_RUN_TEXT = "Model {key} {version} ({name}) was not run on this study."


def not_run_comments(
    model_key: str,
    model_name: str,
    model_version: str,
    reason: str,
    numbers: Mapping[str, float] | None = None,
) -> list[str]:
    """The comments of a "not run" report: that the model was not run, why, and the figures
    (``name: value``, 4 significant digits) behind it."""
    comments = [
        NOT_RUN_TEXT.format(key=model_key, version=model_version, name=model_name),
        f"Reason: {reason}"[:1024],
    ]
    comments += [f"{name}: {value:.4g}"[:1024] for name, value in (numbers or {}).items()]
    return comments


def _is_image(dataset: Dataset) -> bool:
    return bool(dataset.get("Rows")) and bool(dataset.get("Columns"))


def build_not_run_sr(
    *,
    model_key: str,
    model_name: str,
    model_version: str,
    reason: str,
    source: Dataset,
    identity: OutputIdentity,
    tracking: str,
    numbers: Mapping[str, float] | None = None,
    sr_class: SRClass = SRClass.COMPREHENSIVE_3D,
) -> hd.sr.Comprehensive3DSR | hd.sr.ComprehensiveSR:
    """A TID 1500 report saying model ``model_key`` ``model_version`` was not run, and why.

    Parameters
    ----------
    model_key, model_name, model_version
        The registered model (the algorithm identification names key and version; the
        descriptive ``model_name`` appears in the first comment).
    reason
        Why it was not run (e.g. which input is missing from the study).
    source
        The CLEAN header of an instance of the study (``clean_source``).
    identity
        UIDs, numbers and SeriesDescription of the SR.
    tracking
        The tracking UID of the measurement group.
    numbers
        Figures behind the decision, by name (e.g. ``{"score": 0.12, "threshold": 0.5}``).
    sr_class
        Comprehensive 3D SR (default) or Comprehensive SR.
    """
    algorithm = hd.sr.AlgorithmIdentification(
        name=model_key, version=model_version, family=c.ALGORITHM_FAMILY_AI
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking, identifier=NOT_RUN_TRACKING_ID),
        algorithm_id=algorithm,
    )
    for comment in not_run_comments(model_key, model_name, model_version, reason, numbers):
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=c.COMMENT,
                value=comment,
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    measurement_report = hd.sr.MeasurementReport(
        observation_context=observation_context(model_key, model_version),
        procedure_reported=c.PROCEDURE_REPORTED,
        imaging_measurements=[group],
        title=c.REPORT_TITLE,
        referenced_images=[source] if _is_image(source) else None,
    )
    return sr_document(measurement_report, identity, [source], sr_class)


def build_not_run_outputs(
    *,
    model_key: str,
    model_name: str,
    model_version: str,
    reason: str,
    source: Dataset,
    job_id: int,
    numbers: Mapping[str, float] | None = None,
    series_number_base: int = 9000,
    sr_class: SRClass = SRClass.COMPREHENSIVE_3D,
) -> dict[str, Dataset]:
    """The outputs of a job whose model was not run: ``{"sr": the "not run" report}``.

    ``source`` is any instance of the study as received (header enough); UIDs derive from
    ``job_id`` like a run's, and the SR carries the IHE AIR Contributing Equipment item.
    ``numbers`` (optional) are figures behind the decision, written as comments.
    """
    clean = clean_source(source)
    identity = output_identity(
        "sr", job_id, model_key, model_version, series_number_base, not_run=True
    )
    sr = build_not_run_sr(
        model_key=model_key,
        model_name=model_name,
        model_version=model_version,
        reason=reason,
        source=clean,
        identity=identity,
        tracking=tracking_uid(job_id),
        numbers=numbers,
        sr_class=sr_class,
    )
    restore_source(sr, source)
    add_air_equipment(sr, model_key, model_name, model_version)
    stamp_timezone(sr)
    logger.info("built a 'not run' SR for job %s", job_id)
    return {"sr": sr}
