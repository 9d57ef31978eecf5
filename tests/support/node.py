"""The node as a real process (`lnm-node serve`), for integration and end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.network import free_port, port_open, wait_until


@dataclass
class NodeProcess:
    home: Path
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    ae_title: str = "LNMNODE"

    def cli_json(self, *args: str) -> object:
        """Run an `lnm-node ... --json --home HOME` command and parse its output."""
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", *args, "--json", "--home", str(self.home)],
            env=self.env, capture_output=True, check=True, timeout=120,
        )
        return json.loads(out.stdout)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the node must shut down cleanly by itself."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return (self.home / "node.log").read_text(errors="replace")


def open_scope(home: Path, env: dict[str, str]) -> None:
    """Let every registered model run on every study, ungated, at the node of ``home``:
    `lnm-node scope set --all --rule all --gate off --home HOME` (audited, as an admin would)."""
    subprocess.run(
        [sys.executable, "-m", "cli.main", "scope", "set", "--all", "--rule", "all", "--gate", "off",
         "--home", str(home), "--actor", "test"],
        env=env, capture_output=True, check=True, timeout=120,
    )


def start_node(
    home: Path, *extra: str, env: dict[str, str] | None = None, command: str = "serve",
    scope_open: bool = False,
) -> NodeProcess:
    """Start `lnm-node serve` (or ``command``, e.g. "scp") on a free loopback port; wait until
    it answers. The log appends to HOME/node.log, so a restarted node keeps the earlier lines.

    ``scope_open``: first :func:`open_scope`, so the packaged models (whose rules ask for
    breast or lymph-node studies, and whose gates decline other images) run on any study.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    if scope_open:
        open_scope(home, full_env)
    with open(home / "node.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", command, "--home", str(home), "--port", str(port), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=full_env,
        )
    node = NodeProcess(home, port, process, full_env)

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"node exited early:\n{node.log()}")
        return port_open(port)

    wait_until(listening, timeout=120, what="the node's DICOM port")
    return node
