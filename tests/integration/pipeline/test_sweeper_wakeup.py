"""The sweeper sleeps until the next study's quiet deadline, never longer than its period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.serve import prepare
from pipeline.sweeper import seconds_until_next, sweep
from tests.integration.pipeline.conftest import make_settings, receive


@pytest.fixture
def quiet_node(tmp_path: Path, tiny_models_dir: Path) -> NodeContext:
    return prepare(
        make_settings(
            tmp_path / "home", tiny_models_dir, quiet_seconds=60, sweep_interval_seconds=300
        )
    )


def test_sweep_reports_the_receiving_study_quiet_deadline_and_the_sweeper_sleeps_until_it(
    quiet_node: NodeContext, tmp_path: Path
) -> None:
    ctx = quiet_node
    receive(ctx, write_us_study(tmp_path / "s", seed=3, count=1))
    app = make_celery(ctx.settings)
    result = sweep(ctx, app)
    assert result.assembled == 0 and result.next_deadline is not None
    with ctx.sessions() as session:
        from db.jobs import receiving_studies

        (study,) = receiving_studies(session)
    assert result.next_deadline == study.last_received_at + timedelta(seconds=60)
    sleep = seconds_until_next(ctx, result)
    assert 0 < sleep <= 60  # the deadline, not the 300 s period

    late = ctx.clock() + timedelta(seconds=61)
    ctx.clock = lambda: late  # the deadline has passed: the study is assembled and queued
    result = sweep(ctx, app)
    assert result.assembled == 1 and result.enqueued == 1 and result.next_deadline is None
    assert seconds_until_next(ctx, result) == 300
