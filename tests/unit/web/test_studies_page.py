"""The studies page over a long history: a page of the newest studies, older ones a link away,
and a search by the start of the Study Instance UID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from db import views
from db.models import Study, StudyState
from db.session import make_sessionmaker
from kernel.settings import Settings
from web.app import create_app
from web.passwords import hash_password

USER, PASSWORD = "radiology", "correct horse battery"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _client(home: Path, studies: int) -> TestClient:
    config = Settings(
        home=home,
        web_users=[f"{USER}:{hash_password(PASSWORD)}"],
        web_session_secret="unit-test-secret",
    )
    sessions = make_sessionmaker(config.database_url)
    with sessions.begin() as session:
        session.add_all(
            Study(
                study_instance_uid=f"1.9.{n}",
                state=StudyState.READY,
                first_received_at=T0 + timedelta(minutes=n),
                last_received_at=T0 + timedelta(minutes=n),
            )
            for n in range(studies)
        )
    client = TestClient(create_app(config, sessions), base_url="https://testserver")
    answer = client.post(
        "/login", data={"username": USER, "password": PASSWORD, "next": "/"}, follow_redirects=False
    )
    assert answer.status_code == 303
    return client


def _listed(html: str) -> list[str]:
    return [
        line.split('title="', 1)[1].split('"', 1)[0]
        for line in html.splitlines()
        if line.startswith('<td title="1.9.')
    ]


def test_studies_page_lists_a_page_then_older_by_link(tmp_path: Path) -> None:
    size = views.STUDY_PAGE_SIZE
    client = _client(tmp_path, size + 5)
    first = client.get("/studies")
    assert first.status_code == 200
    assert _listed(first.text)[:2] == [f"1.9.{size + 4}", f"1.9.{size + 3}"]
    assert len(_listed(first.text)) == size
    assert 'href="/studies?page=2"' in first.text and 'rel="prev"' not in first.text
    second = client.get("/studies?page=2")
    assert _listed(second.text) == [f"1.9.{n}" for n in range(4, -1, -1)]
    assert 'href="/studies?page=1"' in second.text and 'rel="next"' not in second.text


def test_studies_page_uid_search_finds_by_prefix(tmp_path: Path) -> None:
    client = _client(tmp_path, 12)
    page = client.get("/studies", params={"uid": "1.9.1"})
    assert _listed(page.text) == ["1.9.11", "1.9.10", "1.9.1"]
    assert 'value="1.9.1"' in page.text
    assert "no studies yet" in client.get("/studies", params={"uid": "2.25"}).text


def test_studies_page_bad_page_is_422(tmp_path: Path) -> None:
    client = _client(tmp_path, 1)
    assert client.get("/studies?page=0").status_code == 422
    assert client.get("/studies?page=x").status_code == 422
