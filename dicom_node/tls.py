"""DICOM TLS (PS3.15 B.12, B.13): SSL contexts from settings, and a TLS association server.

The SCP speaks TLS only when ``settings.tls_certificate`` is set; then every connection on its
port must complete a TLS handshake (TLS 1.2 or later) before any DICOM PDU is read. Client
certificates are verified against ``settings.tls_ca_certificates`` and required unless
``settings.tls_require_client_certificate`` is false.

pynetdicom's server runs the TLS handshake inside its accept loop, so one client that connects
and stays silent would block every other connection. :class:`TlsAssociationServer` instead
runs each handshake in the connection's own thread, bounded by
``settings.network_timeout_seconds``.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any, cast

from pynetdicom import AE

from dicom_node.admission import AdmissionServer, start_server
from kernel.settings import Destination, Settings

logger = logging.getLogger(__name__)


def server_context(settings: Settings) -> ssl.SSLContext:
    """The SCP's context: our certificate and key; client certificates checked against the CA.

    Raises ``ValueError`` when TLS is not configured, ``ssl.SSLError`` / ``OSError`` when a
    PEM file does not load.
    """
    if settings.tls_certificate is None or settings.tls_private_key is None:
        raise ValueError("DICOM TLS needs tls_certificate and tls_private_key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_certificate, settings.tls_private_key)
    if settings.tls_ca_certificates is not None:
        context.load_verify_locations(cafile=settings.tls_ca_certificates)
        context.verify_mode = (
            ssl.CERT_REQUIRED if settings.tls_require_client_certificate else ssl.CERT_OPTIONAL
        )
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def client_context(settings: Settings) -> ssl.SSLContext:
    """The SCU's context: the peer's certificate and host name are verified (against
    ``tls_ca_certificates``, else the system's CAs); ours is presented when configured."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=str(settings.tls_ca_certificates) if settings.tls_ca_certificates else None,
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_certificate is not None and settings.tls_private_key is not None:
        context.load_cert_chain(settings.tls_certificate, settings.tls_private_key)
    return context


def client_context_for(settings: Settings, destination: Destination) -> ssl.SSLContext | None:
    """The context to reach ``destination`` with: None for a plain (non-TLS) destination."""
    return client_context(settings) if destination.tls else None


class TlsAssociationServer(AdmissionServer):
    """An :class:`~dicom_node.admission.AdmissionServer` whose TLS handshakes run in the
    connection's thread."""

    def __init__(self, *args: Any, handshake_timeout: float = 30.0, **kwargs: Any) -> None:
        self.handshake_timeout = handshake_timeout
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection and wrap it, without handshaking yet (no blocking here)."""
        if self.socket is None or self.ssl_context is None:
            raise OSError("TLS association server without a socket or SSL context")
        client, address = self.socket.accept()
        wrapped = self.ssl_context.wrap_socket(
            client, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handshake (bounded in time), then hand the connection to pynetdicom."""
        try:
            request.settimeout(self.handshake_timeout)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError) as exc:  # TimeoutError is an OSError
            logger.warning(
                "TLS handshake with %s failed: %s", client_address[0], type(exc).__name__
            )
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


def start_tls_server(
    ae: AE,
    address: tuple[str, int],
    context: ssl.SSLContext,
    evt_handlers: list[Any],
    handshake_timeout: float,
    **kwargs: Any,
) -> TlsAssociationServer:
    """Start a non-blocking :class:`TlsAssociationServer` for ``ae`` (``kwargs``: the
    :class:`~dicom_node.admission.AdmissionServer` limits); stop it with ``server.shutdown()``."""
    server = start_server(
        ae,
        address,
        evt_handlers,
        server_class=TlsAssociationServer,
        ssl_context=context,
        handshake_timeout=handshake_timeout,
        **kwargs,
    )
    return cast(TlsAssociationServer, server)
