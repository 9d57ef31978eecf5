"""The skip stage: a model whose input the study lacks -> a "not run" SR in the job's outbox."""

from __future__ import annotations

import logging
from pathlib import Path

from db import jobs
from db.models import Job, JobState
from kernel.errors import EncodeError, InvalidInput
from pipeline.context import NodeContext

log = logging.getLogger(__name__)

NOT_RUN = "not_run"
"""Key of ``Job.outputs`` holding why the model was not run (a skipped job's marker)."""


def encode_not_run(ctx: NodeContext, job: Job, reason: str) -> dict[str, str]:
    """Write the job's "not run" SR durably, re-read it, record it; returns role -> path.

    The job becomes ENCODED with ``outputs[NOT_RUN]`` = ``reason``; delivery follows as for a
    run. Raises :class:`InvalidInput` when no instance of the study can describe it.
    """
    import pydicom

    from inference.encode.not_run import build_not_run_outputs
    from inference.registry import Registry
    from inference.selection import reference_header

    registry = Registry.from_settings(ctx.settings)
    spec = registry.get(f"{job.model_key}@{job.model_version}", ctx.settings.default_model)
    with ctx.sessions() as session:
        paths = [Path(p) for p in jobs.study_instance_paths(session, job.study_id)]
    found = reference_header(paths)
    if found is None:
        raise InvalidInput(f"{reason}; no readable instance of the study to report it on")
    outputs = build_not_run_outputs(
        model_key=spec.key,
        model_name=spec.name,
        model_version=spec.version,
        reason=reason,
        source=found[1],
        job_id=job.id,
    )
    outbox = ctx.spool.outbox_dir(job.id)
    written: dict[str, str] = {}
    uids: dict[str, str] = {}
    for role, dataset in outputs.items():
        path = outbox / f"{role}.dcm"
        ctx.spool.write_atomic(
            path, lambda handle, ds=dataset: ds.save_as(handle, enforce_file_format=True)
        )
        if pydicom.dcmread(path).SOPInstanceUID != dataset.SOPInstanceUID:
            raise EncodeError(f"{role}: re-read SOP Instance UID differs from the one written")
        written[role] = str(path)
        uids[role] = str(dataset.SOPInstanceUID)
    with ctx.sessions.begin() as session:
        row = session.get(Job, job.id)
        jobs.set_job_state(
            session,
            row,
            JobState.ENCODED,
            reason=reason[:2000],
            outputs={"files": written, "sop_instance_uids": uids, NOT_RUN: reason[:2000]},
        )
    log.info("encoded not-run report", extra={"job_id": job.id, "roles": sorted(written)})
    return written
