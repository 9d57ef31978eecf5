"""The encode stage: prediction + source header -> SEG, SR and heatmap files in the job's outbox."""

from __future__ import annotations

import logging

import pydicom

from db import jobs
from db.models import Job, JobState
from inference.prediction import Prediction
from kernel.errors import EncodeError
from pipeline.context import NodeContext

log = logging.getLogger(__name__)


def encode(ctx: NodeContext, job: Job, prediction: Prediction) -> dict[str, str]:
    """Write every output object durably, re-read each, record their UIDs; returns role -> path.

    The outputs are described by the spec of the model version the prediction names.
    """
    from inference.encode.outputs import build_outputs
    from inference.registry import Registry

    spec = Registry.from_settings(ctx.settings).get(
        f"{prediction.model_key}@{prediction.model_version}", ctx.settings.default_model
    )
    outbox = ctx.spool.outbox_dir(job.id)
    source = pydicom.dcmread(prediction.source_path)
    with ctx.sessions() as session:
        replaced = jobs.previous_report(session, session.get(Job, job.id))
    replaces = pydicom.dcmread(replaced) if replaced is not None else None
    outputs = build_outputs(prediction, source, job.id, spec=spec, replaces=replaces)
    written: dict[str, str] = {}
    uids: dict[str, str] = {}
    for role, dataset in outputs.items():
        path = outbox / f"{role}.dcm"
        ctx.spool.write_atomic(path, lambda handle, ds=dataset: ds.save_as(handle, enforce_file_format=True))
        reread = pydicom.dcmread(path)
        if reread.SOPInstanceUID != dataset.SOPInstanceUID:
            raise EncodeError(f"{role}: re-read SOP Instance UID differs from the one written")
        written[role] = str(path)
        uids[role] = str(dataset.SOPInstanceUID)
    with ctx.sessions.begin() as session:
        row = session.get(Job, job.id)
        jobs.set_job_state(
            session,
            row,
            JobState.ENCODED,
            outputs={"files": written, "sop_instance_uids": uids, "inputs": prediction.inputs},
        )
    log.info("encoded", extra={"job_id": job.id, "roles": sorted(written)})
    return written
