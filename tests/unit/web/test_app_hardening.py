"""The status app against a hostile or curious client: headers, bounded ids, throttling, sessions.

Each test builds the real app (FastAPI TestClient) over a SQLite node home.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.main import app
from db.models import Job, JobState, Study, StudyState
from db.session import make_sessionmaker
from kernel.settings import Settings
from web.app import create_app
from web.passwords import hash_password

USER, PASSWORD = "radiology", "correct horse battery"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


ENTRY = f"{USER}:{hash_password(PASSWORD)}"


def _client(home: Path, entry: str = ENTRY, peer: str = "127.0.0.1", **settings: object) -> TestClient:
    home.mkdir(parents=True, exist_ok=True)
    config = Settings(home=home, web_users=[entry],
                      web_session_secret="unit-test-secret", **settings)  # type: ignore[arg-type]
    return TestClient(create_app(config, make_sessionmaker(config.database_url)),
                      client=(peer, 50000))


def _login(client: TestClient, password: str = PASSWORD, user: str = USER) -> int:
    answer = client.post("/login", data={"username": user, "password": password, "next": "/"},
                         follow_redirects=False)
    return answer.status_code


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return _client(tmp_path)


def test_pages_answer_no_store_csp_frame_and_nosniff_headers(client: TestClient) -> None:
    assert _login(client) == 303
    for path in ("/", "/studies", "/errors", "/login", "/metrics", "/healthz"):
        headers = client.get(path).headers
        assert headers["cache-control"] == "no-store", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "default-src 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path


@pytest.mark.parametrize("path", ["/studies/99999999999999999999999999",
                                  "/jobs/99999999999999999999999999/image.png",
                                  "/jobs/-1/heatmap.png", "/studies/0"])
def test_oversized_or_negative_id_answers_4xx_not_500(client: TestClient, path: str) -> None:
    assert _login(client) == 303
    answer = client.get(path)
    assert 400 <= answer.status_code < 500, (path, answer.status_code)


def test_overview_failed_job_count_is_not_capped_at_a_list_length(tmp_path: Path) -> None:
    client = _client(tmp_path)
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions.begin() as session:
        study = Study(study_instance_uid="1.2.3", state=StudyState.READY,
                      first_received_at=T0, last_received_at=T0)
        session.add(study)
        session.flush()
        session.add_all(Job(study_id=study.id, model_key="m", model_version="1", generation=n,
                            state=JobState.FAILED, reason="bug", created_at=T0, updated_at=T0)
                        for n in range(130))
    assert _login(client) == 303
    assert "130 failed job(s)" in client.get("/").text
    status = CliRunner().invoke(app, ["status", "--json", "--home", str(tmp_path)])
    assert json.loads(status.stdout)["counts"]["jobs"] == {"FAILED": 130}


def test_login_failures_back_off_per_client_then_even_the_right_password_waits(tmp_path: Path) -> None:
    client = _client(tmp_path, web_login_backoff_seconds=60)
    assert [_login(client, "wrong") for _ in range(4)] == [401, 401, 401, 401]
    answer = client.post("/login", data={"username": USER, "password": PASSWORD},
                         follow_redirects=False)
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 60
    basic = client.get("/studies", auth=(USER, PASSWORD))
    assert basic.status_code == 429 and "retry-after" in basic.headers


def test_login_failures_back_off_per_user_from_any_client(tmp_path: Path) -> None:
    first = _client(tmp_path, web_login_backoff_seconds=60)
    assert [_login(first, "wrong") for _ in range(4)] == [401] * 4
    other = TestClient(first.app, client=("10.9.8.7", 40000))
    assert _login(other) == 429  # the user waits, wherever the next try comes from
    assert _login(other, user="someone-else") == 401  # others do not


def test_logout_ends_the_session_a_copied_cookie_is_refused_after_restart_too(tmp_path: Path) -> None:
    client = _client(tmp_path)
    assert _login(client) == 303
    copied = client.cookies.get("lnm_session")
    assert client.get("/studies").status_code == 200
    assert client.post("/logout", follow_redirects=False).status_code == 303
    thief = _client(tmp_path)
    thief.cookies.set("lnm_session", copied)
    assert thief.get("/studies").status_code == 401
    assert (tmp_path / "web-sessions-revoked.json").stat().st_mode & 0o777 == 0o600


def test_password_change_ends_existing_sessions(tmp_path: Path) -> None:
    client = _client(tmp_path)
    assert _login(client) == 303
    copied = client.cookies.get("lnm_session")
    same = _client(tmp_path)
    same.cookies.set("lnm_session", copied)
    assert same.get("/studies").status_code == 200  # a restart alone keeps the session
    changed = _client(tmp_path, entry=f"{USER}:{hash_password('a brand new password')}")
    changed.cookies.set("lnm_session", copied)
    assert changed.get("/studies").status_code == 401


def test_cookie_secure_behind_trusted_proxy_only(tmp_path: Path) -> None:
    https = {"x-forwarded-proto": "https"}
    behind = _client(tmp_path / "a", peer="10.0.0.5", web_trusted_proxies=["10.0.0.0/24"])
    answer = behind.post("/login", data={"username": USER, "password": PASSWORD},
                         headers=https, follow_redirects=False)
    assert "secure" in answer.headers["set-cookie"].lower()
    direct = _client(tmp_path / "b", peer="192.0.2.9", web_trusted_proxies=["10.0.0.0/24"])
    answer = direct.post("/login", data={"username": USER, "password": PASSWORD},
                         headers=https, follow_redirects=False)
    assert "secure" not in answer.headers["set-cookie"].lower()
