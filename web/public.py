"""Routes that answer without credentials: the login form, /healthz and /metrics."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from db import views
from web.auth import COOKIE, Authenticator, Throttled, safe_next
from web.clients import client_address, is_https

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 when the database answers, else 503; no login needed (for load balancers)."""
    try:
        with request.app.state.sessions() as session:
            ok = views.database_ok(session)
    except SQLAlchemyError as exc:
        log.warning("health check: database unavailable", extra={"error": type(exc).__name__})
        ok = False
    return JSONResponse(
        {"status": "ok" if ok else "database unavailable"}, status_code=200 if ok else 503
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text exposition of the node's metrics (read from the database)."""
    return Response(
        generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "login.html", {"next": safe_next(next), "error": None, "user": None}
    )


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    authenticator: Authenticator = request.app.state.authenticator
    trusted = request.app.state.trusted_proxies
    client = client_address(request, trusted)
    try:
        accepted = authenticator.check_password(client, username, password)
    except Throttled as exc:
        busy = "The server is busy checking passwords: try again." if exc.busy else None
        return _login_page(
            request,
            next,
            busy or "Too many failed logins: wait and try again.",
            503 if exc.busy else 429,
            {"Retry-After": str(int(exc.retry_after) + 1)},
        )
    if not accepted:
        return _login_page(request, next, "Wrong user name or password.", 401)
    log.info("login", extra={"user": username, "client": client})
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        authenticator.session_cookie(username),
        max_age=authenticator.max_age_seconds,
        httponly=True,
        samesite="strict",
        secure=is_https(request, trusted),
    )
    return response


def _login_page(
    request: Request, next: str, error: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    return request.app.state.templates.TemplateResponse(
        request,
        "login.html",
        {"next": safe_next(next), "error": error, "user": None},
        status_code=status,
        headers=headers,
    )
