"""The access-log line and the login lines name the client: the peer, or behind a trusted
proxy the address it forwards (a forwarded address from anyone else is ignored)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from db.session import make_sessionmaker
from kernel.settings import Settings
from web.app import create_app
from web.passwords import hash_password

USER, PASSWORD = "radiology", "correct horse battery"
ENTRY = f"{USER}:{hash_password(PASSWORD)}"
FORWARDED = {"x-forwarded-for": "198.51.100.7"}


def _client(home: Path, peer: str, trusted: list[str]) -> TestClient:
    """The app as ``peer`` sees it; a throttled key waits 600 s (longer than any test)."""
    config = Settings(
        home=home, web_users=[ENTRY], web_trusted_proxies=trusted, web_login_backoff_seconds=600
    )
    app = create_app(config, make_sessionmaker(config.database_url))
    return TestClient(app, client=(peer, 50000))


def _clients(caplog: pytest.LogCaptureFixture, event: str) -> list[object]:
    return [getattr(r, "client", None) for r in caplog.records if r.getMessage() == event]


@pytest.mark.parametrize(
    ("peer", "trusted", "expected"),
    [
        ("192.0.2.9", [], "192.0.2.9"),  # direct: the peer; its X-Forwarded-For is ignored
        ("192.0.2.9", ["10.0.0.0/24"], "192.0.2.9"),  # not the trusted proxy: ignored too
        ("10.0.0.5", ["10.0.0.0/24"], "198.51.100.7"),  # the trusted proxy: what it forwards
    ],
)
def test_access_log_and_login_lines_name_the_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, peer: str, trusted: list[str], expected: str
) -> None:
    client = _client(tmp_path, peer, trusted)
    caplog.set_level(logging.INFO)
    assert client.get("/healthz", headers=FORWARDED).status_code == 200
    assert client.get("/studies", auth=(USER, "wrong"), headers=FORWARDED).status_code == 401
    form = {"username": USER, "password": PASSWORD, "next": "/"}
    answer = client.post("/login", data=form, headers=FORWARDED, follow_redirects=False)
    assert answer.status_code == 303
    assert _clients(caplog, "http request") == [expected] * 3
    assert _clients(caplog, "login refused") == [expected]
    assert _clients(caplog, "login") == [expected]


def test_throttled_login_line_names_the_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(tmp_path, "192.0.2.9", [])
    caplog.set_level(logging.INFO)
    for _ in range(4):
        assert client.get("/studies", auth=(USER, "wrong")).status_code == 401
    assert client.get("/studies", auth=(USER, PASSWORD)).status_code == 429
    assert _clients(caplog, "login refused") == ["192.0.2.9"] * 4
    assert _clients(caplog, "login throttled") == ["192.0.2.9"]
