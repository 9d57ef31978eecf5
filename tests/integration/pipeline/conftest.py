"""Fixtures for pipeline tests: a prepared node on a tiny registered model, studies received by the real SCP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.scp import start_scp
from dicom_node.scu import send_instances
from kernel.settings import Destination, Settings
from pipeline.context import NodeContext
from pipeline.serve import prepare
from tests.support.models import package_model


@pytest.fixture
def tiny_models_dir(tmp_path: Path) -> Path:
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    return tmp_path / "models"


def make_settings(home: Path, models_dir: Path, **overrides: object) -> Settings:
    """Settings of a test node: tiny model, no quiet time, any free port."""
    values: dict[str, object] = {"home": home, "models_dir": models_dir, "default_model": "tiny-ynet",
                                 "quiet_seconds": 0, "port": 0}
    values.update(overrides)
    return Settings(**values)


def receive(ctx: NodeContext, paths: list[Path]) -> None:
    """Send ``paths`` to a real SCP of this node (C-STORE over loopback), then stop it."""
    server = start_scp(ctx.settings, ctx.spool, ctx.sessions)
    try:
        port = server.server_address[1]
        send_instances(Destination(ae_title=ctx.settings.ae_title, host="127.0.0.1", port=port), paths, "TESTSCU")
    finally:
        server.shutdown()


@pytest.fixture
def node_context(tmp_path: Path, tiny_models_dir: Path) -> Iterator[NodeContext]:
    yield prepare(make_settings(tmp_path / "home", tiny_models_dir))
