"""The receive stage: the C-STORE handler that stores an instance durably and records it.

Bound to ``evt.EVT_C_STORE`` by :mod:`dicom_node.scp`. It never raises (pynetdicom would
answer 0xC211) and never runs inference. For each request, in order:

1. free disk under the spool below ``settings.min_free_disk_bytes``, or more than
   ``settings.max_instance_bytes``, while the dataset arrived: :mod:`dicom_node.stream_guard`
   deleted the partial file and discarded the rest; answered 0xA700 (out of resources, the
   sender retries; nothing is kept) / 0xC001 (a permanent "cannot understand" status;
   retrying cannot help; the reason is quarantined without the bytes).
2. the checks below reserve their memory first (:mod:`dicom_node.memory_budget`: the
   dataset's size and one decoded frame): not granted within ``network_timeout_seconds``,
   0xA700.
3. the header (read without pixel data) does not parse: 0xC210.
4. SOPClassUID, SOPInstanceUID, StudyInstanceUID or SeriesInstanceUID missing or not a UID, or
   SOPClassUID / SOPInstanceUID differ from the presentation context / C-STORE command: 0xA900
   (the dataset does not match its SOP class). A UID must be dotted digits of at most 64
   characters; leading zeros in a component, seen in real scanner files, are tolerated.
   A dataset encoded otherwise than its transfer syntax says, truncated (the last element
   shorter than its length field), or with sequences nested deeper than
   :data:`dicom_node.integrity.MAX_SEQUENCE_DEPTH`: 0xC210. A deflated dataset is inflated
   as a stream first: beyond ``settings.max_instance_bytes`` 0xC001, corrupt 0xC210.
5. an image class whose pixels are checked (:func:`dicom_node.contexts.has_checked_pixels`:
   the classes a model may use, plus Enhanced US Volume and the multi-frame Secondary
   Captures) whose Rows x Columns x samples x frames exceeds ``settings.max_pixel_samples`` or
   whose image attributes are impossible (checked before any decoding, so the work is
   bounded), whose encapsulated pixel data has fewer fragments than frames or any frame's
   codestream of another kind or size than the header declares, one of whose frames exceeds
   ``settings.max_frame_samples`` samples, whose first frame does not
   decode (compressed or PALETTE COLOR; native pixel data is validated without decoding),
   or whose uncompressed pixel data is shorter than the header declares: 0xC210.
6. the received bytes (file meta + dataset: a DICOM Part 10 file) are placed durably at
   ``Spool.incoming_path(study, series, sop)`` (pynetdicom's temporary file is fsynced and
   linked there, :meth:`kernel.spool.Spool.place`: exclusively, a file already there is never
   overwritten), then a short transaction records them (:func:`db.instances.record_or_find`,
   with the instance's patient key, :func:`kernel.patient.patient_key`),
   shared with concurrent associations (:class:`db.group_commit.GroupCommit`: one commit for
   all, after one fsync of each folder the transaction's new files were linked into, so a
   file's name is durable before its row); only after the commit is 0x0000 answered. Placing
   and recording run under a lock per SOP Instance UID, so whoever placed the file also
   records it. A database error, a folder fsync that fails, or a commit not done within
   ``settings.commit_wait_seconds``, answers 0xA700 and rolls back, so nothing is
   half-written. A spool write that fails (I/O error) answers 0xA700 too; any unexpected
   error is logged and answered 0xA700.

A re-sent SOP instance (same study, series and patient) answers 0x0000, adds no row and keeps
the first copy's bytes (as Orthanc does by default). One whose SOP Instance UID is already
recorded under another study or series, or whose first copy names another patient, is
quarantined and answered 0xB006 (warning, "elements discarded": the first copy is kept; the
README's Conformance section says why this status). The row and the file always describe the
same instance.

Every refusal but "out of resources" before the checks writes a quarantine record (reason, calling AE, SOP class,
status; no patient identifiers) with the received bytes where there are any.

The dataset arrives either in memory (``event.encoded_dataset()``) or, when pynetdicom's
``_config.STORE_RECV_CHUNKED_DATASET`` is set (see :func:`dicom_node.scp.start_scp`), as a
temporary Part 10 file (``event.dataset_path``); both are handled.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, pixel_array
from pynetdicom.events import Event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.group_commit import CommitTimeout, GroupCommit
from db.instances import ReceivedInstance, Recorded, record_or_find
from dicom_node.contexts import has_checked_pixels, is_processable
from dicom_node.integrity import (
    TooLarge,
    check_complete,
    check_depth,
    check_encoding,
    check_fragments,
    check_inflated_size,
    check_native_length,
    check_pixel_bounds,
    frame_count,
)
from dicom_node.memory_budget import BudgetBusy, MemoryBudget, check_cost
from dicom_node.statuses import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    DUPLICATE_SOP_INSTANCE,
    INSTANCE_TOO_LARGE,
    OUT_OF_RESOURCES,
    SUCCESS,
    status_with_comment,
)
from dicom_node.stream_guard import take_refusal
from kernel.errors import InvalidInput
from kernel.patient import patient_key
from kernel.provenance import is_node_result
from kernel.settings import Settings
from kernel.spool import Spool

logger = logging.getLogger(__name__)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")

Source = bytes | Path


class InstanceRefused(InvalidInput):
    """A received instance cannot be used; carries the DIMSE status to answer."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class InstanceHeader:
    """The header attributes the receive stage records."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    number_of_frames: int
    modality: str | None
    series_description: str | None
    patient_key: str | None = None
    """:func:`kernel.patient.patient_key`: recorded on the instance row for the one-patient rule."""
    may_be_input: bool = True
    """An image class a model reads, not a result of this node (:mod:`kernel.provenance`)."""


def is_valid_uid(value: object) -> bool:
    """Dotted digits, 1-64 characters (leading zeros tolerated, as found in the wild)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID.match(value))


