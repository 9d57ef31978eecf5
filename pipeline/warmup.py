"""Warm a worker before it takes jobs: load every live model version and run it once.

Without this the first job after a start pays for importing torch, building the network,
reading its weights and the first (slowest) forward and backward pass: about 10 s on 2 cores.
"""

from __future__ import annotations

import logging
import time

from db import jobs, model_versions
from pipeline.context import NodeContext

log = logging.getLogger(__name__)


def live_model_refs(ctx: NodeContext) -> list[str]:
    """``key@version`` of every model version new jobs run: enabled, then shadow ones."""
    with ctx.sessions() as session:
        rows = jobs.enabled_models(session) + model_versions.shadow_models(session)
    return list(dict.fromkeys(f"{row.model_key}@{row.version}" for row in rows))


def warm_models(ctx: NodeContext, refs: list[str] | None = None) -> list[str]:
    """Load ``refs`` (default: the live versions) into the worker's cache and run one dummy
    Grad-CAM pass (forward and backward, as a job does) on each; returns the refs warmed.

    A version the registry does not hold is logged and left for its first job to report.
    """
    from inference.encode import outputs  # noqa: F401  (imports highdicom before the first job)
    from inference.gradcam import explain_input
    from inference.registry import Registry, RegistryError, default_models_dir
    from inference.verify import dummy_input

    device = ctx.settings.device
    registry = Registry.load(ctx.settings.models_dir or default_models_dir())
    warmed = []
    for ref in refs if refs is not None else live_model_refs(ctx):
        started = time.perf_counter()
        try:
            spec = registry.get(ref, ctx.settings.default_model)
            network = ctx.model_cache.get(spec, device)
        except RegistryError as error:
            log.error("model not warmed", extra={"model": ref, "reason": str(error)})
            continue
        inputs = tuple(t.to(device) for t in dummy_input(spec))
        explain_input(network, inputs, spec.outputs.heatmap.layer, spec.explained_index)
        warmed.append(ref)
        log.info("model warmed", extra={"model": ref, "seconds": round(time.perf_counter() - started, 3)})
    return warmed
