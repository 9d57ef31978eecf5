"""Private Redis and PostgreSQL servers on free loopback ports, for tests that restart them.

Never restart the shared servers (other tests use them); these are started, restarted and
stopped by the test that owns them, and skipped with the reason when the binaries are absent.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.network import free_port, port_open, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PrivateRedis:
    """A redis-server without persistence: a restart loses every queued message."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the server owns it
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(lambda: port_open(self.port), timeout=20, what="the private redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        wait_until(lambda: not port_open(self.port), timeout=20, what="redis-server to stop")

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def private_redis(folder: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: cannot start a private Redis to restart")
    folder.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(folder, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL 15 cluster run by the ``postgres`` user, trust auth on loopback."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"),
             "-l", str(self.folder / "postgres.log"), "-w", "-t", "60", *args],
            check=True, capture_output=True, timeout=90,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb + pg_ctl into a temporary folder owned by ``postgres``; removed afterwards."""
    if not (PG_BIN / "initdb").is_file() or shutil.which("runuser") is None:
        pytest.skip(f"PostgreSQL 15 binaries ({PG_BIN}) or runuser missing: no private cluster")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user to run a private PostgreSQL cluster")
    if os.geteuid() != 0:
        pytest.skip("a private PostgreSQL cluster needs root to run as the postgres user")
    folder = Path(tempfile.mkdtemp(prefix="lnm-pg-"))
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    server = PrivatePostgres(folder, free_port())
    try:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(folder / "data"),
             "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )
        server.start()
        yield server
    finally:
        if (folder / "data" / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