def _open(source: Source) -> BinaryIO | Path:
    return BytesIO(source) if isinstance(source, bytes) else source


def _text(ds: Dataset, keyword: str, limit: int) -> str | None:
    value = ds.get(keyword)
    return str(value)[:limit] if value not in (None, "") else None


def parse(source: Source, with_pixels: bool = True) -> Dataset:
    """Read the received Part 10 bytes once (pixel data too unless ``with_pixels`` is False) and
    check that they are whole and honestly encoded; raises :class:`InstanceRefused`."""
    try:
        ds = dcmread(_open(source), stop_before_pixels=not with_pixels)
        check_encoding(ds)
        check_complete(ds)
        check_depth(ds)
    except InvalidInput as exc:
        raise InstanceRefused(f"header does not parse: {exc}", CANNOT_UNDERSTAND) from exc
    except Exception as exc:  # pydicom raises many exception types on corrupt input
        raise InstanceRefused(
            f"header does not parse: {type(exc).__name__}: {exc}", CANNOT_UNDERSTAND
        ) from exc
    return ds


def read_header(ds: Dataset, sop_class_uid: str, sop_instance_uid: str) -> InstanceHeader:
    """The header the receive stage records, after checking the UIDs; raises
    :class:`InstanceRefused`.

    ``sop_class_uid`` is the presentation context's abstract syntax and ``sop_instance_uid``
    the C-STORE command's Affected SOP Instance UID: the dataset must agree with both.
    """
    try:
        values = {keyword: ds.get(keyword) for keyword in _REQUIRED_UIDS}
        transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
        frames, modality = frame_count(ds), _text(ds, "Modality", 16)
        description = _text(ds, "SeriesDescription", 64)
        patient = patient_key(ds)
    except Exception as exc:  # a value that does not convert (pydicom reads lazily)
        raise InstanceRefused(
            f"header does not parse: {type(exc).__name__}: {exc}", CANNOT_UNDERSTAND
        ) from exc
    for keyword, value in values.items():
        if value is None:
            raise InstanceRefused(f"{keyword} is missing", DATASET_DOES_NOT_MATCH_SOP_CLASS)
        if not is_valid_uid(str(value)):
            raise InstanceRefused(f"{keyword} is not a valid UID", DATASET_DOES_NOT_MATCH_SOP_CLASS)
    if str(values["SOPClassUID"]) != sop_class_uid:
        raise InstanceRefused(
            f"SOPClassUID {values['SOPClassUID']} does not match the presentation context "
            f"{sop_class_uid}",
            DATASET_DOES_NOT_MATCH_SOP_CLASS,
        )
    if str(values["SOPInstanceUID"]) != sop_instance_uid:
        raise InstanceRefused(
            "SOPInstanceUID does not match the C-STORE request", DATASET_DOES_NOT_MATCH_SOP_CLASS
        )
    return InstanceHeader(
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        study_instance_uid=str(values["StudyInstanceUID"]),
        series_instance_uid=str(values["SeriesInstanceUID"]),
        transfer_syntax_uid=transfer_syntax,
        number_of_frames=frames,
        modality=modality,
        series_description=description,
        patient_key=patient,
        may_be_input=is_processable(sop_class_uid) and not is_node_result(ds),
    )


