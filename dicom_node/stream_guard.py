"""Limits enforced while a C-STORE's dataset arrives, fragment by fragment.

Why this wraps pynetdicom: pynetdicom writes a received dataset to a temporary file (or to
memory) in its DUL thread as the P-DATA PDUs arrive, and calls the C-STORE handler only once
the whole dataset is there, so a size or free-disk check in the handler acts after the bytes
are on disk; its per-PDU events (``EVT_DATA_RECV``, ``EVT_PDU_RECV``) only observe. So
:class:`GuardedDimse` takes the place of the association's DIMSE provider (``assoc.dimse``,
set from ``EVT_CONN_OPEN`` by :class:`GuardInstaller`, before the DUL reads anything) and sees
every presentation data value before pynetdicom writes it:

- the dataset bytes of the message being received are counted; once they pass
  ``max_instance_bytes``, or the free disk under the spool falls below
  ``min_free_disk_bytes`` (looked at on the first fragment and every
  :data:`DISK_CHECK_BYTES`), the partial file is closed and deleted and the rest of the
  dataset is discarded as it arrives. The last fragment still ends the message, so the
  C-STORE handler runs and answers the refusal it takes with :func:`take_refusal`
  (0xC001, or 0xA700 for the disk): the sender may go on with its next instance.
- a sender that goes on past :data:`DRAIN_FACTOR` times ``max_instance_bytes`` in one
  message is not sending an instance that can be drained: the association is aborted.
- when the connection closes (A-ABORT, a killed sender, a lost network), the partial file
  of the message being received is deleted at once, and after an abort so are the files of
  received requests that will never be handled.

Pinned by tests/integration/dicom_node/test_receive_limits.py.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import P_DATA

from dicom_node.statuses import INSTANCE_TOO_LARGE, OUT_OF_RESOURCES

logger = logging.getLogger(__name__)

#: how many received bytes pass between two looks at the free disk
DISK_CHECK_BYTES = 4 * 1024**2
#: a refused dataset is drained up to this many times ``max_instance_bytes``, then aborted
DRAIN_FACTOR = 16
#: refusals kept per association at most (a sender cannot grow the table without bound)
_MAX_REFUSALS = 64


@dataclass(frozen=True)
class StreamLimits:
    """What a dataset may take while it arrives."""

    max_instance_bytes: int
    min_free_disk_bytes: int
    #: a folder on the filesystem received files are written to (the spool)
    disk: Path


@dataclass(frozen=True)
class StreamRefusal:
    """Why an arriving dataset was discarded, and the DIMSE status to answer."""

    reason: str
    status: int


def _delete_file(handle: Any) -> None:
    """Close and delete one of pynetdicom's temporary dataset files."""
    name = getattr(handle, "name", None)
    try:
        handle.close()
    except OSError:
        pass
    if name:
        Path(name).unlink(missing_ok=True)


