"""STOW-RS (PS3.18 10.5): store Part 10 files at a DICOMweb origin in one multipart request.

Policy travels in exceptions as for C-STORE: no connection, a timeout, a 5xx/408/429 answer,
an instance failed for a reason that may pass (0xA7xx, 0x0110) or one the answer does not list
as stored raises :class:`~kernel.errors.TransientError` (carrying the origin's ``Retry-After``);
a redirect, a TLS failure, an answer that cannot be read, a 4xx or instances all refused for
good raise :class:`~kernel.errors.PeerRejected` with the DICOM failure reason (0008,1197)
given, or 0xC000. An HTTP error names the start of the origin's answer, as a C-STORE failure
names the peer's Error Comment. The answer must arrive within the timeout once it starts (an
origin that trickles it does not hold the worker), and a resend first asks the origin (QIDO-RS)
whether an earlier upload stored everything after all. Proxy settings of the environment are
not used: results go where the destination says.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pydicom
import requests
import urllib3

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
#: a Store Instances Response is small; an origin answering more is broken
MAX_ANSWER_BYTES = 16 * 2**20


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
        failures.append(
            (int(reasons[0]) if reasons else _CANNOT_UNDERSTAND, str(uids[0]) if uids else "?")
        )
    return failures


def _stored(body: dict[str, Any]) -> list[str]:
    return [
        str(_values(item, _REFERENCED_SOP_INSTANCE_UID)[0])
        for item in _values(body, _REFERENCED_SOP_SEQUENCE)
        if _values(item, _REFERENCED_SOP_INSTANCE_UID)
    ]


def _sop_instance_uid(path: Path) -> str:
    return str(
        pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]
        ).SOPInstanceUID
    )


@dataclass(frozen=True)
class _Answer:
    """An origin's answer, read whole: status, headers and body."""

    status: int
    headers: Mapping[str, str]
    content: bytes


