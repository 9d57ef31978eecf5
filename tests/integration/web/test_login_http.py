"""Logins over a real uvicorn server on a free loopback port: parallel tries and their logs.

Each test gets its own server (a fresh throttle) over an empty SQLite node home. Failed keys
wait 600 s, so no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from db.session import make_sessionmaker
from kernel.settings import Settings
from kernel.spool import Spool
from web.passwords import hash_password
from web.server import HttpServer, start_http_server

pytestmark = pytest.mark.integration

USER, PASSWORD = "engineer", "a long test password"
PARALLEL = 16


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HttpServer]:
    settings = Settings(
        home=tmp_path,
        http_port=0,
        web_users=[f"{USER}:{hash_password(PASSWORD)}"],
        web_session_secret="integration-test-secret",
        web_login_backoff_seconds=600,
        web_login_max_backoff_seconds=600,
    )
    started = start_http_server(
        settings, make_sessionmaker(settings.database_url), Spool.under(tmp_path)
    )
    try:
        yield started
    finally:
        started.stop()


def _in_parallel(url: str, count: int, request: Callable[[httpx.Client, int], int]) -> Counter[int]:
    """``request(client, i)`` on ``count`` connections released together; statuses counted."""
    statuses, lock, start = Counter[int](), threading.Lock(), threading.Barrier(count)

    def run(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            start.wait()
            status = request(client, index)
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_login_parallel_right_credentials_basic_and_form_all_pass(server: HttpServer) -> None:
    def monitor_or_browser(client: httpx.Client, index: int) -> int:
        if index % 2:
            return client.get("/studies", auth=(USER, PASSWORD)).status_code
        form = {"username": USER, "password": PASSWORD, "next": "/"}
        return client.post("/login", data=form).status_code

    statuses = _in_parallel(server.url, PARALLEL, monitor_or_browser)
    assert statuses == {200: PARALLEL // 2, 303: PARALLEL // 2}


def test_login_parallel_wrong_passwords_check_four_then_429(server: HttpServer) -> None:
    def guess(client: httpx.Client, index: int) -> int:
        return client.get("/studies", auth=(USER, f"guess {index}")).status_code

    statuses = _in_parallel(server.url, PARALLEL, guess)
    assert statuses == {401: 4, 429: PARALLEL - 4}  # as many checks as four tries in turn
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.get("/studies", auth=(USER, PASSWORD))
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 300
