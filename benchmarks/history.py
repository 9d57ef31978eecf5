"""The node after a year: what runs often, or what people wait on, against a year of history.

Run from the project root::

    python benchmarks/history.py --studies 50000 --database sqlite
    python benchmarks/history.py --studies 50000 --database postgresql --explain

Fills a fresh database at schema head with a synthetic history (:mod:`phantom.history`: studies
in every state, instances, jobs, deliveries, audit events, MPPS steps, labels, model versions;
a few studies receiving and jobs live among the finished ones), then times each operation
(median of ``--repeats`` runs after one warm-up, in ms) and counts its statements. Writes run
in a transaction rolled back afterwards, so every run sees the same history. ``--explain``
prints the plan of each SELECT an operation ran (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL
``EXPLAIN ANALYZE``) and marks the full scans. PostgreSQL databases are created on
``--postgres`` (default: the loopback server the tests use) as ``dbscale_<random>`` and dropped
at the end; ``--keep`` keeps the database (and prints its URL) to rerun with ``--url``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from db import instances, jobs, retention
from db.instances import ReceivedInstance
from db.models import Job, JobState, Study, StudyState
from db.session import make_engine, upgrade
from kernel.settings import Settings
from kernel.spool import Spool
from phantom.history import HistoryShape, populate
from pipeline.context import NodeContext
from pipeline.retention import enforce_retention
from pipeline.sweeper import sweep
from web.app import create_app
from web.passwords import hash_password

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
USER, PASSWORD = "bench", "history-bench-password"


@contextmanager
def database(kind: str, folder: Path, admin: str, keep: bool) -> Iterator[str]:
    """A fresh empty database: an SQLite file under ``folder`` or ``dbscale_*`` on ``admin``."""
    if kind == "sqlite":
        path = folder / "history.sqlite3"
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        return
    import psycopg

    name = f"dbscale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    try:
        yield url
    finally:
        if keep:
            print(f"kept {url}")
        else:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def savepoint_engine(url: str) -> Engine:
    """The node's engine; on SQLite with pysqlite's own transaction handling off, so that
    sessions joined to an outer transaction can commit into savepoints (SQLAlchemy's recipe)."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection) -> None:  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def rolled_back(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions whose commits land in one outer transaction, rolled back at the end."""
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            yield sessionmaker(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            )
        finally:
            outer.rollback()


class Statements:
    """The statements run on ``engine`` while recording (text, parameters)."""

    def __init__(self, engine: Engine) -> None:
        self.recording = False
        self.seen: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if self.recording:
            self.seen.append((statement, parameters))

    @contextmanager
    def record(self) -> Iterator[list[tuple[str, Any]]]:
        self.seen, self.recording = [], True
        try:
            yield self.seen
        finally:
            self.recording = False


def _quiet_app() -> Celery:
    return Celery("history-bench", broker="memory://", backend="cache+memory://")


class Bench:
    """The operations, each a callable on a fresh rolled-back transaction."""

    def __init__(self, engine: Engine, home: Path, now: datetime) -> None:
        self.engine, self.home, self.now = engine, home, now
        self.settings = Settings(
            home=home,
            database_url=str(engine.url.render_as_string(False)),
            web_users=[f"{USER}:{hash_password(PASSWORD)}"],
            metrics_cache_seconds=0,
        )
        self.spool = Spool.under(home)
        self.app = _quiet_app()
        with Session(engine) as session:
            self.receiving = session.scalar(
                select(Study.id)
                .where(Study.state == StudyState.RECEIVING)
                .order_by(Study.id.desc())
                .limit(1)
            )
            self.big = session.scalar(
                select(Study.id).order_by(Study.id.desc()).offset(1000).limit(1)
            )
            self.queued = session.scalar(
                select(Job.id).where(Job.state == JobState.QUEUED).limit(1)
            )
            self.receiving_uid = session.get(Study, self.receiving).study_instance_uid  # type: ignore[union-attr]
        self.counter = 0
        self._client: TestClient | None = None

    def ctx(self, sessions: sessionmaker[Session], **overrides: Any) -> NodeContext:
        settings = self.settings.model_copy(update=overrides)
        return NodeContext(
            settings=settings, sessions=sessions, spool=self.spool, clock=lambda: self.now
        )

    def client(self) -> TestClient:
        if self._client is None:
            sessions = sessionmaker(self.engine, expire_on_commit=False)
            self._client = TestClient(
                create_app(self.settings, sessions, self.spool), base_url="https://testserver"
            )
            answer = self._client.post(
                "/login", data={"username": USER, "password": PASSWORD}, follow_redirects=False
            )
            if answer.status_code != 303:
                raise RuntimeError(f"login: {answer.status_code}")
        return self._client

    def get(self, path: str) -> Callable[[], None]:
        def call() -> None:
            answer = self.client().get(path)
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: {answer.status_code}")

        return call

    # --- operations -------------------------------------------------------------------

    def sweep_pass(self) -> None:
        with rolled_back(self.engine) as sessions:
            sweep(self.ctx(sessions), self.app)

    def receive_instance(self) -> None:
        self.counter += 1
        item = ReceivedInstance(
            self.receiving_uid,
            self.receiving_uid + ".1",
            f"2.25.77.{self.counter}",
            "1.2.840.10008.5.1.4.1.1.6.1",
            "1.2.840.10008.1.2.4.50",
            "/tmp/x.dcm",
            900_000,
            patient_key="0" * 64,
        )
        with rolled_back(self.engine) as sessions, sessions.begin() as session:
            instances.record_or_find(session, item)

    def receive_new_study(self) -> None:
        self.counter += 1
        uid = f"2.25.78.{self.counter}"
        item = ReceivedInstance(
            uid,
            uid + ".1",
            uid + ".1.1",
            "1.2.840.10008.5.1.4.1.1.6.1",
            "1.2.840.10008.1.2.4.50",
            "/tmp/x.dcm",
            900_000,
        )
        with rolled_back(self.engine) as sessions, sessions.begin() as session:
            instances.record_or_find(session, item)

    def patient_check(self) -> None:
        with Session(self.engine) as session:
            instances.patient_key_count(session, self.big)

    def claim_renew_release(self) -> None:
        lease = timedelta(seconds=60)
        with rolled_back(self.engine) as sessions, sessions() as session:
            job = jobs.claim_job(session, self.queued, self.now, lease)
            if job is None:
                raise RuntimeError("claim refused")
            jobs.renew_lease(session, job.id, job.attempts, self.now + lease)
            jobs.release_job(session, job)
            session.commit()

    def jobs_due(self) -> None:
        with Session(self.engine) as session:
            jobs.jobs_to_enqueue(session, self.now, timedelta(seconds=300))

    def cli(self, *args: str) -> Callable[[], None]:
        from typer.testing import CliRunner

        from cli.main import app

        def call() -> None:
            env = {"LNM_DATABASE_URL": self.settings.database_url, "LNM_HOME": str(self.home)}
            result = CliRunner().invoke(app, list(args), env=env)
            if result.exit_code != 0:
                raise RuntimeError(f"lnm-node {' '.join(args)}: {result.output[-500:]}")

        return call

    def metrics(self) -> None:
        answer = self.client().get("/metrics")
        if answer.status_code != 200:
            raise RuntimeError(f"/metrics: {answer.status_code}")

    def retention_age(self) -> None:
        with rolled_back(self.engine) as sessions:
            enforce_retention(self.ctx(sessions))

    def retention_size(self) -> None:
        # the queries of the size-capped pass before it expires anything (the files here do
        # not exist, so expiring would free nothing and go on through every candidate)
        with Session(self.engine) as session:
            retention.received_bytes(session)
            retention.expirable_studies(session)

    def operations(self) -> dict[str, Callable[[], None]]:
        return {
            "sweeper pass (8 receiving, 7 jobs due)": self.sweep_pass,
            "receive: instance of a known study": self.receive_instance,
            "receive: first instance of a new study": self.receive_new_study,
            "one-patient check (patient_key_count)": self.patient_check,
            "claim + renew + release a job": self.claim_renew_release,
            "jobs_to_enqueue (lost, retries due)": self.jobs_due,
            "lnm-node status --json": self.cli("status", "--json"),
            "lnm-node instances --json": self.cli("instances", "--json"),
            "page /": self.get("/"),
            "page /studies": self.get("/studies"),
            "page /studies?page=300": self.get("/studies?page=300"),
            "page /studies?uid= (search)": self.get(f"/studies?uid={self.receiving_uid[:12]}"),
            "page /jobs": self.get("/jobs"),
            "page /deliveries": self.get("/deliveries"),
            "page /errors": self.get("/errors"),
            "page /audit": self.get("/audit"),
            "page /studies/{id}": self.get(f"/studies/{self.big}"),
            "/metrics": self.metrics,
            "retention pass (age, nothing due)": self.retention_age,
            "retention queries (size cap)": self.retention_size,
        }


def time_call(call: Callable[[], None], repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after one warm-up."""
    call()
    runs = []
    for _ in range(repeats):
        begin = time.perf_counter()
        call()
        runs.append((time.perf_counter() - begin) * 1000)
    return statistics.median(runs)


def explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan of one SELECT, as text lines."""
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        if engine.dialect.name == "sqlite":
            rows = raw.execute("EXPLAIN QUERY PLAN " + statement, parameters or ()).fetchall()
            return [row[-1] for row in rows]
        with raw.cursor() as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + statement,
                parameters or None,
            )
            lines = [row[0] for row in cursor.fetchall()]
        raw.rollback()
        return lines


def full_scan(engine: Engine, line: str) -> bool:
    if engine.dialect.name == "sqlite":
        return (
            line.startswith("SCAN ")
            and "USING COVERING INDEX" not in line
            and "USING INDEX" not in line
            and "CONSTANT ROW" not in line
        )
    return "Seq Scan" in line


def run(
    url: str,
    shape: HistoryShape,
    repeats: int,
    show_plans: bool,
    fill: bool,
    only: list[str],
    skip: list[str],
) -> dict[str, Any]:
    now = datetime.now(UTC)
    results: dict[str, Any] = {"database": url.split(":", 1)[0], "studies": shape.studies}
    if fill:
        upgrade(url)
        begin = time.perf_counter()
        with Session(create_engine(url)) as session:
            counts = populate(session, shape, now)
        results["rows"] = counts.rows
        results["fill_seconds"] = round(time.perf_counter() - begin, 1)
        print(f"filled in {results['fill_seconds']} s: {json.dumps(counts.rows)}", flush=True)
        if url.startswith("postgresql"):
            with create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
                connection.execute(text("VACUUM ANALYZE"))
    engine = savepoint_engine(url)
    statements = Statements(engine)
    with tempfile.TemporaryDirectory() as home:
        bench = Bench(engine, Path(home), now)
        timings = {}
        for name, call in bench.operations().items():
            if (only and not any(word in name for word in only)) or any(
                word in name for word in skip
            ):
                continue
            with contextlib.redirect_stdout(io.StringIO()), statements.record() as seen:
                call()
            recorded = list(seen)
            with contextlib.redirect_stdout(io.StringIO()):
                ms = time_call(call, repeats)
            scans = []
            for statement, parameters in recorded:
                if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                if not show_plans and engine.dialect.name == "postgresql":
                    continue
                plan = explain(engine, statement, parameters)
                scans += [line.strip() for line in plan if full_scan(engine, line.strip())]
                if show_plans:
                    print(f"\n[{name}] {' '.join(statement.split())[:300]}")
                    print("\n".join("    " + line for line in plan))
            timings[name] = {
                "ms": round(ms, 2),
                "statements": len(recorded),
                "full_scans": sorted(set(scans)),
            }
            print(
                f"{name:45s} {ms:10.2f} ms  {len(recorded):4d} statements"
                + (f"  full scans: {sorted(set(scans))}" if scans else ""),
                flush=True,
            )
        results["operations"] = timings
    engine.dispose()
    return results


def main() -> None:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=50_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres", default=ADMIN, help="PostgreSQL admin URL (psycopg form)")
    parser.add_argument("--url", help="an already filled database (from --keep) instead")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--folder", type=Path, help="where the SQLite file goes (default: temp)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print every SELECT's plan")
    parser.add_argument("--only", nargs="*", default=[], help="operations whose name has a word")
    parser.add_argument("--skip", nargs="*", default=[], help="leave out operations named so")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    shape = HistoryShape(studies=args.studies)
    if args.url:
        results = run(args.url, shape, args.repeats, args.explain, False, args.only, args.skip)
    else:
        with tempfile.TemporaryDirectory() as temp:
            folder = args.folder or Path(temp)
            with database(args.database, folder, args.postgres, args.keep) as url:
                results = run(url, shape, args.repeats, args.explain, True, args.only, args.skip)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
