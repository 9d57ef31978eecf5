"""The status web app factory: settings and a sessionmaker in, a FastAPI app out (no globals)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from kernel.settings import Settings
from kernel.spool import Spool
from web import pages, public, study
from web.access_log import AccessLogMiddleware
from web.auth import Authenticator, NotAuthenticated, Throttled, not_authenticated, throttled
from web.clients import trusted_networks
from web.formatting import register_filters
from web.headers import security_headers
from web.metrics import make_registry
from web.throttle import LoginThrottle

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: routes that answer without credentials; every other route needs a logged-in user
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/metrics", "/static"})
#: the nonces of sessions ended by a logout (under the node's home, mode 0600)
REVOKED_SESSIONS_FILE = "web-sessions-revoked.json"


def create_app(
    settings: Settings, sessions: sessionmaker[Session], spool: Spool | None = None
) -> FastAPI:
    """The status page, /metrics and /healthz for the node described by ``settings``."""
    app = FastAPI(title="lnm-node status", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")
    register_filters(templates.env)
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.spool = spool or Spool.under(settings.home)
    app.state.templates = templates
    app.state.authenticator = Authenticator.build(
        settings.web_users,
        settings.web_session_secret,
        settings.web_session_seconds,
        revoked_path=settings.home / REVOKED_SESSIONS_FILE,
        throttle=LoginThrottle(
            settings.web_login_backoff_seconds,
            settings.web_login_max_backoff_seconds,
            known_seconds=settings.web_session_seconds,
        ),
    )
    app.state.trusted_proxies = trusted_networks(settings.web_trusted_proxies)
    app.state.metrics_registry = make_registry(settings, sessions, app.state.spool)
    if not settings.web_users:
        log.warning("no web users: nobody can log in to the status page (lnm-node web-user NAME)")
    app.add_exception_handler(NotAuthenticated, not_authenticated)
    app.add_exception_handler(Throttled, throttled)
    app.middleware("http")(security_headers)
    app.add_middleware(AccessLogMiddleware, trusted=app.state.trusted_proxies)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(public.router)
    app.include_router(pages.router)
    app.include_router(study.router)
    return app