#: defaults of ``settings.max_pixel_samples`` / ``max_frame_samples`` for callers without settings
DEFAULT_MAX_PIXEL_SAMPLES = 1 << 30
DEFAULT_MAX_FRAME_SAMPLES = 1 << 25


def check_pixels(
    ds: Dataset,
    max_pixel_samples: int = DEFAULT_MAX_PIXEL_SAMPLES,
    max_frame_samples: int = DEFAULT_MAX_FRAME_SAMPLES,
) -> None:
    """Bound the image, then check its pixel data without decoding more than one frame; raises
    :class:`InstanceRefused`.

    Native pixel data must be as long as the header declares (and a palette must apply to the
    first frame); encapsulated pixel data must hold a codestream of the declared kind and size
    for every frame (:func:`dicom_node.integrity.check_fragments`), and its first frame must
    decode.
    """
    try:
        if "PixelData" not in ds:
            raise InstanceRefused(
                "no pixel data (missing, or the stream is truncated)", CANNOT_UNDERSTAND
            )
        check_pixel_bounds(ds, max_pixel_samples, max_frame_samples)
        compressed = ds.file_meta.TransferSyntaxUID.is_compressed
        palette = str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR"
        if compressed:
            check_fragments(ds)
        else:
            check_native_length(ds)
        if compressed or palette:
            frame = pixel_array(ds, index=0)
            if palette:
                apply_color_lut(frame, ds)
    except InstanceRefused:
        raise
    except InvalidInput as exc:
        raise InstanceRefused(f"pixel data does not decode: {exc}", CANNOT_UNDERSTAND) from exc
    except Exception as exc:  # pydicom and its decoder plugins raise many exception types
        raise InstanceRefused(
            f"pixel data does not decode: {type(exc).__name__}: {exc}", CANNOT_UNDERSTAND
        ) from exc


def check_instance(
    source: Source,
    sop_class_uid: str,
    sop_instance_uid: str,
    *,
    transfer_syntax_uid: str | None = None,
    max_pixel_samples: int = DEFAULT_MAX_PIXEL_SAMPLES,
    max_frame_samples: int = DEFAULT_MAX_FRAME_SAMPLES,
    max_inflated_bytes: int = 2 * 1024**3,
) -> InstanceHeader:
    """All receive checks on one instance's Part 10 bytes; raises :class:`InstanceRefused`.

    The bytes are parsed once (with pixel data only for the image classes whose pixels are
    checked, :func:`dicom_node.contexts.has_checked_pixels`).
    ``transfer_syntax_uid`` (the presentation context's) enables the streamed inflation check
    of a deflated dataset, bounded by ``max_inflated_bytes``.
    """
    try:
        check_inflated_size(source, transfer_syntax_uid or "", max_inflated_bytes)
    except TooLarge as exc:
        raise InstanceRefused(str(exc), INSTANCE_TOO_LARGE) from exc
    except (InvalidInput, OSError) as exc:
        raise InstanceRefused(str(exc), CANNOT_UNDERSTAND) from exc
    checked = has_checked_pixels(sop_class_uid)
    ds = parse(source, with_pixels=checked)
    header = read_header(ds, sop_class_uid, sop_instance_uid)
    if checked:
        check_pixels(ds, max_pixel_samples, max_frame_samples)
    return header


