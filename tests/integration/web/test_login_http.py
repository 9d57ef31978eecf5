"""Logins over a real uvicorn server on a free loopback port: parallel tries and their logs.

Each test gets its own server (a fresh throttle) over an empty SQLite node home. Failed keys
wait 600 s, so no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import logging
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


def _start(home: Path, trusted: list[str]) -> HttpServer:
    settings = Settings(
        home=home,
        http_port=0,
        web_users=[f"{USER}:{hash_password(PASSWORD)}"],
        web_session_secret="integration-test-secret",
        web_login_backoff_seconds=600,
        web_login_max_backoff_seconds=600,
        web_trusted_proxies=trusted,
    )
    return start_http_server(settings, make_sessionmaker(settings.database_url), Spool.under(home))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HttpServer]:
    started = _start(tmp_path, [])
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


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [([], "127.0.0.1"), (["127.0.0.0/8"], "203.0.113.9")],
    ids=["direct-forwarded-for-ignored", "behind-trusted-proxy"],
)
def test_login_refused_and_access_lines_name_the_client_over_http(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, trusted: list[str], expected: str
) -> None:
    caplog.set_level(logging.INFO)
    server = _start(tmp_path, trusted)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            forwarded = {"X-Forwarded-For": "203.0.113.9"}
            answer = client.get("/studies", auth=(USER, "wrong"), headers=forwarded)
    finally:
        server.stop()
    assert answer.status_code == 401
    lines = {r.getMessage(): r for r in caplog.records if r.name.startswith("web.")}
    assert getattr(lines["login refused"], "client", None) == expected
    assert getattr(lines["http request"], "client", None) == expected
    assert getattr(lines["http request"], "status", None) == 401


def test_login_user_kept_waiting_by_one_client_still_works_from_a_known_one_over_http(
    tmp_path: Path,
) -> None:
    server = _start(tmp_path, ["127.0.0.0/8"])  # loopback is the proxy; it names the clients
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:

            def status(address: str, password: str) -> int:
                forwarded = {"X-Forwarded-For": address}
                return client.get("/studies", auth=(USER, password), headers=forwarded).status_code

            assert status("10.0.0.2", PASSWORD) == 200  # the monitor
            assert [status("203.0.113.9", "guess") for _ in range(4)] == [401] * 4
            assert status("203.0.113.9", PASSWORD) == 429  # the guesser waits
            assert status("198.51.100.1", PASSWORD) == 429  # and so does the user elsewhere
            assert status("10.0.0.2", PASSWORD) == 200  # but the monitor keeps working
    finally:
        server.stop()