class GuardedDimse(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, counting and bounding each dataset as it arrives."""

    def __init__(self, assoc: Any, limits: StreamLimits) -> None:
        super().__init__(assoc)
        self._limits = limits
        self._refusals: dict[int | None, StreamRefusal] = {}
        self._reset()

    def _reset(self) -> None:
        self._received = 0
        self._drained = 0
        self._next_disk_check = 0
        self._refused: StreamRefusal | None = None
        self._aborting = getattr(self, "_aborting", False)

    def receive_primitive(self, primitive: P_DATA) -> None:
        """Hand each presentation data value on, one at a time, after the limits allow it."""
        for context_id, data in primitive.presentation_data_value_list:
            if self._aborting:
                return
            if not data[0] & 1:  # a dataset fragment (PS3.8 E.2)
                admitted = self._admit(data)
                if admitted is None:
                    continue
                data = admitted
            single = P_DATA()
            single.presentation_data_value_list = [[context_id, data]]
            super().receive_primitive(single)
            if self.message is None:  # the message is complete (or was never begun)
                self._reset()

    def take_refusal(self, message_id: int | None) -> StreamRefusal | None:
        """The refusal of the completed message ``message_id``, removed; None if it passed."""
        return self._refusals.pop(message_id, None)

    def discard_partial(self) -> None:
        """Delete the partial file of the message being received; after an abort also the
        files of received requests that will not be handled."""
        message = self.message
        if message is not None and message._data_set_file is not None:
            logger.warning("connection closed mid-dataset: deleting its partial file")
            _delete_file(message._data_set_file)
            message._data_set_file = None
            message._data_set_path = None
        if not self.assoc.is_aborted:
            return
        kept = []
        while not self.msg_queue.empty():
            item = self.msg_queue.get_nowait()
            handle = getattr(item[1], "_dataset_file", None)
            if handle is not None:
                _delete_file(handle)
            else:
                kept.append(item)
        for item in kept:
            self.msg_queue.put(item)

    def _admit(self, data: bytes) -> bytes | None:
        """The fragment to pass on (emptied when refused but last), or None to drop it."""
        size = len(data) - 1
        if self._refused is None:
            self._received += size
            refusal = self._check()
            if refusal is not None:
                self._refuse(refusal)
        if self._refused is None:
            return data
        self._drained += size
        if self._drained > DRAIN_FACTOR * self._limits.max_instance_bytes:
            logger.warning("a refused dataset goes on past %d bytes: aborting", self._drained)
            self._aborting = True
            self.dul.event_queue.put("Evt19")  # A-ABORT, as pynetdicom does for a bad message
            return None
        return data[:1] if data[0] & 2 else None  # the last fragment still ends the message

    def _check(self) -> StreamRefusal | None:
        limits = self._limits
        if self._received > limits.max_instance_bytes:
            return StreamRefusal(
                f"instance exceeds max_instance_bytes {limits.max_instance_bytes}: more than "
                f"{limits.max_instance_bytes} bytes arrived, the rest was discarded",
                INSTANCE_TOO_LARGE,
            )
        if self._received >= self._next_disk_check:
            self._next_disk_check = self._received + DISK_CHECK_BYTES
            free = shutil.disk_usage(limits.disk).free
            if free < limits.min_free_disk_bytes:
                return StreamRefusal(
                    f"{free} bytes free under the spool, {limits.min_free_disk_bytes} required",
                    OUT_OF_RESOURCES,
                )
        return None

    def _refuse(self, refusal: StreamRefusal) -> None:
        """Stop keeping the message's dataset: delete what was written, remember why."""
        logger.warning("discarding an arriving dataset: %s", refusal.reason)
        self._refused = refusal
        if self.message is None:
            self.message = DIMSEMessage()
        message = self.message
        if message._data_set_file is not None:
            _delete_file(message._data_set_file)
            message._data_set_file = None
            message._data_set_path = None
        message.data_set = BytesIO()
        if len(self._refusals) >= _MAX_REFUSALS:
            self._refusals.clear()
        self._refusals[getattr(message.command_set, "MessageID", None)] = refusal


class GuardInstaller:
    """``evt.EVT_CONN_OPEN`` handler: give the new association a :class:`GuardedDimse`."""

    def __init__(self, limits: StreamLimits) -> None:
        self._limits = limits

    def __call__(self, event: Event) -> None:
        """Replace the association's DIMSE provider (its DUL has not started yet)."""
        event.assoc.dimse = GuardedDimse(event.assoc, self._limits)


def discard_partial(event: Event) -> None:
    """``evt.EVT_CONN_CLOSE`` handler: delete what an unfinished dataset left behind."""
    dimse = event.assoc.dimse
    if isinstance(dimse, GuardedDimse):
        dimse.discard_partial()


def take_refusal(event: Event) -> StreamRefusal | None:
    """The stream refusal of the C-STORE request of ``event``, if its dataset was refused."""
    dimse = event.assoc.dimse
    if not isinstance(dimse, GuardedDimse):
        return None
    return dimse.take_refusal(getattr(event.request, "MessageID", None))