class ReceiveHandler:
    """The ``evt.EVT_C_STORE`` handler: store, record, then answer (see module docstring)."""

    def __init__(self, settings: Settings, spool: Spool, sessions: sessionmaker[Session]) -> None:
        self._settings = settings
        self._spool = spool
        self._commits = GroupCommit(sessions, wait_seconds=settings.commit_wait_seconds)
        self._budget = MemoryBudget(settings.receive_memory_budget_bytes)
        self._instance_locks = KeyedLocks()

    def __call__(self, event: Event) -> int | Dataset:
        """Handle one C-STORE request; returns the DIMSE status, never raises."""
        try:
            return self._receive(event)
        except Exception:  # the top of the handler: pynetdicom must never see an exception
            logger.exception("receive failed unexpectedly; answering 0x%04X", OUT_OF_RESOURCES)
            return status_with_comment(OUT_OF_RESOURCES, "unexpected error, see the node's log")

    def _receive(self, event: Event) -> int | Dataset:
        context = event.context
        sop_class_uid = str(context.abstract_syntax)
        sop_instance_uid = str(event.request.AffectedSOPInstanceUID)
        details: dict[str, Any] = {
            "calling_ae_title": event.assoc.requestor.ae_title,
            "sop_class_uid": sop_class_uid,
            "sop_instance_uid": sop_instance_uid,
            "transfer_syntax_uid": str(context.transfer_syntax),
        }
        refusal = take_refusal(event)
        if refusal is not None:  # discarded while it arrived: nothing of it is on disk
            if refusal.status == OUT_OF_RESOURCES:
                logger.warning("refusing instance: %s", refusal.reason)
                return status_with_comment(OUT_OF_RESOURCES, refusal.reason)
            return self._refuse(None, InstanceRefused(refusal.reason, refusal.status), details)

        path = event.dataset_path if _chunked(event) else None
        source: Source = path if path is not None else event.encoded_dataset(include_meta=True)
        size = path.stat().st_size if path is not None else len(source)
        try:
            syntax = str(context.transfer_syntax)
            header = self._check(source, size, sop_class_uid, sop_instance_uid, syntax)
        except InstanceRefused as refused:
            if refused.status == OUT_OF_RESOURCES:
                logger.warning("refusing instance: %s", refused.reason)
                return status_with_comment(OUT_OF_RESOURCES, refused.reason)
            return self._refuse(source, refused, details)

        with self._instance_locks.hold(header.sop_instance_uid):
            return self._store(source, size, header, details)

    def _store(
        self, source: Source, size: int, header: InstanceHeader, details: dict[str, Any]
    ) -> int | Dataset:
        """Place the checked bytes and record them (one SOP instance at a time: whoever places
        the file records it first); the status to answer."""
        target = self._spool.incoming_path(
            header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid
        )
        try:  # exclusive: a file already there (the first copy) is never overwritten
            placed = self._spool.place(source, target, sync_folder=False)
            if not placed:
                size = target.stat().st_size  # a row made now describes the file there
        except OSError as exc:
            return self._refuse(
                source,
                InstanceRefused(f"spool write failed: {type(exc).__name__}", OUT_OF_RESOURCES),
                details,
            )
        item = ReceivedInstance(
            study_instance_uid=header.study_instance_uid,
            series_instance_uid=header.series_instance_uid,
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid,
            transfer_syntax_uid=header.transfer_syntax_uid,
            path=str(target),
            size_bytes=size,
            number_of_frames=header.number_of_frames,
            modality=header.modality,
            series_description=header.series_description,
            calling_ae_title=details["calling_ae_title"],
            patient_key=header.patient_key,
            may_be_input=header.may_be_input,
        )
        try:  # the database decides, one writer at a time: check and write cannot race
            recorded = self._commits.run(
                lambda session: record_or_find(session, item), sync_folders=[target.parent]
            )
        except (SQLAlchemyError, CommitTimeout, OSError) as exc:  # OSError: the folder fsync
            return self._database_failed(exc, source, target, placed, details)
        conflict = None if recorded.new else _conflict(recorded, header)
        if conflict is not None:
            return self._quarantine_conflict(conflict, source, target, placed, details)
        logger.info(
            "received %s (%s, %d bytes)%s",
            header.sop_instance_uid,
            header.sop_class_uid,
            size,
            "" if recorded.new else ", already known: kept the first copy",
        )
        return SUCCESS

    def _check(
        self, source: Source, size: int, sop_class_uid: str, sop_instance_uid: str, syntax: str
    ) -> InstanceHeader:
        """:func:`check_instance` within the memory budget; raises :class:`InstanceRefused`."""
        settings = self._settings
        pixels = has_checked_pixels(sop_class_uid)
        cost = check_cost(source, size, pixels, settings.max_frame_samples)
        try:
            with self._budget.reserve(cost, settings.network_timeout_seconds):
                return check_instance(
                    source,
                    sop_class_uid,
                    sop_instance_uid,
                    transfer_syntax_uid=syntax,
                    max_pixel_samples=settings.max_pixel_samples,
                    max_frame_samples=settings.max_frame_samples,
                    max_inflated_bytes=settings.max_instance_bytes,
                )
        except BudgetBusy as exc:
            raise InstanceRefused(str(exc), OUT_OF_RESOURCES) from exc

    def _database_failed(
        self, exc: Exception, source: Source, target: Path, placed: bool, details: dict[str, Any]
    ) -> Dataset:
        """0xA700 after a database error or an expired commit wait; the bytes are quarantined
        unless the commit may still land (then the file stays where its row would point)."""
        logger.error("database unavailable while recording an instance: %s", type(exc).__name__)
        unknown = isinstance(exc, CommitTimeout) and exc.outcome_unknown
        refused = InstanceRefused(f"database error: {type(exc).__name__}", OUT_OF_RESOURCES)
        if unknown:
            return self._refuse(None, refused, details)
        moved = placed and isinstance(source, Path)  # the bytes are at target now
        answer = self._refuse(target if moved else source, refused, details)
        if placed:
            target.unlink(missing_ok=True)
        return answer

    def _quarantine_conflict(
        self, conflict: str, source: Source, target: Path, placed: bool, details: dict[str, Any]
    ) -> Dataset:
        """Keep the first copy, quarantine this one, answer :data:`DUPLICATE_SOP_INSTANCE`."""
        logger.warning("SOP Instance UID re-used: %s; kept the first copy", conflict)
        reason = f"SOP Instance UID already stored {conflict}; kept the first copy"
        record = {**details, "status": f"0x{DUPLICATE_SOP_INSTANCE:04X}"}
        try:
            self._spool.quarantine(target if placed else source, reason, record)
        except OSError as exc:
            logger.error("could not quarantine a conflicting instance: %s", exc)
            if placed:
                target.unlink(missing_ok=True)
        return status_with_comment(
            DUPLICATE_SOP_INSTANCE, "SOP Instance UID known under another study/patient"
        )

    def _refuse(
        self, source: Source | None, refused: InstanceRefused, details: dict[str, Any]
    ) -> Dataset:
        """Quarantine the bytes with the reason; returns the answer: the status and the reason as
        its Error Comment."""
        logger.warning("refusing instance with 0x%04X: %s", refused.status, refused.reason)
        record = {**details, "status": f"0x{refused.status:04X}"}
        try:
            self._spool.quarantine(source, refused.reason, record)
        except OSError as exc:  # the answer matters more than the record
            logger.error("could not quarantine a refused instance: %s", exc)
        return status_with_comment(refused.status, refused.reason)


class KeyedLocks:
    """One lock per key while anyone holds or waits for it (no table that only grows)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock for the ``with`` block."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


def _conflict(recorded: Recorded, header: InstanceHeader) -> str | None:
    """How the recorded copy of a re-sent SOP instance differs in study, series or patient
    (:func:`kernel.patient.patient_key`: issuer and ID) from this one; None for a plain
    re-send. The first copy's key is its row's; a row recorded before migration 0005 has
    none, and its file says it."""
    if recorded.study_instance_uid != header.study_instance_uid:
        return "under another study"
    if recorded.series_instance_uid != header.series_instance_uid:
        return "under another series"
    first = recorded.patient_key
    if first is None:
        try:
            tags = ["PatientID", "IssuerOfPatientID", "SpecificCharacterSet"]
            first = patient_key(dcmread(recorded.path, stop_before_pixels=True, specific_tags=tags))
        except Exception:  # noqa: BLE001 (the first copy was checked when it arrived)
            return None
    return "for another patient" if first != header.patient_key else None


def _chunked(event: Event) -> bool:
    """True when pynetdicom wrote the dataset to a temporary file."""
    try:
        return isinstance(event.dataset_path, Path)
    except AttributeError:
        return False
