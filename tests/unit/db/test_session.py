"""Schema upgrades when several node processes start at once on a fresh database."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, select

from db.models import ModelVersion
from db.session import alembic_config, make_sessionmaker
from inference.registry import Registry
from kernel.settings import load_settings
from tests.support.databases import database_url

PROCESSES = 4


def _start_like_a_node_process(home: str, url: str | None, barrier: Any, results: Any) -> None:
    """What every node process (`serve`, `scp`, `beat`, `worker`) does first: settings (the
    home, the SQLite file), then :func:`pipeline.serve.prepare`: the schema upgrade and the
    registration of the shipped models."""
    from pipeline.serve import prepare

    barrier.wait(timeout=60)
    try:
        settings = load_settings(home=Path(home), database_url=url)
        prepare(settings)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the test reports what a process died of
        results.put(f"{type(exc).__name__}: {exc}"[:300])


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_starting_together_on_a_fresh_database_all_start(
    tmp_path: Path, kind: str
) -> None:
    home = tmp_path / "home"
    with database_url(kind, tmp_path) as url:
        url = None if kind == "sqlite" else url  # SQLite: the home's own lnm.sqlite3
        spawn = multiprocessing.get_context("spawn")
        barrier, results = spawn.Barrier(PROCESSES), spawn.Queue()
        processes = [
            spawn.Process(
                target=_start_like_a_node_process, args=(str(home), url, barrier, results)
            )
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=30)

        assert outcomes == ["ok"] * PROCESSES
        url = url or f"sqlite:///{home / 'lnm.sqlite3'}"
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        engine = create_engine(url)
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head
        engine.dispose()
        with make_sessionmaker(url)() as session:  # every shipped model registered once
            assert session.scalar(select(func.count(ModelVersion.id))) == len(
                Registry.from_settings(load_settings(home=home)).specs()
            )
    if kind == "sqlite":
        assert stat.S_IMODE((home / "lnm.sqlite3").stat().st_mode) == 0o600
        assert stat.S_IMODE((home / "lnm.sqlite3.upgrade-lock").stat().st_mode) == 0o600
