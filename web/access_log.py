"""One JSON access-log line per HTTP request, without anything a path or query could carry.

The line names the matched route template (``/studies/{study_id}``), never the raw path or
query string, so no identifier that a URL might hold reaches the log, and the client's
address as :func:`web.clients.client_address` judges it (``X-Forwarded-For`` only from a
trusted proxy). uvicorn's own access log is turned off (see :mod:`web.server`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.clients import Networks, client_address

log = logging.getLogger("web.access")


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "(unmatched)"


class AccessLogMiddleware:
    """ASGI middleware: logs method, route template, status, duration, user and client."""

    def __init__(self, app: ASGIApp, trusted: Networks = ()) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state") or {}
            log.info(
                "http request",
                extra={
                    "method": scope.get("method"),
                    "route": _route_template(scope),
                    "status": status["code"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "user": state.get("user") if isinstance(state, dict) else None,
                    "client": client_address(Request(scope), self.trusted),
                },
            )
