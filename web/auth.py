"""Who is asking: a signed session cookie (the browser) or HTTP Basic (scripts), else 401/login.

Every route but the login page, ``/healthz``, ``/metrics`` and static files depends on
:func:`require_user`. Without credentials a browser page request is redirected to the login
page; anything else is answered 401 with a Basic challenge.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, TimestampSigner

from web.passwords import WebUsers

COOKIE = "lnm_session"
LOGIN_PATH = "/login"


class NotAuthenticated(Exception):
    """Raised by :func:`require_user`; turned into a redirect or a 401 by the app."""


@dataclass(frozen=True)
class Authenticator:
    """Checks passwords and signs/reads session cookies."""

    users: WebUsers
    signer: TimestampSigner
    max_age_seconds: int

    @classmethod
    def build(cls, entries: list[str], secret: str, max_age_seconds: int) -> Authenticator:
        """From settings; an empty ``secret`` gets a random one (sessions end at a restart)."""
        key = secret or secrets.token_urlsafe(32)
        return cls(WebUsers.parse(entries), TimestampSigner(key, salt="lnm-web-session"),
                   max_age_seconds)

    def session_cookie(self, name: str) -> str:
        return self.signer.sign(name.encode()).decode()

    def cookie_user(self, value: str | None) -> str | None:
        """The user a valid, unexpired cookie names, while that user still exists."""
        if not value:
            return None
        try:
            name = self.signer.unsign(value, max_age=self.max_age_seconds).decode()
        except BadSignature:  # SignatureExpired is one too
            return None
        return name if name in self.users else None

    def basic_user(self, header: str | None) -> str | None:
        """The user of a valid ``Authorization: Basic`` header."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, colon, password = decoded.partition(":")
        return name if colon and self.users.check(name, password) else None

    def request_user(self, request: Request) -> str | None:
        return self.cookie_user(request.cookies.get(COOKIE)) or self.basic_user(
            request.headers.get("authorization")
        )


def require_user(request: Request) -> str:
    """FastAPI dependency: the logged-in user's name, or :class:`NotAuthenticated`."""
    authenticator: Authenticator = request.app.state.authenticator
    user = authenticator.request_user(request)
    if user is None:
        raise NotAuthenticated()
    request.state.user = user
    return user


def safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def not_authenticated(request: Request, _exc: Exception) -> Response:
    """A browser asking for a page goes to the login page; anything else gets 401."""
    wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    if wants_page:
        target = quote(safe_next(request.url.path), safe="/")
        return RedirectResponse(f"{LOGIN_PATH}?next={target}", status_code=303)
    return Response("authentication required\n", status_code=401, media_type="text/plain",
                    headers={"WWW-Authenticate": 'Basic realm="lnm-node"'})
