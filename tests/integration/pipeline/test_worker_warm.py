"""A worker warms its live model versions before its first job, and a promoted one soon after."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path

from db import model_versions
from pipeline import worker
from pipeline.serve import prepare
from pipeline.worker import get_ready, ready_marker
from tests.integration.pipeline.conftest import make_settings
from tests.support.models import package_model
from tests.support.network import wait_until


def test_worker_warms_live_versions_then_a_version_promoted_while_it_runs(tmp_path: Path) -> None:
    models = tmp_path / "models"
    package_model(models / "tiny-ynet-1", seed=0)
    package_model(models / "tiny-ynet-2", seed=1, version="0.2.0")
    ctx = prepare(make_settings(tmp_path / "home", models, sweep_interval_seconds=0.2))
    with ctx.sessions() as session:  # a fresh node enables the newest version of the default key
        live = [(r.version, r.enabled) for r in model_versions.version_rows(session)]
    (enabled,) = [version for version, on in live if on]
    other = next(version for version, _ in live if version != enabled)
    stop = threading.Event()
    try:
        assert get_ready(ctx, processes=1, watch=stop) == [f"tiny-ynet@{enabled}"]
        assert len(ctx.model_cache) == 1
        marker = ready_marker(ctx.settings.home, os.getpid())
        assert marker.read_text().split() == [f"tiny-ynet@{enabled}"]
        assert (
            stat.S_IMODE(marker.stat().st_mode),
            stat.S_IMODE(marker.parent.stat().st_mode),
        ) == (
            0o600,
            0o700,
        )

        with ctx.sessions.begin() as session:
            model_versions.promote(
                session, model_versions.find_version(session, "tiny-ynet", other), actor="test"
            )
        wait_until(lambda: len(ctx.model_cache) == 2, timeout=60, what="the promoted version warm")
    finally:
        stop.set()


def test_unloadable_live_version_logged_once_and_warmed_when_restored(
    tmp_path: Path, monkeypatch, caplog  # type: ignore[no-untyped-def]
) -> None:
    """Weights changed on disk: the worker says so once (it said so every sweep period, 2 s by
    default, forever), tries again now and then, and warms the version once the file is back."""
    monkeypatch.setattr(worker, "RETRY_UNLOADABLE_SECONDS", 0.3)
    spec = package_model(tmp_path / "models" / "tiny-ynet-1", seed=0)
    good = spec.weights_path.read_bytes()
    ctx = prepare(make_settings(tmp_path / "home", tmp_path / "models", sweep_interval_seconds=0.05))
    spec.weights_path.write_bytes(good + b"changed")
    stop = threading.Event()
    try:
        with caplog.at_level(logging.ERROR, logger="pipeline.warmup"):
            assert get_ready(ctx, processes=1, watch=stop) == []
            time.sleep(1.5)  # 30 sweep periods, about 5 tries
            failures = [r for r in caplog.records if r.getMessage() == "model not warmed"]
        assert len(failures) == 1 and "sha256" in failures[0].__dict__["reason"]
        spec.weights_path.write_bytes(good)
        wait_until(lambda: len(ctx.model_cache) == 1, timeout=60, what="the restored version warm")
    finally:
        stop.set()
