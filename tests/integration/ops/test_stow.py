"""STOW-RS to a real Orthanc with its DICOMweb plugin, as a library call and as a destination."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from db.models import Delivery, DeliveryState, Job, JobState
from dicom_node.stow import stored_already, stow_instances
from kernel.errors import PeerRejected, TransientError
from kernel.settings import StowDestination
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.network import free_port
from tests.support.orthanc import start_orthanc

pytestmark = pytest.mark.integration


def _stored_uids(pacs) -> set[str]:  # type: ignore[no-untyped-def]
    return {pacs.get_json(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"] for i in pacs.instance_ids()}


def test_stow_instances_orthanc_dicomweb_stores_every_file(tmp_path: Path) -> None:
    paths = write_us_study(tmp_path / "study", seed=31, count=3)
    pacs = start_orthanc(tmp_path / "orthanc", dicomweb=True)
    try:
        destination = StowDestination.parse(f"stow+{pacs.dicomweb_root}/")
        assert not stored_already(destination, paths)  # Orthanc's QIDO-RS: not there yet
        stored = stow_instances(destination, paths)
        expected = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths}
        assert set(stored) == expected == _stored_uids(pacs)
        assert stored_already(destination, paths)  # a resend would find them and post nothing
        assert not stored_already(destination, [*paths, *write_us_study(tmp_path / "more", seed=32, count=1)])
    finally:
        pacs.stop()


def test_stow_instances_origin_down_transient_error(tmp_path: Path) -> None:
    paths = write_us_study(tmp_path / "study", seed=32, count=1)
    with pytest.raises(TransientError):
        stow_instances(StowDestination(url=f"http://127.0.0.1:{free_port()}/dicom-web"), paths, timeout=5)


def test_stow_instances_wrong_root_peer_rejected(tmp_path: Path) -> None:
    paths = write_us_study(tmp_path / "study", seed=33, count=1)
    pacs = start_orthanc(tmp_path / "orthanc", dicomweb=True)
    try:
        with pytest.raises(PeerRejected):
            stow_instances(StowDestination(url=f"http://127.0.0.1:{pacs.http_port}/no-such-root"), paths)
        assert pacs.instance_ids() == []
    finally:
        pacs.stop()


def test_deliver_stow_destination_job_delivered_same_uids(tmp_path: Path, tiny_models_dir: Path) -> None:
    pacs = start_orthanc(tmp_path / "orthanc", dicomweb=True)
    try:
        settings = make_settings(tmp_path / "home", tiny_models_dir,
                                 destinations=f"stow+{pacs.dicomweb_root},{pacs.destination}")
        ctx = prepare(settings)
        receive(ctx, write_us_study(tmp_path / "study", seed=34, count=1))
        sweep(ctx, make_celery(settings))
        with ctx.sessions() as session:
            job_id = session.scalars(select(Job.id)).one()
        assert process_job(ctx, job_id) is Outcome.DELIVERED
        with ctx.sessions() as session:
            job = session.get(Job, job_id)
            assert job.state == JobState.DELIVERED
            deliveries = {d.destination: d.state for d in session.scalars(select(Delivery))}
            outputs = set(job.outputs["sop_instance_uids"].values())
        assert deliveries == {f"stow+{pacs.dicomweb_root}": DeliveryState.SENT,
                              pacs.destination: DeliveryState.SENT}
        assert _stored_uids(pacs) == outputs  # both routes stored the same instances once
    finally:
        pacs.stop()


def test_deliver_stow_url_credentials_shown_nowhere(
    tmp_path: Path, tiny_models_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from fastapi.testclient import TestClient

    from db.models import AuditEvent
    from web.app import create_app
    from web.passwords import hash_password

    password = "pw-Sekr3t-77"
    pacs = start_orthanc(tmp_path / "orthanc", dicomweb=True)
    try:
        url = pacs.dicomweb_root.replace("http://", f"http://alice:{password}@")
        settings = make_settings(tmp_path / "home", tiny_models_dir, destinations=f"stow+{url}",
                                 web_users=[f"admin:{hash_password('admin password')}"])
        ctx = prepare(settings)
        receive(ctx, write_us_study(tmp_path / "study", seed=35, count=1))
        sweep(ctx, make_celery(settings))
        with ctx.sessions() as session:
            job_id = session.scalars(select(Job.id)).one()
        with caplog.at_level("DEBUG"):
            assert process_job(ctx, job_id) is Outcome.DELIVERED
        with ctx.sessions() as session:
            rows = [d.destination for d in session.scalars(select(Delivery))]
            audit = [str(e.details) for e in session.scalars(select(AuditEvent))]
        assert rows == [f"stow+{pacs.dicomweb_root.replace('http://', 'http://alice:***@')}"]
        client = TestClient(create_app(settings, ctx.sessions, ctx.spool))
        page = client.get("/deliveries", auth=("admin", "admin password"))
        assert page.status_code == 200 and "alice:***@" in page.text
        shown = [*rows, *audit, caplog.text, page.text, str(settings.redacted())]
        assert not [text for text in shown if password in text]
        assert settings.destination_named(rows[0]).url == url  # a replay still finds the key
    finally:
        pacs.stop()
