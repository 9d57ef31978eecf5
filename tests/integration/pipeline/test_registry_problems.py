"""A node whose models folders hold a bad folder: the other models keep running.

A folder copied by hand (a second copy of a registered version) or a half-written spec once
made every registry load fail: the sweeper could assemble no study, so no model ran at all.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Job, JobState
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.models import package_model

pytestmark = pytest.mark.integration


def _jobs(ctx) -> list[Job]:  # type: ignore[no-untyped-def]
    with ctx.sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_bad_model_folders_leave_the_live_model_running(
    tmp_path: Path, tiny_models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = package_model(tiny_models_dir / "tiny-other", seed=1, key="tiny-other")
    settings = make_settings(tmp_path / "home", tiny_models_dir)
    site = settings.home / "models"
    shutil.copytree(other.folder, site / "tiny-other-copy")  # the same key@version, twice
    (site / "half-written").mkdir()
    (site / "half-written" / "spec.json").write_text('{"key": "tiny-x"')

    with caplog.at_level(logging.ERROR, logger="pipeline.serve"):
        ctx = prepare(settings)
    left_out = {r.folder for r in caplog.records if r.getMessage() == "model folder left out"}  # type: ignore[attr-defined]
    assert left_out == {str(site / "half-written"), str(site / "tiny-other-copy"), str(other.folder)}

    receive(ctx, write_us_study(tmp_path / "study", seed=7, count=1))
    result = sweep(ctx, make_celery(settings))
    assert (result.assembled, result.jobs_created) == (1, 1)
    [job] = _jobs(ctx)
    assert process_job(ctx, job.id) is Outcome.DELIVERED
    assert _jobs(ctx)[0].state == JobState.DELIVERED


def test_live_version_held_twice_fails_its_job_with_why(tmp_path: Path, tiny_models_dir: Path) -> None:
    settings = make_settings(tmp_path / "home", tiny_models_dir)
    ctx = prepare(settings)
    shutil.copytree(tiny_models_dir / "tiny-ynet", settings.home / "models" / "copied-by-hand")

    receive(ctx, write_us_study(tmp_path / "study", seed=8, count=1))
    assert sweep(ctx, make_celery(settings)).jobs_created == 1
    [job] = _jobs(ctx)
    assert process_job(ctx, job.id) is Outcome.FAILED
    [failed] = _jobs(ctx)
    assert failed.state == JobState.FAILED
    assert "tiny-ynet@0.1.0 is registered twice" in (failed.reason or "")
    assert "copied-by-hand" in (failed.reason or "")
