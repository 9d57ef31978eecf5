"""Security headers on every answer: nothing cached, no framing, no sniffing, our own content only.

Pages carry patient data, so no answer is stored by the browser or a proxy (``no-store``);
images of a study are patient data too. The policy allows only this origin's styles and
images; the pages use no script.
"""

from __future__ import annotations

from starlette.middleware.base import RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    """HTTP middleware: sets :data:`SECURITY_HEADERS` on every answer (overriding a route's
    own ``Cache-Control``)."""
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response