def _read_body(reply: requests.Response, timeout: float, what: str) -> bytes:
    """The body of a streamed ``reply``, read within ``timeout`` seconds of its headers: each
    read returns what has arrived, so an origin that trickles its answer is cut off."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while chunk := reply.raw.read1(65536, decode_content=True):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise PeerRejected(
                f"{what} answered more than {MAX_ANSWER_BYTES} bytes", _CANNOT_UNDERSTAND
            )
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TransientError(f"{what}: the answer did not arrive within {timeout:g} s")
    return b"".join(chunks)


def _exchange(
    method: str, url: str, what: str, timeout: float, tls: StowTls, **kwargs: Any
) -> _Answer:
    """One HTTP request to the origin and its whole answer; network trouble is
    :class:`TransientError`, a TLS failure :class:`PeerRejected`."""
    with requests.Session() as session:
        session.trust_env = False  # no proxy, no .netrc from the environment: the URL says it all
        try:
            reply = session.request(
                method,
                url,
                timeout=timeout,
                stream=True,
                allow_redirects=False,  # a redirected POST becomes a GET: nothing would be stored
                verify=tls.verify(),
                cert=tls.cert(),
                **kwargs,
            )
            with reply:
                return _Answer(reply.status_code, reply.headers, _read_body(reply, timeout, what))
        except requests.exceptions.SSLError as exc:
            raise PeerRejected(
                f"{what}: TLS failed (a certificate not trusted by "
                "LNM_TLS_CA_CERTIFICATES or the system, or a server that does not speak TLS)",
                _CANNOT_UNDERSTAND,
            ) from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientError(f"{what} failed: {type(exc).__name__}") from exc


def excerpt(content: bytes, limit: int = 200) -> str:
    """The start of an answer body as one line of text (at most ``limit`` characters)."""
    text = re.sub(r"\s+", " ", content.decode("utf-8", errors="replace")).strip()
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds an HTTP ``Retry-After`` value asks to wait (delay-seconds or an HTTP-date, RFC
    9110 10.2.3); ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _http_error(destination: StowDestination, answer: _Answer) -> str:
    said = excerpt(answer.content)
    return f"{destination} answered HTTP {answer.status}" + (f": {said}" if said else "")


def _instance_uids(paths: list[Path]) -> dict[tuple[str, str], set[str]]:
    """(study, series) -> SOP Instance UIDs of ``paths``."""
    series: dict[tuple[str, str], set[str]] = {}
    for path in paths:
        ds = pydicom.dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
        )
        key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        series.setdefault(key, set()).add(str(ds.SOPInstanceUID))
    return series


def _listed_instances(content: bytes) -> set[str]:
    """SOP Instance UIDs (0008,0018) of a QIDO-RS answer."""
    found = json.loads(content) if content else []
    if not isinstance(found, list):
        raise TypeError("a QIDO-RS answer is a list")
    return {
        str(_values(item, "00080018")[0])
        for item in found
        if isinstance(item, dict) and _values(item, "00080018")
    }


def stored_already(
    destination: StowDestination, paths: list[Path], timeout: float = 30, tls: StowTls | None = None
) -> list[str]:
    """The SOP Instance UIDs of ``paths``, sorted, when the origin's QIDO-RS lists every one
    (each series' instances searched); empty when it does not, or cannot say (no QIDO-RS, an
    error, no answer)."""
    series = _instance_uids(paths)
    for (study, series_uid), wanted in series.items():
        url = f"{destination.url}/studies/{study}/series/{series_uid}/instances"
        try:
            answer = _exchange(
                "GET",
                url,
                f"QIDO-RS at {destination}",
                timeout,
                tls or StowTls(),
                headers={"Accept": "application/dicom+json"},
            )
            listed = _listed_instances(answer.content) if answer.status == 200 else set()
        except (
            PeerRejected,
            TransientError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
        ) as exc:
            logger.info(
                "QIDO-RS could not say whether an earlier upload stored",
                extra={"destination": str(destination), "error": str(exc)},
            )
            return []
        if not wanted <= listed:
            return []
    return sorted(uid for found in series.values() for uid in found)


def stow_instances(
    destination: StowDestination,
    paths: list[Path],
    timeout: float = 30,
    tls: StowTls | None = None,
    resend: bool = False,
) -> list[str]:
    """POST ``paths`` to ``{url}/studies``; returns the SOP Instance UIDs the origin stored.

    Delivered means the origin answered 200 or 202 and listed no failure, and, when it lists
    what it stored, every file sent is there. A redirect (3xx), a TLS failure and an answer
    that cannot be read are refused; a 202 that does not list what it stored is retried.
    ``resend``: an earlier attempt may have stored them (it timed out waiting for the answer):
    when the origin's QIDO-RS lists every file, nothing is posted again.
    """
    tls = tls or StowTls()
    if resend and (uids := stored_already(destination, paths, timeout, tls)):
        logger.info(
            "already stored by an earlier STOW-RS attempt (QIDO-RS lists every file)",
            extra={"destination": str(destination), "instances": len(uids)},
        )
        return uids
    body, content_type = multipart_related(paths)
    reply = _exchange(
        "POST",
        f"{destination.url}/studies",
        f"STOW-RS to {destination}",
        timeout,
        tls,
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    code = reply.status
    if code >= 500 or code in _RETRY_HTTP:
        raise TransientError(
            _http_error(destination, reply),
            retry_after=retry_after_seconds(reply.headers.get("Retry-After")),
        )
    if 300 <= code < 400:
        where = redact_url(reply.headers.get("Location", "?"))
        raise PeerRejected(
            f"{destination} answered HTTP {code}, a redirect to {where}: results are not posted "
            "on; set the destination to the origin's own URL",
            _CANNOT_UNDERSTAND,
        )
    try:
        answer = json.loads(reply.content) if reply.content else {}
        answer = answer if isinstance(answer, dict) else {}
        failures, stored = _failures(answer), _stored(answer)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        if code >= 400:  # an error page, not a Store Instances Response
            raise PeerRejected(_http_error(destination, reply), _CANNOT_UNDERSTAND) from exc
        raise PeerRejected(
            f"{destination} answered HTTP {code} with a Store Instances Response that cannot be "
            f"read ({type(exc).__name__})",
            _CANNOT_UNDERSTAND,
        ) from exc
    if failures:
        listed = ", ".join(f"{uid} (0x{reason:04X})" for reason, uid in failures[:3])
        why = f"{destination} refused {len(failures)} of {len(paths)} instances: {listed}"
        if all(is_permanent_failure(reason) for reason, _ in failures):
            raise PeerRejected(why, failures[0][0])
        raise TransientError(why)  # some may store on a later try
    if code >= 400:
        raise PeerRejected(_http_error(destination, reply), _CANNOT_UNDERSTAND)
    if code != 200 and not stored:
        raise TransientError(
            f"{destination} answered HTTP {code} (some instances not stored, "
            "or stored with warnings) without listing what it stored"
        )
    if stored or code != 200:
        listed = set(stored)
        missing = [p.name for p in paths if _sop_instance_uid(p) not in listed]
        if missing:
            raise TransientError(
                f"{destination} stored {len(paths) - len(missing)} of "
                f"{len(paths)} instances; not listed: {', '.join(missing)}"
            )
    else:
        logger.warning(
            "STOW-RS answer lists nothing stored; taken as stored",
            extra={"destination": str(destination), "instances": len(paths)},
        )
    logger.info(
        "stored with STOW-RS", extra={"destination": str(destination), "instances": len(stored)}
    )
    return stored
