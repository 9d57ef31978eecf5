"""STOW-RS (PS3.18 10.5): store Part 10 files at a DICOMweb origin in one multipart request.

Policy travels in exceptions as for C-STORE: no connection, a timeout or a 5xx/408/429 answer
raises :class:`~kernel.errors.TransientError`; any other failure, or an instance the origin
lists as failed, raises :class:`~kernel.errors.PeerRejected` with the DICOM failure reason
(0008,1197) it gave, or 0xC000 when it gave none.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import requests

from kernel.errors import PeerRejected, TransientError
from kernel.settings import StowDestination

logger = logging.getLogger(__name__)

_RETRY_HTTP = frozenset({408, 429})
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_FAILURE_REASON = "00081197"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_CANNOT_UNDERSTAND = 0xC000


def multipart_related(paths: list[Path]) -> tuple[bytes, str]:
    """The request body (``multipart/related; type="application/dicom"``) and its content type."""
    boundary = f"lnm-{uuid.uuid4().hex}"
    parts = []
    for path in paths:
        parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        parts.append(path.read_bytes())
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f'multipart/related; type="application/dicom"; boundary={boundary}'


def _values(item: dict[str, Any], tag: str) -> list[Any]:
    return list((item.get(tag) or {}).get("Value") or [])


def _failure_status(body: dict[str, Any]) -> tuple[int, str] | None:
    """(failure reason, SOP Instance UID) of the first failed instance in a STOW answer."""
    for item in _values(body, _FAILED_SOP_SEQUENCE):
        reasons = _values(item, _FAILURE_REASON)
        uids = _values(item, _REFERENCED_SOP_INSTANCE_UID)
        return (int(reasons[0]) if reasons else _CANNOT_UNDERSTAND), (uids[0] if uids else "?")
    return None


def stow_instances(destination: StowDestination, paths: list[Path], timeout: float = 30) -> list[str]:
    """POST ``paths`` to ``{url}/studies``; returns the SOP Instance UIDs the origin stored."""
    body, content_type = multipart_related(paths)
    try:
        reply = requests.post(
            f"{destination.url}/studies",
            data=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise TransientError(f"STOW-RS to {destination} failed: {type(exc).__name__}") from exc
    if reply.status_code >= 500 or reply.status_code in _RETRY_HTTP:
        raise TransientError(f"STOW-RS to {destination}: HTTP {reply.status_code}")
    try:
        answer = reply.json() if reply.content else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    failure = _failure_status(answer)
    if failure is not None:
        status, uid = failure
        raise PeerRejected(f"{destination} refused {uid} (HTTP {reply.status_code})", status)
    if reply.status_code >= 400:
        raise PeerRejected(f"{destination} answered HTTP {reply.status_code}", _CANNOT_UNDERSTAND)
    stored = [str(_values(item, _REFERENCED_SOP_INSTANCE_UID)[0])
              for item in _values(answer, _REFERENCED_SOP_SEQUENCE)
              if _values(item, _REFERENCED_SOP_INSTANCE_UID)]
    logger.info("stored with STOW-RS", extra={"destination": str(destination), "instances": len(stored)})
    return stored
