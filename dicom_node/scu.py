"""The Storage SCU: C-STORE files to a peer over one association, and C-ECHO.

Presentation contexts are built from the files themselves
(:func:`dicom_node.contexts.scu_contexts`). Policy travels in exceptions: an association that
cannot be made or is aborted raises :class:`~kernel.errors.TransientError` (retry later); a
store answered with a failure status raises :class:`~kernel.errors.PeerRejected`.

DICOM TLS: pass ``tls`` (an ``ssl.SSLContext``, see :func:`dicom_node.tls.client_context`);
the peer's certificate is verified against the destination's host name. A destination marked
``tls`` is never reached over plain TCP.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import Verification

from dicom_node.contexts import read_file_uids, scu_contexts
from dicom_node.statuses import (
    SOP_CLASS_NOT_SUPPORTED,
    is_failure,
    is_permanent_failure,
    status_category,
)
from kernel.errors import InvalidInput, PeerRejected, TransientError
from kernel.settings import Destination

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreResult:
    """The outcome of one file: the peer's status and its Error Comment if it gave one, or
    ``None`` and why when the file was not sent."""

    path: Path
    sop_instance_uid: str | None
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the peer stored the instance (success or warning)."""
        return self.status is not None and not is_failure(self.status)

    def describe(self) -> str:
        """One line for a person: the file, then the peer's status (code and category) or why
        it was not sent."""
        if self.status is None:
            return f"{self.path}: not sent ({self.error or 'no answer'})"
        answer = f"{self.path}: 0x{self.status:04X} {status_category(self.status)}"
        return f"{answer} ({self.error})" if self.error else answer


def _associate(
    destination: Destination,
    contexts: list[PresentationContext],
    calling_ae_title: str,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> Association:
    if destination.tls and tls is None:
        raise ValueError(f"{destination} needs DICOM TLS: pass an SSL context (tls=...)")
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    started = time.monotonic()
    assoc = ae.associate(
        destination.host,
        destination.port,
        contexts=contexts,
        ae_title=destination.ae_title,
        tls_args=(tls, destination.host) if tls is not None else None,
    )
    if not assoc.is_established:
        outcome = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "failed"
        if not assoc.is_rejected:  # say why: a peer silent for the whole timeout is not probed
            waited = time.monotonic() - started >= timeout  # (a probe would wait as long again)
            outcome += (f": no answer within {timeout:g} s" if waited
                        else _connect_failure(destination.host, destination.port, timeout))  # fmt: skip
        raise TransientError(f"association with {destination} {outcome}")
    return assoc


def _connect_failure(host: str, port: int, timeout: float) -> str:
    """``": cannot connect (REASON)"`` when a TCP connection to the peer fails now (pynetdicom
    reports a refused or unreachable peer as an aborted association), else ``""``."""
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            return ""
    except OSError as error:
        return f": cannot connect ({error.strerror or error})"


def store_files(
    destination: Destination,
    paths: list[Path],
    calling_ae_title: str,
    timeout: float = 30,
    stop_on_failure: bool = False,
    tls: ssl.SSLContext | None = None,
) -> list[StoreResult]:
    """C-STORE each readable DICOM file over one association; one result per path, in order.

    Files that are not DICOM get ``status=None`` and an error. With ``stop_on_failure`` the
    first failure status ends the sending (later files are not in the results).
    Raises TransientError when the association cannot be made (refused, TLS handshake
    failed) or is lost.
    """
    results: list[StoreResult] = []
    readable: list[tuple[Path, str, str, str]] = []
    for path in paths:
        try:
            sop_class, sop_instance, syntax = read_file_uids(path)
        except InvalidInput as exc:
            results.append(StoreResult(path, None, None, str(exc)))
            continue
        readable.append((path, sop_class, sop_instance, syntax))
    if not readable:
        return results
    contexts = scu_contexts((sop_class, syntax) for _, sop_class, _, syntax in readable)
    assoc = _associate(destination, contexts, calling_ae_title, timeout, tls)
    try:
        for path, _, sop_instance, _ in readable:
            try:
                answer = assoc.send_c_store(dcmread(path))
            except ValueError as exc:  # no accepted presentation context for this file
                results.append(StoreResult(path, sop_instance, SOP_CLASS_NOT_SUPPORTED, str(exc)))
                if stop_on_failure:
                    break
                continue
            if "Status" not in answer:
                raise TransientError(f"association with {destination} lost while storing")
            comment = answer.get("ErrorComment")
            results.append(
                StoreResult(path, sop_instance, int(answer.Status), str(comment) if comment else None)
            )
            if stop_on_failure and is_failure(int(answer.Status)):
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return results


def send_instances(
    destination: Destination,
    paths: list[Path],
    calling_ae_title: str,
    timeout: float = 30,
    tls: ssl.SSLContext | None = None,
) -> dict[str, int]:
    """Send ``paths`` over one association; SOP Instance UID -> status of each.

    Every file is offered, also after a refusal: a PACS that does not take one output (a SEG
    class it has no context for) still gets the others. Raises TransientError (association
    refused, aborted or timed out), PeerRejected after the last file when the peer refused any
    (its message names each refused file and how many were stored; its status is the first
    permanent failure, else the first failure) or InvalidInput (a path is not a DICOM file;
    nothing is sent then).
    """
    for path in paths:
        read_file_uids(path)
    results = store_files(destination, paths, calling_ae_title, timeout, tls=tls)
    statuses: dict[str, int] = {}
    refused: list[StoreResult] = []
    for result in results:
        if result.status is None or result.sop_instance_uid is None:
            raise InvalidInput(f"{result.path} cannot be sent: {result.error}")
        if is_failure(result.status):
            refused.append(result)
        else:
            statuses[result.sop_instance_uid] = result.status
    if refused:
        worst = next((r for r in refused if is_permanent_failure(r.status or 0)), refused[0])
        named = "; ".join(
            f"{r.path.name} ({r.sop_instance_uid}): 0x{r.status or 0:04X}"
            + (f" {r.error}" if r.error else "")
            for r in refused
        )
        raise PeerRejected(
            f"{destination} stored {len(statuses)} of {len(results)} instances, refused {named}",
            worst.status or 0,
        )
    return statuses


def echo(
    destination: Destination,
    calling_ae_title: str,
    timeout: float = 30,
    tls: ssl.SSLContext | None = None,
) -> int:
    """C-ECHO ``destination``; returns its status, raises TransientError when unreachable."""
    assoc = _associate(destination, [build_context(Verification)], calling_ae_title, timeout, tls)
    try:
        answer = assoc.send_c_echo()
    finally:
        if assoc.is_established:
            assoc.release()
    if "Status" not in answer:
        raise TransientError(f"no C-ECHO answer from {destination}")
    return int(answer.Status)
