"""/healthz latency while clients flood the login with wrong passwords (issue 13, finding 6).

Starts the status app on a real uvicorn server on a free loopback port (SQLite home in a
temporary folder), measures /healthz idle, then while ``--clients`` threads post wrong
passwords for ``--seconds``; prints the median and 95th percentile of each, and how many bad
logins were answered 401 (a password check ran) and 429 (throttled: none ran).

    python benchmarks/login_flood.py --clients 24 --seconds 10
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.session import make_sessionmaker
from kernel.settings import Settings
from kernel.spool import Spool
from web.passwords import hash_password
from web.server import start_http_server


def _health_latencies(url: str, seconds: float) -> list[float]:
    times = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.get("/healthz")
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
    return times


def _flood(url: str, stop: threading.Event, answers: Counter[int], lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            status = client.post("/login", data={"username": "admin", "password": "wrong"}).status_code
            with lock:
                answers[status] += 1


def _flood_for(url: str, clients: int, seconds: float) -> Counter[int]:
    """``clients`` threads posting wrong passwords for ``seconds``; the answers by status."""
    stop, answers, lock = threading.Event(), Counter[int](), threading.Lock()
    threads = [threading.Thread(target=_flood, args=(url, stop, answers, lock)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return answers


def _summary(name: str, times: list[float]) -> str:
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return f"{name}: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms ({len(times)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), http_port=0,
                            web_users=[f"admin:{hash_password('the right password')}"])
        sessions = make_sessionmaker(settings.database_url)
        server = start_http_server(settings, sessions, Spool.under(settings.home))
        try:
            idle = _health_latencies(server.url, args.seconds / 2)
            with multiprocessing.get_context("spawn").Pool(1) as pool:  # not our GIL
                flood = pool.apply_async(_flood_for, (server.url, args.clients, args.seconds + 1))
                time.sleep(0.5)
                loaded = _health_latencies(server.url, args.seconds)
                answers = flood.get()
        finally:
            server.stop()
    print(_summary("/healthz idle", idle))
    print(_summary(f"/healthz with {args.clients} clients posting wrong passwords", loaded))
    print(f"bad logins: {answers[401]} checked (401), {answers[429]} throttled (429)")


if __name__ == "__main__":
    main()
