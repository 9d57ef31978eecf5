"""A node configured for DICOM TLS end to end: a modality stores over TLS, the job's outputs
are delivered to a TLS destination (``AE@HOST:PORT+tls``) presenting the node's certificate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Job, JobState
from db.views import instance_rows
from dicom_node.scp import start_scp
from dicom_node.scu import send_instances
from dicom_node.tls import client_context
from kernel.settings import Destination, Settings
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.dicom_node.helpers import Node
from tests.integration.pipeline.conftest import make_settings, tiny_models_dir
from tests.support.tls import Pki, make_pki

__all__ = ["tiny_models_dir"]

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def test_tls_node_receives_and_delivers_to_tls_destination(
    tmp_path: Path, tiny_models_dir: Path, pki: Pki, make_node: Callable[..., Node]
) -> None:
    tls = {
        "tls_certificate": pki.server.certificate,
        "tls_private_key": pki.server.key,
        "tls_ca_certificates": pki.ca,
    }
    pacs = make_node(ae_title="TLSPACS", **tls)
    settings = make_settings(
        tmp_path / "home",
        tiny_models_dir,
        destinations=[f"TLSPACS@127.0.0.1:{pacs.port}+tls"],
        **tls,
    )
    ctx = prepare(settings)
    server = start_scp(settings, ctx.spool, ctx.sessions)
    try:
        modality = Settings(
            home=tmp_path / "modality",
            tls_certificate=pki.client.certificate,
            tls_private_key=pki.client.key,
            tls_ca_certificates=pki.ca,
        )
        node = Destination(
            ae_title=settings.ae_title, host="127.0.0.1", port=server.server_address[1], tls=True
        )
        files = write_us_study(tmp_path / "study", seed=51, count=2)
        statuses = send_instances(node, files, "MODALITY", tls=client_context(modality))
        assert set(statuses.values()) == {0}
    finally:
        server.shutdown()

    assert sweep(ctx, make_celery(settings)).jobs_created == 1
    with ctx.sessions() as session:
        job = session.scalars(select(Job)).one()
    assert process_job(ctx, job.id) is Outcome.DELIVERED
    with ctx.sessions() as session:
        job = session.get(Job, job.id)
    assert job is not None and job.state == JobState.DELIVERED
    with pacs.sessions() as session:
        received = {row["sop_instance_uid"] for row in instance_rows(session)}
    assert received == set(job.outputs["sop_instance_uids"].values())
