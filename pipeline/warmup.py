"""Warm a worker before it takes jobs: load every live model version and run it once.

Without this the first job after a start pays for importing torch, building the network,
reading its weights, the first (slowest) forward and backward pass and highdicom's first
look-ups of its IOD tables: about 10 s on 2 cores. Each version runs as a job would (a
synthetic B-mode image through :func:`inference.runner.run_model` and the encoders, nothing
written or sent); a version whose inputs a B-mode image cannot give runs once on dummy tensors.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from db import jobs, model_versions
from pipeline.context import NodeContext

log = logging.getLogger(__name__)


def live_model_refs(ctx: NodeContext) -> list[str]:
    """``key@version`` of every model version new jobs run: enabled, then shadow ones."""
    with ctx.sessions() as session:
        rows = jobs.enabled_models(session) + model_versions.shadow_models(session)
    return list(dict.fromkeys(f"{row.model_key}@{row.version}" for row in rows))


def import_job_modules() -> None:
    """Import what a job runs (torch, MONAI, the runner, the gate, the encoders) in this thread,
    before any other thread can. MONAI's package import is not thread-safe: a job's first import
    racing the warm-up of a newly promoted version left ``monai`` half-initialised for the whole
    process (every later job FAILED with an ImportError)."""
    import inference.encode.outputs
    import inference.gate
    import inference.loading
    import inference.runner  # noqa: F401


def warm_models(
    ctx: NodeContext, refs: list[str] | None = None, reported: dict[str, str] | None = None
) -> list[str]:
    """Load ``refs`` (default: the live versions) into the worker's cache and run each once,
    as a job does (forward, Grad-CAM's backward, the encoders); returns the refs warmed.

    A version the registry does not hold or cannot load is logged and left for its first job
    to report; with ``reported`` (ref -> reason, updated here) a reason already logged for that
    ref is not logged again.
    """
    from inference.registry import Registry, RegistryError

    registry = Registry.from_settings(ctx.settings)
    warmed = []
    with tempfile.TemporaryDirectory(prefix="lnm-warm-") as folder:
        sample = _sample_image(Path(folder))
        for ref in refs if refs is not None else live_model_refs(ctx):
            started = time.perf_counter()
            try:
                spec = registry.get(ref, ctx.settings.default_model)
                network = ctx.model_cache.get(spec, ctx.settings.device)
            except RegistryError as error:
                if reported is None or reported.get(ref) != str(error):
                    log.error("model not warmed", extra={"model": ref, "reason": str(error)})
                if reported is not None:
                    reported[ref] = str(error)
                continue
            _run_once(spec, network, sample, ctx.settings.device)
            warmed.append(ref)
            log.info(
                "model warmed",
                extra={"model": ref, "seconds": round(time.perf_counter() - started, 3)},
            )
    return warmed


def _sample_image(folder: Path) -> Path:
    """A synthetic single-frame B-mode instance in ``folder``."""
    from phantom.us_dicom import make_us_dataset

    dataset, _, _ = make_us_dataset(seed=0)
    path = folder / "warm.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def _run_once(spec, network, sample: Path, device: str) -> None:  # type: ignore[no-untyped-def]
    """One job's model and encoder work on ``sample`` (dummy tensors when it does not fit)."""
    import pydicom

    from inference.encode.outputs import build_outputs
    from inference.gradcam import explain_input
    from inference.runner import run_model
    from inference.selection import MissingInput
    from inference.verify import dummy_input

    try:
        prediction = run_model(spec, network, [sample], device)
    except MissingInput:
        inputs = tuple(t.to(device) for t in dummy_input(spec))
        explain_input(network, inputs, spec.outputs.heatmap.layer, spec.explained_index)
        return
    build_outputs(prediction, pydicom.dcmread(sample), job_id=0, spec=spec)
