"""Who is asking: a signed session cookie (the browser) or HTTP Basic (scripts), else 401/login.

Every route but the login page, ``/healthz``, ``/metrics`` and static files depends on
:func:`require_user`. Without credentials a browser page request is redirected to the login
page; anything else is answered 401 with a Basic challenge. Password checks are throttled per
client and per user name (429 with ``Retry-After`` while a key waits; parallel tries wait for
the checks in flight, 503 if those do not end in time).

The signed cookie holds ``NAME|NONCE|FINGERPRINT``: the nonce lets a logout revoke the session
on the server (:class:`~web.sessions.RevokedSessions`), the fingerprint (of the user's password
hash) ends every session of a user whose password changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, TimestampSigner

from web.clients import Networks, client_address
from web.passwords import WebUsers
from web.sessions import RevokedSessions
from web.throttle import LoginThrottle, login_keys

log = logging.getLogger(__name__)

COOKIE = "lnm_session"
#: password checks (scrypt: ~60 ms of CPU and 16 MiB each) that may run at the same time
CONCURRENT_CHECKS = 2
LOGIN_PATH = "/login"


class NotAuthenticated(Exception):
    """Raised by :func:`require_user`; turned into a redirect or a 401 by the app."""


class Throttled(Exception):
    """No password check now: the client or user waits after failures (or ``busy``: the
    checks in flight on its keys did not end in time); come back after ``retry_after``."""

    def __init__(self, retry_after: float, busy: bool = False) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after
        self.busy = busy


@dataclass(frozen=True)
class Authenticator:
    """Checks passwords (throttled) and signs, reads and revokes session cookies."""

    users: WebUsers
    signer: TimestampSigner
    max_age_seconds: int
    revoked: RevokedSessions = field(default_factory=lambda: RevokedSessions(None))
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    checks: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CONCURRENT_CHECKS)
    )

    @classmethod
    def build(
        cls,
        entries: list[str],
        secret: str,
        max_age_seconds: int,
        revoked_path: Path | None = None,
        throttle: LoginThrottle | None = None,
    ) -> Authenticator:
        """From settings; an empty ``secret`` gets a random one (sessions end at a restart)."""
        key = secret or secrets.token_urlsafe(32)
        return cls(
            WebUsers.parse(entries),
            TimestampSigner(key, salt="lnm-web-session"),
            max_age_seconds,
            RevokedSessions.load(revoked_path),
            throttle or LoginThrottle(),
        )

    def _fingerprint(self, name: str) -> str:
        encoded = self.users.hashes.get(name, "")
        return hashlib.sha256(encoded.encode()).hexdigest()[:16]

    def session_cookie(self, name: str) -> str:
        payload = f"{name}|{secrets.token_urlsafe(16)}|{self._fingerprint(name)}"
        return self.signer.sign(payload.encode()).decode()

    def _payload(self, value: str | None) -> tuple[str, str] | None:
        """(user, nonce) of a valid, unexpired, unrevoked cookie whose user and password stand."""
        if not value:
            return None
        try:
            payload = self.signer.unsign(value, max_age=self.max_age_seconds).decode()
        except (BadSignature, UnicodeDecodeError):  # SignatureExpired is a BadSignature too
            return None
        name, nonce, fingerprint = (payload.split("|") + ["", ""])[:3]
        if name not in self.users or not nonce or nonce in self.revoked:
            return None
        if not secrets.compare_digest(fingerprint, self._fingerprint(name)):
            return None
        return name, nonce

    def cookie_user(self, value: str | None) -> str | None:
        """The user a valid cookie names (see :meth:`_payload`)."""
        payload = self._payload(value)
        return payload[0] if payload else None

    def revoke(self, value: str | None) -> None:
        """End the session of cookie ``value`` on the server (a copy of it stops working)."""
        payload = self._payload(value)
        if payload is not None:
            self.revoked.revoke(payload[1], time.time() + self.max_age_seconds)

    def check_password(self, client: str, name: str, password: str) -> bool:
        """The password check, throttled: :class:`Throttled` while the client or user waits.

        Parallel tries are admitted by :meth:`~web.throttle.LoginThrottle.admit` as if the
        checks in flight had failed, so guesses run no faster in parallel, and extra correct
        tries wait for those checks instead of being refused; at most
        :data:`CONCURRENT_CHECKS` scrypt checks run at once, whoever asks. Refusals and wrong
        passwords (the login form's and HTTP Basic's) are logged with the user and ``client``.
        """
        keys = login_keys(client, name)
        refusal = self.throttle.admit(keys)
        if refusal is not None:
            log.warning(
                "login throttled",
                extra={"user": name[:64], "client": client, "busy": refusal.busy},
            )
            raise Throttled(refusal.retry_after, busy=refusal.busy)
        accepted = False
        try:
            with self.checks:
                accepted = self.users.check(name, password)
        finally:
            self.throttle.finished(keys, accepted)
        if not accepted:
            log.warning("login refused", extra={"user": name[:64], "client": client})
        return accepted

    def basic_user(self, header: str | None, client: str = "unknown") -> str | None:
        """The user of a valid ``Authorization: Basic`` header."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, colon, password = decoded.partition(":")
        return name if colon and self.check_password(client, name, password) else None

    def request_user(self, request: Request, trusted: Networks = ()) -> str | None:
        return self.cookie_user(request.cookies.get(COOKIE)) or self.basic_user(
            request.headers.get("authorization"), client_address(request, trusted)
        )


def require_user(request: Request) -> str:
    """FastAPI dependency: the logged-in user's name, or :class:`NotAuthenticated`."""
    authenticator: Authenticator = request.app.state.authenticator
    user = authenticator.request_user(request, request.app.state.trusted_proxies)
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
    return Response(
        "authentication required\n",
        status_code=401,
        media_type="text/plain",
        headers={"WWW-Authenticate": 'Basic realm="lnm-node"'},
    )


def throttled(_request: Request, exc: Exception) -> Response:
    """429 with the seconds to wait (503 when the password checks were busy)."""
    wait = int(getattr(exc, "retry_after", 1)) + 1
    busy = bool(getattr(exc, "busy", False))
    return Response(
        "password checks busy; try again shortly\n"
        if busy
        else "too many failed logins; try again later\n",
        status_code=503 if busy else 429,
        media_type="text/plain",
        headers={"Retry-After": str(wait)},
    )
