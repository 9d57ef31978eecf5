"""Run the status app with uvicorn in a thread of the node process; stop it cleanly."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from kernel.settings import Settings
from kernel.spool import Spool

log = logging.getLogger(__name__)


@dataclass
class HttpServer:
    """A started uvicorn server, its thread and the port it listens on."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout)
        log.info("http server stopped", extra={"port": self.port})


def start_http_server(
    settings: Settings, sessions: sessionmaker[Session], spool: Spool, *, timeout: float = 30.0
) -> HttpServer:
    """Bind ``settings.http_bind_address:http_port`` (0: a free port) and serve the status app."""
    from web.app import create_app

    if settings.http_port is None:
        raise ValueError("http_port is not set")
    app = create_app(settings, sessions, spool)
    family = socket.AF_INET6 if ":" in settings.http_bind_address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.http_bind_address, settings.http_port))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, log_config=None, access_log=False, server_header=False, lifespan="off",
        timeout_graceful_shutdown=5,
        # X-Forwarded-* are the app's to judge (LNM_WEB_TRUSTED_PROXIES); uvicorn would
        # believe them from any loopback peer
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the HTTP server did not start on port {port}")
        time.sleep(0.05)
    log.info("http server listening", extra={"address": settings.http_bind_address, "port": port})
    return HttpServer(server, thread, settings.http_bind_address, port)
