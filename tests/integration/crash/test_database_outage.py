"""The database goes away under a running SCP process (`lnm-node scp` on PostgreSQL): a
C-STORE in that time is answered 0xA700 (out of resources) and nothing of it is kept; once the
database is back, the sender's resend is stored."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dicom_node import statuses
from dicom_node.contexts import read_file_uids
from dicom_node.scu import store_files
from kernel.settings import Destination
from phantom.us_dicom import write_us_study
from tests.support.databases import POSTGRES_ADMIN_URL, postgres_database
from tests.support.node import start_node

pytestmark = pytest.mark.integration


def _allow_connections(name: str, allow: bool) -> None:
    """Open or close the database to new connections; closing also ends the open ones."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


def _status(destination: Destination, path: Path) -> int | None:
    [result] = store_files(destination, [path], "MODALITY")
    return result.status


def test_scp_process_database_down_a700_then_resend_stored(tmp_path: Path) -> None:
    first, second = write_us_study(tmp_path / "study", seed=81, count=2, rows=48, cols=64)
    with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        node = start_node(tmp_path / "node", command="scp", env={"LNM_DATABASE_URL": url})
        try:
            destination = Destination(ae_title="LNMNODE", host="127.0.0.1", port=node.port)
            assert _status(destination, first) == statuses.SUCCESS

            _allow_connections(name, False)
            try:
                assert _status(destination, second) == statuses.OUT_OF_RESOURCES
            finally:
                _allow_connections(name, True)
            incoming = node.home / "spool" / "incoming"
            assert [p.stem for p in incoming.glob("*/*/*.dcm")] == [read_file_uids(first)[1]]

            assert _status(destination, second) == statuses.SUCCESS
            rows = node.cli_json("instances")
            assert sorted(r["sop_instance_uid"] for r in rows) == sorted(  # type: ignore[union-attr]
                read_file_uids(p)[1] for p in (first, second)
            )
        finally:
            assert node.stop() == 0, node.log()[-3000:]
