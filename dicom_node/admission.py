"""The association server: how many connections may wait for their A-ASSOCIATE-RQ, and how long.

Why this subclasses pynetdicom's server: pynetdicom starts a thread (two, with the DUL's) for
every TCP connection it accepts, before any PDU is read, and keeps it until the ARTIM timer
(``acse_timeout``) expires; its public options have no cap on such connections. A port scanner
or a hostile peer opening idle connections would hold a thread each.
:class:`AdmissionServer` counts connections from accept until their association is settled
(accepted, rejected, aborted or closed): beyond ``max_unassociated`` the new one is closed in
the accept loop, no thread started. Each association's ARTIM timeout is
``request_timeout`` (short: a real requestor sends its A-ASSOCIATE-RQ at once); the rest of
the association keeps the AE's ACSE, DIMSE and network timeouts.

pynetdicom counts every connection's thread against ``maximum_associations``: a few idle
connections would take the places of real associations. :class:`NodeAE` counts only the
associations whose A-ASSOCIATE-RQ has arrived.

Pinned by tests/integration/dicom_node/test_admission.py.
"""

from __future__ import annotations

import logging
import socket
import threading
from datetime import datetime
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer
from pynetdicom.utils import make_target

logger = logging.getLogger(__name__)

_SETTLED = (evt.EVT_ACCEPTED, evt.EVT_REJECTED, evt.EVT_ABORTED, evt.EVT_CONN_CLOSE)


class NodeAE(AE):
    """An application entity whose association limit counts requested associations only."""

    @property
    def active_associations(self) -> list[Association]:
        """The running associations, less acceptors still waiting for their A-ASSOCIATE-RQ
        (pynetdicom's ``maximum_associations`` check reads this)."""
        return [
            assoc
            for assoc in super().active_associations
            if assoc.is_requestor or assoc.requestor.primitive is not None
        ]


class _Slot:
    """One connection's place among the unassociated ones, given back exactly once."""

    def __init__(self, server: AdmissionServer) -> None:
        self._server = server
        self._released = False

    def release(self, *_: Any) -> None:
        with self._server._lock:
            if not self._released:
                self._released = True
                self._server._pending -= 1


class _AdmittedRequestHandler(RequestHandler):
    """Creates the association with the short ARTIM timeout and ties its slot to it."""

    server: AdmissionServer

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        assoc.acse_timeout = self.server.request_timeout  # the ARTIM timer, before it starts
        slot = self.server._slots.pop(self.request, None)
        if slot is not None:
            for event in _SETTLED:
                assoc.bind(event, slot.release)
        return assoc


class AdmissionServer(ThreadedAssociationServer):
    """A threaded association server that caps connections still waiting to associate."""

    def __init__(
        self, *args: Any, max_unassociated: int = 16, request_timeout: float = 10.0, **kwargs: Any
    ) -> None:
        self.max_unassociated = max_unassociated
        self.request_timeout = request_timeout
        self._lock = threading.Lock()
        self._pending = 0
        self._slots: dict[Any, _Slot] = {}
        kwargs.setdefault("request_handler", _AdmittedRequestHandler)
        super().__init__(*args, **kwargs)

    @property
    def unassociated(self) -> int:
        """Connections accepted whose association is not settled yet."""
        with self._lock:
            return self._pending

    def process_request(self, request: Any, client_address: Any) -> None:
        """Refuse the connection when too many wait to associate; else serve it in a thread."""
        with self._lock:
            full = self._pending >= self.max_unassociated
            if not full:
                self._pending += 1
        if full:
            logger.warning(
                "closing a connection from %s: %d connections already wait to associate",
                client_address[0] if isinstance(client_address, tuple) else client_address,
                self.max_unassociated,
            )
            self._close(request)
            return
        slot = _Slot(self)
        self._slots[request] = slot
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give_back(request)
            raise

    def shutdown_request(self, request: Any) -> None:
        """Close a connection pynetdicom gives up on (and its slot, if no association took it)."""
        self._give_back(request)
        super().shutdown_request(request)

    def _give_back(self, request: Any) -> None:
        slot = self._slots.pop(request, None)
        if slot is not None:
            slot.release()

    @staticmethod
    def _close(request: socket.socket) -> None:
        try:
            request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        request.close()


def start_server(
    ae: AE,
    address: tuple[str, int],
    evt_handlers: list[Any],
    server_class: type[AdmissionServer] = AdmissionServer,
    **kwargs: Any,
) -> AdmissionServer:
    """Start ``server_class`` for ``ae`` in a daemon thread (as ``AE.start_server`` with
    ``block=False`` does); stop it with ``server.shutdown()``."""
    server = ae.make_server(address, evt_handlers=evt_handlers, server_class=server_class, **kwargs)
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    thread = threading.Thread(
        target=make_target(server.serve_forever), name=f"AcceptorServer@{stamp}", daemon=True
    )
    thread.start()
    # pynetdicom's own registry of servers: AssociationServer.shutdown() removes it from there
    ae._servers.append(server)
    return server
