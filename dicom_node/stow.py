"""STOW-RS (PS3.18 10.5): store Part 10 files at a DICOMweb origin in one multipart request.

Policy travels in exceptions as for C-STORE: no connection, a timeout, a 5xx/408/429 answer,
an instance failed for a reason that may pass (0xA7xx, 0x0110) or one the answer does not list
as stored raises :class:`~kernel.errors.TransientError`; a redirect, a TLS failure, an answer
that cannot be read, a 4xx or instances all refused for good raise
:class:`~kernel.errors.PeerRejected` with the DICOM failure reason (0008,1197) given, or 0xC000.
Proxy settings of the environment are not used: results go where the destination says.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import requests

from dicom_node.statuses import is_permanent_failure
from kernel.errors import PeerRejected, TransientError
from kernel.settings import Settings, StowDestination, redact_url

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


@dataclass(frozen=True)
class StowTls:
    """How an ``https`` origin is checked and what the node presents to it: the CA bundle
    (``settings.tls_ca_certificates``; None: the system's) and the client certificate and key
    (``settings.tls_certificate`` / ``tls_private_key``), as for DICOM TLS destinations."""

    ca_certificates: Path | None = None
    certificate: tuple[Path, Path] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StowTls:
        """The node's TLS files, as :func:`dicom_node.tls.client_context` reads them."""
        key = settings.tls_private_key
        client = (settings.tls_certificate, key) if settings.tls_certificate and key else None
        return cls(settings.tls_ca_certificates, client)

    def verify(self) -> str | bool:
        return str(self.ca_certificates) if self.ca_certificates is not None else True

    def cert(self) -> tuple[str, str] | None:
        return (str(self.certificate[0]), str(self.certificate[1])) if self.certificate else None


def _failures(body: dict[str, Any]) -> list[tuple[int, str]]:
    """(failure reason, SOP Instance UID) of every failed instance of a STOW answer."""
    failures = []
    for item in _values(body, _FAILED_SOP_SEQUENCE):
        reasons = _values(item, _FAILURE_REASON)
        uids = _values(item, _REFERENCED_SOP_INSTANCE_UID)
        failures.append((int(reasons[0]) if reasons else _CANNOT_UNDERSTAND, str(uids[0]) if uids else "?"))
    return failures


def _stored(body: dict[str, Any]) -> list[str]:
    return [str(_values(item, _REFERENCED_SOP_INSTANCE_UID)[0])
            for item in _values(body, _REFERENCED_SOP_SEQUENCE)
            if _values(item, _REFERENCED_SOP_INSTANCE_UID)]


def _sop_instance_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)


def _post(destination: StowDestination, paths: list[Path], timeout: float, tls: StowTls) -> requests.Response:
    body, content_type = multipart_related(paths)
    with requests.Session() as session:
        session.trust_env = False  # no proxy, no .netrc from the environment: the URL says it all
        try:
            return session.post(
                f"{destination.url}/studies",
                data=body,
                headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
                timeout=timeout,
                allow_redirects=False,  # a redirected POST becomes a GET: nothing would be stored
                verify=tls.verify(),
                cert=tls.cert(),
            )
        except requests.exceptions.SSLError as exc:
            raise PeerRejected(
                f"STOW-RS to {destination}: TLS failed (a certificate not trusted by "
                "LNM_TLS_CA_CERTIFICATES or the system, or a server that does not speak TLS)",
                _CANNOT_UNDERSTAND,
            ) from exc
        except requests.RequestException as exc:
            raise TransientError(f"STOW-RS to {destination} failed: {type(exc).__name__}") from exc


def stow_instances(
    destination: StowDestination, paths: list[Path], timeout: float = 30, tls: StowTls | None = None
) -> list[str]:
    """POST ``paths`` to ``{url}/studies``; returns the SOP Instance UIDs the origin stored.

    Delivered means the origin answered 200 or 202 and listed no failure, and, when it lists
    what it stored, every file sent is there. A redirect (3xx), a TLS failure and an answer
    that cannot be read are refused; a 202 that does not list what it stored is retried.
    """
    reply = _post(destination, paths, timeout, tls or StowTls())
    code = reply.status_code
    if code >= 500 or code in _RETRY_HTTP:
        raise TransientError(f"STOW-RS to {destination}: HTTP {code}")
    if 300 <= code < 400:
        where = redact_url(reply.headers.get("Location", "?"))
        raise PeerRejected(
            f"{destination} answered HTTP {code}, a redirect to {where}: results are not posted "
            "on; set the destination to the origin's own URL", _CANNOT_UNDERSTAND)
    try:
        answer = reply.json() if reply.content else {}
        answer = answer if isinstance(answer, dict) else {}
        failures, stored = _failures(answer), _stored(answer)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise PeerRejected(
            f"{destination} answered HTTP {code} with a Store Instances Response that cannot be "
            f"read ({type(exc).__name__})", _CANNOT_UNDERSTAND) from exc
    if failures:
        listed = ", ".join(f"{uid} (0x{reason:04X})" for reason, uid in failures[:3])
        why = f"{destination} refused {len(failures)} of {len(paths)} instances: {listed}"
        if all(is_permanent_failure(reason) for reason, _ in failures):
            raise PeerRejected(why, failures[0][0])
        raise TransientError(why)  # some may store on a later try
    if code >= 400:
        raise PeerRejected(f"{destination} answered HTTP {code}", _CANNOT_UNDERSTAND)
    if code != 200 and not stored:
        raise TransientError(f"{destination} answered HTTP {code} (some instances not stored, "
                             "or stored with warnings) without listing what it stored")
    if stored or code != 200:
        listed = set(stored)
        missing = [p.name for p in paths if _sop_instance_uid(p) not in listed]
        if missing:
            raise TransientError(f"{destination} stored {len(paths) - len(missing)} of "
                                 f"{len(paths)} instances; not listed: {', '.join(missing)}")
    else:
        logger.warning("STOW-RS answer lists nothing stored; taken as stored",
                       extra={"destination": str(destination), "instances": len(paths)})
    logger.info("stored with STOW-RS", extra={"destination": str(destination), "instances": len(stored)})
    return stored
