"""The infer stage: selected frames of a study -> a prediction file in the job's work folder."""

from __future__ import annotations

import logging
from pathlib import Path

from db import jobs
from db import scope as scope_db
from db.models import Job, JobState
from inference.prediction import Prediction
from pipeline.context import NodeContext
from pipeline.scoping import gate_enabled

log = logging.getLogger(__name__)


def infer(ctx: NodeContext, job: Job) -> Prediction:
    """Run the job's model version on its study and write the prediction; a rerun overwrites it.

    The model's gate runs unless the site switched it off: an input outside the model's training
    domain raises ``inference.gate.OutOfDomain``.
    """
    from inference.gate import load_reference
    from inference.registry import Registry
    from inference.runner import run_model
    from inference.selection import CeusRule

    work = ctx.spool.work_dir(job.id)
    registry = Registry.from_settings(ctx.settings)
    spec = registry.get(f"{job.model_key}@{job.model_version}", ctx.settings.default_model)
    network = ctx.model_cache.get(spec, ctx.settings.device)
    with ctx.sessions() as session:
        paths = [Path(p) for p in jobs.study_instance_paths(session, job.study_id)]
        override = scope_db.overrides(session).get(spec.key)
    ceus = CeusRule.from_settings(ctx.settings)
    gate = load_reference(spec) if gate_enabled(spec.scope.gate is not None, override) else None
    prediction = run_model(
        spec, network, paths, ctx.settings.device, ceus=ceus, gate=gate, passes=ctx.passes
    )
    prediction.save(work)
    with ctx.sessions.begin() as session:
        row = session.get(Job, job.id)
        jobs.set_job_state(
            session, row, JobState.INFERRED,
            probability=prediction.probability, weights_sha256=spec.weights_sha256,
        )
    log.info("inferred", extra={"job_id": job.id, "model": f"{spec.key}@{spec.version}"})
    return prediction
