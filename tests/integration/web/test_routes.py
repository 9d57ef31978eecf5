"""Every route of the status app over a real uvicorn server: login required, /metrics, /healthz."""

from __future__ import annotations

import base64
import re
import shutil
from io import BytesIO

import numpy as np
import pytest
from fastapi.routing import APIRoute
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount

from tests.integration.web.conftest import PASSWORD, QUARANTINE_REASON, USER
from web.app import PUBLIC_PATHS
from web.render import OUTLINE_RGB

pytestmark = pytest.mark.integration


def _flat(routes: list[object]) -> list[object]:
    """The app's routes; routers included without a prefix are opened (FastAPI keeps them whole)."""
    flat: list[object] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat.extend(_flat(included.routes) if included is not None else [route])
    return flat


def _routes(served_node) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(method, concrete path) of every route of the app, path parameters set to 1."""
    found = []
    for route in _flat(served_node.server.server.config.app.routes):
        if isinstance(route, Mount):
            found.append(("GET", route.path + "/style.css"))
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                found.append((method, path))
    return found


def _is_public(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PUBLIC_PATHS)


def test_app_every_private_route_without_credentials_is_refused(served_node) -> None:  # type: ignore[no-untyped-def]
    routes = _routes(served_node)
    private = [(m, p) for m, p in routes if not _is_public(p)]
    assert {("GET", "/"), ("GET", "/studies/1"), ("GET", "/jobs/1/image.png"),
            ("GET", "/jobs/1/heatmap.png"), ("GET", "/errors"), ("POST", "/logout")} <= set(private)
    assert len([r for r in _flat(served_node.server.server.config.app.routes) if isinstance(r, APIRoute)]) >= 14
    with served_node.client() as client:
        for method, path in private:
            plain = client.request(method, path)
            assert plain.status_code == 401, (method, path, plain.status_code)
            assert plain.headers["www-authenticate"].startswith("Basic")
            page = client.request(method, path, headers={"Accept": "text/html"})
            if method == "GET":
                assert page.status_code == 303, (method, path)
                assert page.headers["location"] == f"/login?next={path}"
            else:
                assert page.status_code == 401, (method, path)
    with served_node.client(cookies={"lnm_session": "radiology.AAAA.BBBB"}) as forged_client:
        for method, path in private:
            forged = forged_client.request(method, path)
            assert forged.status_code == 401, (method, path)


def test_app_public_routes_answer_without_credentials(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/metrics").status_code == 200
        assert "Log in" in client.get("/login").text
        assert client.get("/static/style.css").status_code == 200
        assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404


def test_login_wrong_password_answers_401_without_cookie(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.client() as client:
        answer = client.post("/login", data={"username": USER, "password": "wrong"})
        assert answer.status_code == 401 and "Wrong user name or password" in answer.text
        assert "lnm_session" not in answer.cookies
        assert client.get("/").status_code == 401


def test_login_right_password_opens_pages_then_logout_closes(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.client() as client:
        answer = client.post("/login", data={"username": USER, "password": PASSWORD,
                                             "next": "/studies/1"})
        assert answer.status_code == 303 and answer.headers["location"] == "/studies/1"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        overview = client.get("/")
        assert overview.status_code == 200
        assert "Research use only: not a medical device" in overview.text
        assert "tiny-ynet" in overview.text
        assert client.post("/logout").status_code == 303
        client.cookies.clear()
        assert client.get("/").status_code == 401


def test_login_next_other_site_goes_home(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.client() as client:
        answer = client.post("/login", data={"username": USER, "password": PASSWORD,
                                             "next": "//evil.example/"})
        assert answer.headers["location"] == "/"


def test_basic_auth_right_password_answers_page(served_node) -> None:  # type: ignore[no-untyped-def]
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with served_node.client(headers={"Authorization": f"Basic {token}"}) as client:
        assert client.get("/jobs").status_code == 200


def test_pages_show_counts_queue_errors_and_quarantine(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.logged_in() as client:
        overview = client.get("/").text
        assert 'id="queue-depth"' in overview and "broker queue <code>lnm</code>" in overview
        assert "1 delivery problem(s), 1 quarantined" in overview
        errors = client.get("/errors").text
        assert QUARANTINE_REASON in errors and "BADSCANNER" in errors
        assert "RETRY" in errors and "association" in errors.lower()
        deliveries = client.get("/deliveries").text
        assert "DOWN@127.0.0.1" in deliveries
        jobs = client.get("/jobs").text
        assert jobs.count("DELIVERED") >= 1 and "ENCODED" in jobs
        assert "tiny-ynet" in client.get("/models").text
        audit = client.get("/audit").text
        assert "deliver_retry" in audit and "assemble" in audit
        assert client.get("/studies/9999").status_code == 404


def test_models_and_errors_pages_name_a_model_folder_left_out(served_node) -> None:  # type: ignore[no-untyped-def]
    folder = served_node.home / "models" / "half-copied"
    with served_node.logged_in() as client:
        assert "half-copied" not in client.get("/models").text
        folder.mkdir(parents=True)
        try:
            (folder / "spec.json").write_text('{"key": ')
            for page in ("/models", "/errors"):
                text = client.get(page).text
                assert 'id="models-left-out"' in text and str(folder) in text, page
                assert "invalid model spec" in text, page
        finally:
            shutil.rmtree(folder)
        assert str(folder) not in client.get("/errors").text


def test_study_page_shows_report_with_model_probability_call(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.logged_in() as client:
        page = client.get(f"/studies/{served_node.delivered_study_id}").text
    assert "SYNTHETIC^PHANTOM" in page  # the page may show who the patient is
    assert "Research use only: not a medical device" in page
    assert 'class="model">tiny-ynet@0.1.0<' in page
    assert f'class="probability">{100 * served_node.delivered_probability:.1f} %<' in page
    assert re.search(
        r'class="call call-(present|absent)">Metastasis: (present|absent) \(threshold 50\.0 %\)<', page
    )
    assert "<th>Probability of cancer</th>" in page and "Lymph node" in page
    assert re.search(r'class="long-axis">\d+\.\d mm<', page)
    assert re.search(r'class="ratio">\d\.\d\d<', page)
    assert "and the long and short axis where they were measured" in page  # drawn on the image


def test_study_page_shows_each_models_scope_verdict(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.logged_in() as client:
        page = client.get(f"/studies/{served_node.delivered_study_id}").text
    scope = page[page.index('<table id="scope">'):]
    assert "tiny-ynet@0.1.0" in scope and "<code>all</code> (spec)" in scope
    assert "the rule matches every study" in scope


def test_job_image_png_carries_outline_colour(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.logged_in() as client:
        answer = client.get(f"/jobs/{served_node.delivered_job_id}/image.png")
        heat = client.get(f"/jobs/{served_node.delivered_job_id}/heatmap.png")
        assert client.get("/jobs/9999/image.png").status_code == 404
    assert answer.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(BytesIO(answer.content)).convert("RGB"))
    assert (image == np.asarray(OUTLINE_RGB, dtype=np.uint8)).all(axis=-1).sum() > 20
    heatmap = np.asarray(Image.open(BytesIO(heat.content)).convert("RGB"))
    assert heatmap.shape[0] == image.shape[0]


def test_metrics_report_database_values(served_node) -> None:  # type: ignore[no-untyped-def]
    with served_node.client() as client:
        text = client.get("/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("lnm_received_instances_total", ())] == 2
    assert samples[("lnm_studies", (("state", "READY"),))] == 2
    assert samples[("lnm_jobs", (("state", "DELIVERED"),))] == 1
    assert samples[("lnm_jobs", (("state", "ENCODED"),))] == 1
    assert samples[("lnm_deliveries", (("state", "RETRY"),))] == 1
    assert samples[("lnm_delivery_failures_total", ())] == 1
    assert samples[("lnm_job_latency_seconds_count", ())] == 1
    assert samples[("lnm_job_latency_seconds_bucket", (("le", "+Inf"),))] == 1
    assert samples[("lnm_queue_depth", (("state", "QUEUED"),))] == 0
    assert samples[("lnm_quarantined_instances", ())] == 1
    assert samples[("lnm_gpu_memory_used_bytes", (("device", "none"),))] == 0
    assert ("lnm_broker_queue_length", (("queue", "lnm"),)) in samples
    assert "SYNTHETIC" not in text and "SYN00" not in text


def test_real_server_forwarded_headers_from_untrusted_peer_ignored_logout_revokes_copy(served_node) -> None:  # type: ignore[no-untyped-def]
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with served_node.client() as client:
        answer = client.post("/login", data={"username": USER, "password": PASSWORD},
                             headers=forwarded)
        assert answer.status_code == 303
        assert "secure" not in answer.headers["set-cookie"].lower()  # no trusted proxy: plain http
        copied = client.cookies.get("lnm_session")
        page = client.get("/")
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert client.post("/logout").status_code == 303
    with served_node.client(cookies={"lnm_session": copied}) as thief:
        assert thief.get("/").status_code == 401
