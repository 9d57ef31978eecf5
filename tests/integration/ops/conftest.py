"""Fixtures of the operations tests: a tiny registered model, worker processes, job waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import AuditEvent, Job, JobState
from kernel.settings import Settings, settings_environment
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.sweeper import sweep
from tests.support.models import package_model
from tests.support.network import wait_until


@pytest.fixture
def tiny_models_dir(tmp_path: Path) -> Path:
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    return tmp_path / "models"


class Workers:
    """`lnm-node worker` processes started by a test; stopped (SIGTERM, then kill) at its end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, settings: Settings, *args: str, home: Path | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, **settings_environment(settings)}
        if home is not None:
            env["LNM_HOME"] = str(home)
        log = open(self.folder / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "worker", *args], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.folder.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    yield started
    started.stop_all()


def job_states(ctx: NodeContext) -> list[JobState]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Job.state).order_by(Job.id)))


def wait_all_delivered(ctx: NodeContext, count: int, workers: Workers, timeout: float = 180) -> None:
    """Sweep until ``count`` jobs exist and all are DELIVERED (fail fast on FAILED)."""
    app = make_celery(ctx.settings)

    def delivered() -> bool:
        sweep(ctx, app)
        states = job_states(ctx)
        if JobState.FAILED in states or JobState.FAILED_INPUT in states:
            raise AssertionError(f"a job failed: {states}\n{workers.logs()}")
        return len(states) == count and all(s == JobState.DELIVERED for s in states)

    try:
        wait_until(delivered, timeout=timeout, interval=0.5, what=f"{count} delivered jobs")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {job_states(ctx)}\n{workers.logs()}") from exc


def audit_count(ctx: NodeContext, action: str, entity: str) -> dict[str, int]:
    """entity id -> number of audit events of ``action``."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(AuditEvent.entity_id, func.count()).where(
                AuditEvent.action == action, AuditEvent.entity == entity
            ).group_by(AuditEvent.entity_id)
        ).all()
    return {entity_id: n for entity_id, n in rows}
