"""A node home with real results (tiny model, phantom studies through SCP, sweeper and stages),
served by the status app on a real uvicorn server on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from db.models import Job, Study
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.process import process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.models import package_model
from tests.support.network import free_port
from web.passwords import hash_password
from web.server import HttpServer, start_http_server

USER, PASSWORD = "radiology", "correct horse battery"
QUARANTINE_REASON = "header does not parse (test record)"


@dataclass
class ServedNode:
    url: str
    server: HttpServer
    delivered_job_id: int
    delivered_study_id: int
    delivered_probability: float
    retry_job_id: int
    home: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    @contextmanager
    def logged_in(self) -> Iterator[httpx.Client]:
        with self.client() as client:
            answer = client.post("/login", data={"username": USER, "password": PASSWORD, "next": "/"})
            assert answer.status_code == 303, answer.text
            yield client


def _process_only_new_job(ctx, seen: set[int]) -> int:  # type: ignore[no-untyped-def]
    sweep(ctx, make_celery(ctx.settings))
    with ctx.sessions() as session:
        (job_id,) = [j for j in session.scalars(select(Job.id)) if j not in seen]
    process_job(ctx, job_id)
    return job_id


@pytest.fixture(scope="module")
def served_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    root = tmp_path_factory.mktemp("web-node")
    package_model(root / "models" / "tiny-ynet", seed=0)
    web = {"http_port": 0, "web_users": [f"{USER}:{hash_password(PASSWORD)}"],
           "web_session_secret": "integration-test-secret"}
    settings = make_settings(root / "home", root / "models", **web)
    ctx = prepare(settings)
    receive(ctx, write_us_study(root / "study-a", seed=5, count=1))
    delivered = _process_only_new_job(ctx, set())
    # a second study whose PACS is down: its delivery waits for a retry, with the reason
    down = make_settings(root / "home", root / "models", destinations=[f"DOWN@127.0.0.1:{free_port()}"], **web)
    ctx_down = prepare(down)
    receive(ctx_down, write_us_study(root / "study-b", seed=6, count=1))
    retry = _process_only_new_job(ctx_down, {delivered})
    ctx.spool.quarantine(b"not a dicom file", QUARANTINE_REASON,
                         {"calling_ae_title": "BADSCANNER", "status": "0xC210"})
    with ctx.sessions() as session:
        job = session.get(Job, delivered)
        study_id = session.scalar(select(Study.id).where(Study.id == job.study_id))
        probability = float(job.probability)
    server = start_http_server(settings, ctx.sessions, ctx.spool)
    try:
        yield ServedNode(server.url, server, delivered, int(study_id), probability, retry, root / "home")
    finally:
        server.stop()
