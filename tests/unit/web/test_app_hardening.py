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


def _client(home: Path, **settings: object) -> TestClient:
    config = Settings(home=home, web_users=[f"{USER}:{hash_password(PASSWORD)}"],
                      web_session_secret="unit-test-secret", **settings)  # type: ignore[arg-type]
    return TestClient(create_app(config, make_sessionmaker(config.database_url)))


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
