"""`lnm-node serve --http-port`: the node as a real process serves /healthz, /metrics and the
status page; metrics show the worker process's work; the JSON access log carries no PHI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pydicom
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dicom_node.scu import send_instances
from kernel.settings import Destination
from phantom.us_dicom import write_us_study
from tests.support.models import package_model
from tests.support.network import free_port, wait_until
from tests.support.node import start_node
from web.passwords import hash_password

pytestmark = pytest.mark.integration

USER, PASSWORD = "engineer", "a long test password"
PATIENT_NAME = "SYNTHETIC^PHANTOM"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_serve_http_port_serves_metrics_pages_and_logs_without_phi(tmp_path: Path) -> None:
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    http_port = free_port()
    env = {"LNM_MODELS_DIR": str(tmp_path / "models"), "LNM_DEFAULT_MODEL": "tiny-ynet",
           "LNM_WEB_USERS": f"{USER}:{hash_password(PASSWORD)}",
           "LNM_WEB_SESSION_SECRET": "serve-test-secret"}
    node = start_node(tmp_path / "node", "--http-port", str(http_port), "--quiet-seconds", "0", env=env)
    base = f"http://127.0.0.1:{http_port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            def healthy() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, timeout=60, what="/healthz")
            assert client.get("/").status_code == 401
            study = write_us_study(tmp_path / "study", seed=21, count=1)
            send_instances(Destination(ae_title=node.ae_title, host="127.0.0.1", port=node.port),
                           study, "TESTSCU")

            def delivered() -> bool:
                return _samples(client.get("/metrics").text).get(
                    ("lnm_jobs", (("state", "DELIVERED"),)), 0) == 1

            wait_until(delivered, timeout=180, interval=1, what="the job delivered, seen in /metrics")
            samples = _samples(client.get("/metrics").text)
            assert samples[("lnm_received_instances_total", ())] == 1
            assert samples[("lnm_job_latency_seconds_count", ())] == 1
            assert 0 < samples[("lnm_job_latency_seconds_sum", ())] < 180
            assert samples[("lnm_studies", (("state", "READY"),))] == 1
            page = client.get("/studies/1", auth=(USER, PASSWORD))
            assert page.status_code == 200 and PATIENT_NAME in page.text
            assert client.get("/jobs/1/image.png", auth=(USER, PASSWORD)).status_code == 200
            assert client.get("/studies/1", auth=(USER, "wrong")).status_code == 401
    finally:
        assert node.stop() == 0, node.log()[-4000:]

    log = node.log()
    patient_id = str(pydicom.dcmread(study[0], stop_before_pixels=True).PatientID)
    assert patient_id.startswith("SYN")
    assert PATIENT_NAME not in log and patient_id not in log and "PHANTOM" not in log
    access = [json.loads(line) for line in log.splitlines() if '"http request"' in line]
    routes = {(entry["method"], entry["route"], entry["status"]) for entry in access}
    assert {("GET", "/healthz", 200), ("GET", "/metrics", 200), ("GET", "/", 401),
            ("GET", "/studies/{study_id}", 200), ("GET", "/studies/{study_id}", 401)} <= routes
    assert all(entry["logger"] == "web.access" and "time" in entry for entry in access)
    assert {entry["user"] for entry in access if entry["status"] == 200 and
            entry["route"] == "/studies/{study_id}"} == {USER}
    assert '"/studies/1"' not in log  # the route template is logged, not the path
    assert "lnm-node status page: http://127.0.0.1:" in log
