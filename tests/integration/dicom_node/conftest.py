"""Fixtures for the DICOM network edge: a running SCP on an ephemeral port, phantom files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_sessionmaker
from dicom_node.scp import start_scp
from kernel.settings import load_settings
from kernel.spool import Spool
from phantom.us_dicom import make_us_dataset
from tests.integration.dicom_node.helpers import PHANTOM_VARIANTS, Node
from tests.support.storescu import SHARED_US_DICOM, shared_us_files


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start SCPs with settings overrides; ``sessions=`` replaces the database."""
    servers: list[ThreadedAssociationServer] = []

    def start(
        sessions: sessionmaker[Session] | None = None, chunked: bool = True, **overrides: Any
    ) -> Node:
        home = tmp_path / f"home{len(servers)}"
        values: dict[str, Any] = {
            "home": home,
            "port": 0,
            "ae_title": "LNMNODE",
            "min_free_disk_bytes": 0,
            "network_timeout_seconds": 10,
        }
        values.update(overrides)
        settings = load_settings(**values)
        spool = Spool.under(settings.home)
        sessions = sessions or make_sessionmaker(settings.database_url)
        server = start_scp(settings, spool, sessions, chunked=chunked)
        servers.append(server)
        return Node(settings, spool, sessions, server)

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def node(make_node: Callable[..., Node]) -> Node:
    """An SCP with default limits, no allowlist, SQLite."""
    return make_node()


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One synthetic US file per transfer syntax / class variant (distinct UIDs)."""
    folder = tmp_path_factory.mktemp("phantom")
    files = {}
    for seed, (name, kwargs) in enumerate(PHANTOM_VARIANTS.items(), start=100):
        ds, _, _ = make_us_dataset(seed=seed, rows=96, cols=128, **kwargs)
        path = folder / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files[name] = path
    return files


@pytest.fixture(scope="session")
def real_files() -> list[Path]:
    """Real scanner files, or skip when ../shared/data is absent."""
    files = shared_us_files()
    if not files:
        pytest.skip(f"shared data absent: {SHARED_US_DICOM} (manifest.csv) not found")
    return files
