"""The Storage SCP: a non-blocking pynetdicom server that receives into the spool.

Association policy, in the order a request meets it:

- DICOM TLS when ``settings.tls_certificate`` is set (:mod:`dicom_node.tls`): a connection
  without a completed handshake (plain TCP, no or an untrusted client certificate) is closed
  before any PDU is read.
- the calling AE must match an entry of ``settings.calling_ae_allowlist`` when one is set;
  an entry ``AE@ADDRESS`` (or ``AE@NETWORK``) also pins the host the AE may call from
  (:class:`CallingPolicy`): rejected (1,1,3) otherwise.
- the called AE title must be ours (``require_called_aet``): rejected (1,1,7).
- at most ``max_associations`` run at once: rejected (2,3,2).
- at most ``max_unassociated_connections`` connections may wait for their A-ASSOCIATE-RQ, each
  for ``association_request_timeout_seconds`` (the ARTIM timer); one more is closed at once
  (:mod:`dicom_node.admission`).
- each dataset is counted as it arrives; beyond ``max_instance_bytes`` or the free-disk
  watermark its partial file is deleted and the rest discarded, and a connection that closes
  mid-dataset leaves no partial file (:mod:`dicom_node.stream_guard`).

C-ECHO is answered by pynetdicom's default handler. Modality Performed Procedure Step N-CREATE
and N-SET are answered by :class:`dicom_node.mpps.MppsScp`, which also hears of every stored
instance (:class:`StoreThenNotify`) so a completed step waiting for its last one acts at once.
We offer ``max_pdu_size`` as our maximum PDU length (0: unlimited).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta

from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import ModalityPerformedProcedureStep, Verification
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.admission import NodeAE, start_server
from dicom_node.contexts import register_retired_storage_classes, storage_contexts
from dicom_node.mpps import MppsScp, OnAssembled
from dicom_node.receive import ReceiveHandler
from dicom_node.statuses import SUCCESS
from dicom_node.stream_guard import GuardInstaller, StreamLimits, discard_partial
from dicom_node.tls import server_context, start_tls_server
from kernel.settings import CallingAE, Settings
from kernel.spool import Spool

logger = logging.getLogger(__name__)

#: A-ASSOCIATE-RJ: rejected permanent, by the service user, calling AE title not recognised
CALLING_AE_NOT_RECOGNISED = (0x01, 0x01, 0x03)


class CallingPolicy:
    """``evt.EVT_REQUESTED`` handler: reject (1,1,3) a calling AE the allowlist does not permit
    from the address it calls from. Runs before pynetdicom's own negotiation."""

    def __init__(self, rules: list[CallingAE]) -> None:
        self._rules = list(rules)

    def permits(self, ae_title: str, address: str) -> bool:
        """True when an entry allows ``ae_title`` from ``address`` (always, with no entries)."""
        return not self._rules or any(rule.permits(ae_title, address) for rule in self._rules)

    def __call__(self, event: Event) -> None:
        """Reject the association being requested unless it is permitted."""
        assoc = event.assoc
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        address = str(assoc.requestor.address)
        if self.permits(calling, address):
            return
        logger.warning("rejecting association: calling AE %r not allowed from %s", calling, address)
        assoc.acse.send_reject(*CALLING_AE_NOT_RECOGNISED)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()


class StoreThenNotify:
    """``evt.EVT_C_STORE`` handler: the receive handler, then, on success, the MPPS SCP hears
    of the stored SOP Instance UID (a dictionary look-up unless a final step awaits it)."""

    def __init__(self, store: ReceiveHandler, steps: MppsScp) -> None:
        self._store = store
        self._steps = steps

    def __call__(self, event: Event) -> int:
        """Store the instance; returns the C-STORE status."""
        status = self._store(event)
        if status == SUCCESS:
            self._steps.instance_stored(str(event.request.AffectedSOPInstanceUID))
        return status


def build_ae(settings: Settings) -> AE:
    """An application entity with the node's contexts, limits and timeouts."""
    register_retired_storage_classes()
    ae = NodeAE(ae_title=settings.ae_title)
    ae.supported_contexts = storage_contexts()
    ae.add_supported_context(Verification)
    ae.add_supported_context(ModalityPerformedProcedureStep)
    ae.require_called_aet = True
    ae.require_calling_aet = sorted({rule.ae_title for rule in settings.calling_ae_rules()})
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu_size
    ae.acse_timeout = settings.network_timeout_seconds
    ae.dimse_timeout = settings.network_timeout_seconds
    ae.network_timeout = settings.network_timeout_seconds
    return ae


def receive_into(spool: Spool) -> None:
    """Make pynetdicom stream received datasets into the spool's ``tmp/`` folder, so that
    storing one is an fsync and a rename, not a copy (:meth:`kernel.spool.Spool.place`).

    It sets the process's temporary folder (``tempfile.tempdir``; pynetdicom offers no other
    way), so only the node's own processes call it, at start-up; elsewhere a received dataset
    is copied from the system's temporary folder instead.
    """
    tempfile.tempdir = str(spool.tmp_dir)


def start_scp(
    settings: Settings,
    spool: Spool,
    sessions: sessionmaker[Session],
    chunked: bool = True,
    on_assembled: OnAssembled | None = None,
) -> ThreadedAssociationServer:
    """Start listening on ``settings.bind_address:settings.port`` and return the server.

    Port 0 binds an ephemeral port: read it from ``server.server_address[1]``. Stop with
    ``server.shutdown()``. ``chunked`` makes pynetdicom stream each received dataset to a
    temporary file instead of memory (``_config.STORE_RECV_CHUNKED_DATASET``, a process-wide
    pynetdicom switch; measured: far lower peak memory for large cines at the same speed).
    ``on_assembled`` receives the ids of the jobs a completed MPPS created (the queue hand-over).
    """
    _config.STORE_RECV_CHUNKED_DATASET = chunked
    limits = StreamLimits(
        max_instance_bytes=settings.max_instance_bytes,
        min_free_disk_bytes=settings.min_free_disk_bytes,
        disk=spool.root,
    )
    from pipeline.scoping import scope_in_session  # the registry: only when the SCP starts

    steps = MppsScp(
        sessions,
        settings.mpps_discontinued.value,
        timedelta(seconds=settings.max_wait_seconds),
        on_assembled,
        scope_in_session(settings),
    )
    handlers = [
        (evt.EVT_C_STORE, StoreThenNotify(ReceiveHandler(settings, spool, sessions), steps)),
        (evt.EVT_N_CREATE, steps.handle_create),
        (evt.EVT_N_SET, steps.handle_set),
        (evt.EVT_REQUESTED, CallingPolicy(settings.calling_ae_rules())),
        (evt.EVT_CONN_OPEN, GuardInstaller(limits)),
        (evt.EVT_CONN_CLOSE, discard_partial),
    ]
    ae = build_ae(settings)
    address = (settings.bind_address, settings.port)
    admission = {
        "max_unassociated": settings.max_unassociated_connections,
        "request_timeout": settings.association_request_timeout_seconds,
    }
    server: ThreadedAssociationServer
    if settings.tls_certificate is not None:
        server = start_tls_server(
            ae,
            address,
            server_context(settings),
            handlers,
            settings.network_timeout_seconds,
            **admission,
        )
    else:
        server = start_server(ae, address, handlers, **admission)
    logger.info(
        "storage SCP %s listening on %s:%d%s",
        settings.ae_title,
        *server.server_address[:2],
        " (DICOM TLS)" if settings.tls_certificate is not None else "",
    )
    return server
