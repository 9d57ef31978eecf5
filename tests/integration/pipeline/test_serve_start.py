"""`lnm-node serve` refuses to start beside a running node, before it starts any worker: a
second node on the same home would take the first one's jobs from their shared folder queue,
and one that cannot open its port would leave its workers running."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.models import package_model
from tests.support.network import free_port, port_open, wait_until
from tests.support.node import start_node

pytestmark = pytest.mark.integration


def _serve(home: Path, port: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--home", str(home), "--port", str(port)],
        check=False, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _workers_of(home: Path) -> list[str]:
    """Command lines of live `cli.main worker` processes whose settings name ``home``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if "cli.main worker" in command and f"LNM_HOME={home}".encode() in environment:
            found.append(f"{entry.name}: {command}")
    return found


def test_a_second_serve_on_a_served_home_or_port_stops_before_any_worker(tmp_path: Path) -> None:
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    env = {"LNM_MODELS_DIR": str(tmp_path / "models"), "LNM_DEFAULT_MODEL": "tiny-ynet"}
    home = tmp_path / "node"
    node = start_node(home, env=env)
    try:
        workers = _workers_of(home)
        assert workers  # the first node's own

        same_home = _serve(home, free_port(), node.env)
        assert same_home.returncode == 1
        message = " ".join(same_home.stdout.split())
        assert f"served already by another `lnm-node serve` (pid {node.process.pid})" in message

        other_home = tmp_path / "other"
        same_port = _serve(other_home, node.port, node.env)
        assert same_port.returncode == 1
        message = " ".join(same_port.stdout.split())
        assert f"cannot listen on 127.0.0.1:{node.port}" in message
        assert "Traceback" not in same_port.stdout + same_port.stderr
        assert _workers_of(other_home) == []  # none was started, none left behind

        assert _workers_of(home) == workers  # the first node's, untouched
        assert port_open(node.port) and node.process.poll() is None
    finally:
        assert node.stop() == 0
    assert _workers_of(home) == []


def test_workers_end_when_serve_is_killed(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, `kill -9`) gives `serve` no chance to stop its workers: the
    kernel tells them (PR_SET_PDEATHSIG), and they end instead of taking jobs unseen."""
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    env = {"LNM_MODELS_DIR": str(tmp_path / "models"), "LNM_DEFAULT_MODEL": "tiny-ynet"}
    home = tmp_path / "node"
    node = start_node(home, env=env)
    assert _workers_of(home)

    node.process.send_signal(signal.SIGKILL)
    node.process.wait(timeout=30)

    wait_until(lambda: not _workers_of(home), timeout=60, what="the killed node's workers ended")


def test_status_page_port_taken_stops_serve_before_any_worker(tmp_path: Path) -> None:
    """It opened the DICOM port and said "listening", then ended on the status page's bind."""
    home = tmp_path / "node"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "serve", "--home", str(home), "--port",
             str(free_port()), "--http-port", str(http_port)],
            check=False, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert f"cannot listen on 127.0.0.1:{http_port} (status page): Address already in use" in output
    assert "lnm-node listening" not in output and "Traceback" not in output
    assert _workers_of(home) == []
