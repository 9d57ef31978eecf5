"""Promotion with the CLI takes effect for the next study (its version in the SR); shadows stay home."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from db.models import Delivery, Job, JobState
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.models import package_model
from tests.support.network import free_port

pytestmark = pytest.mark.integration
runner = CliRunner()


def _cli(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output


def _strings(dataset: pydicom.Dataset) -> set[str]:
    """Every text value of a dataset, nested sequences included."""
    found: set[str] = set()

    def visit(ds: pydicom.Dataset, element: pydicom.DataElement) -> None:
        if isinstance(element.value, str):
            found.add(element.value)

    dataset.walk(visit)
    return found


def _jobs(ctx) -> list[Job]:  # type: ignore[no-untyped-def]
    with ctx.sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_promote_then_shadow_next_study_uses_new_version_shadow_not_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    package_model(models / "tiny-ynet-0.1.0", seed=0)
    package_model(models / "tiny-ynet-0.2.0", seed=1, version="0.2.0")
    home = tmp_path / "home"
    settings = make_settings(home, models, destinations=[f"PACS@127.0.0.1:{free_port()}"])
    monkeypatch.setenv("LNM_MODELS_DIR", str(models))
    monkeypatch.setenv("LNM_DEFAULT_MODEL", "tiny-ynet")
    ctx = prepare(settings)

    _cli("models", "promote", "tiny-ynet@0.1.0", "--home", str(home))
    receive(ctx, write_us_study(tmp_path / "first", seed=11, count=1))
    sweep(ctx, make_celery(settings))
    (first,) = _jobs(ctx)
    assert (first.model_version, first.shadow) == ("0.1.0", False)
    process_job(ctx, first.id)

    # promote 0.2.0 and shadow 0.1.0: no worker restart, the next assembly picks them up
    _cli("models", "promote", "tiny-ynet@0.2.0", "--home", str(home))
    _cli("models", "shadow", "tiny-ynet@0.1.0", "--home", str(home))
    receive(ctx, write_us_study(tmp_path / "second", seed=12, count=1))
    sweep(ctx, make_celery(settings))
    _, live, shadow = _jobs(ctx)
    assert (live.model_version, live.shadow) == ("0.2.0", False)
    assert (shadow.model_version, shadow.shadow) == ("0.1.0", True)

    assert process_job(ctx, live.id) is Outcome.DELIVERY_PENDING  # nothing listens on the PACS port
    process_job(ctx, shadow.id)
    first, live, shadow = _jobs(ctx)
    assert first.model_version == "0.1.0"  # a job keeps the version it started with
    assert "0.2.0" in _strings(pydicom.dcmread(live.outputs["files"]["sr"]))
    assert "0.1.0" in _strings(pydicom.dcmread(first.outputs["files"]["sr"]))
    assert shadow.state == JobState.SKIPPED and Path(shadow.outputs["files"]["sr"]).is_file()
    with ctx.sessions() as session:
        delivered_jobs = set(session.scalars(select(Delivery.job_id)))
    assert shadow.id not in delivered_jobs and live.id in delivered_jobs
    assert len(ctx.model_cache) == 2  # keyed on key + version: both versions loaded side by side
