"""The receive stage: the C-STORE handler that stores an instance durably and records it.

Bound to ``evt.EVT_C_STORE`` by :mod:`dicom_node.scp`. It never raises (pynetdicom would
answer 0xC211) and never runs inference. For each request, in order:

1. free disk under the spool below ``settings.min_free_disk_bytes``: 0xA700 (out of resources,
   the sender retries); nothing is kept.
2. more than ``settings.max_instance_bytes``: 0xC001 (a permanent "cannot understand" status;
   retrying cannot help); the reason is quarantined without the bytes (they could fill the disk).
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
   codestream of another kind or size than the header declares, whose first frame does not
   decode (compressed or PALETTE COLOR; native pixel data is validated without decoding),
   or whose uncompressed pixel data is shorter than the header declares: 0xC210.
6. the received bytes (file meta + dataset: a DICOM Part 10 file) are stored durably at
   ``Spool.incoming_path(study, series, sop)`` (pynetdicom's temporary file is fsynced and
   renamed there, :meth:`kernel.spool.Spool.adopt`; bytes in memory are written with
   ``Spool.write_atomic``), then a short transaction records them
   (:func:`db.instances.record_instance`), shared with concurrent associations
   (:class:`db.group_commit.GroupCommit`: one commit for all); only after the commit is
   0x0000 answered. A database error answers 0xA700 and rolls back, so nothing is
   half-written. A spool write that fails (I/O error) answers 0xA700 too; any unexpected
   error is logged and answered 0xA700.

A re-sent SOP instance answers 0x0000, adds no row and keeps the first copy's bytes (as
Orthanc does by default): the row and the file always describe the same instance, even when
a sender reuses a SOP Instance UID for different content.

Every refusal but "disk full" writes a quarantine record (reason, calling AE, SOP class,
status; no patient identifiers) with the received bytes where there are any.

The dataset arrives either in memory (``event.encoded_dataset()``) or, when pynetdicom's
``_config.STORE_RECV_CHUNKED_DATASET`` is set (see :func:`dicom_node.scp.start_scp`), as a
temporary Part 10 file (``event.dataset_path``); both are handled.
"""

from __future__ import annotations

import logging
import re
import shutil
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

from db.group_commit import GroupCommit
from db.instances import ReceivedInstance, record_instance, stored_path
from dicom_node.contexts import has_checked_pixels
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
from dicom_node.statuses import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    INSTANCE_TOO_LARGE,
    OUT_OF_RESOURCES,
    SUCCESS,
)
from kernel.errors import InvalidInput
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
    )


#: default of ``settings.max_pixel_samples`` for callers without settings
DEFAULT_MAX_PIXEL_SAMPLES = 1 << 30


def check_pixels(ds: Dataset, max_pixel_samples: int = DEFAULT_MAX_PIXEL_SAMPLES) -> None:
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
        check_pixel_bounds(ds, max_pixel_samples)
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
        check_pixels(ds, max_pixel_samples)
    return header


class ReceiveHandler:
    """The ``evt.EVT_C_STORE`` handler: store, record, then answer (see module docstring)."""

    def __init__(self, settings: Settings, spool: Spool, sessions: sessionmaker[Session]) -> None:
        self._settings = settings
        self._spool = spool
        self._commits = GroupCommit(sessions)

    def __call__(self, event: Event) -> int:
        """Handle one C-STORE request; returns the DIMSE status, never raises."""
        try:
            return self._receive(event)
        except Exception:  # the top of the handler: pynetdicom must never see an exception
            logger.exception("receive failed unexpectedly; answering 0x%04X", OUT_OF_RESOURCES)
            return OUT_OF_RESOURCES

    def _receive(self, event: Event) -> int:
        context = event.context
        sop_class_uid = str(context.abstract_syntax)
        sop_instance_uid = str(event.request.AffectedSOPInstanceUID)
        details: dict[str, Any] = {
            "calling_ae_title": event.assoc.requestor.ae_title,
            "sop_class_uid": sop_class_uid,
            "sop_instance_uid": sop_instance_uid,
            "transfer_syntax_uid": str(context.transfer_syntax),
        }
        free = shutil.disk_usage(self._spool.root).free
        if free < self._settings.min_free_disk_bytes:
            logger.warning(
                "refusing instance: %d bytes free under the spool, %d required",
                free,
                self._settings.min_free_disk_bytes,
            )
            return OUT_OF_RESOURCES

        path = event.dataset_path if _chunked(event) else None
        source: Source = path if path is not None else event.encoded_dataset(include_meta=True)
        size = path.stat().st_size if path is not None else len(source)
        if size > self._settings.max_instance_bytes:
            return self._refuse(
                None,
                InstanceRefused(
                    f"instance of {size} bytes exceeds max_instance_bytes "
                    f"{self._settings.max_instance_bytes}",
                    INSTANCE_TOO_LARGE,
                ),
                details,
            )
        try:
            header = check_instance(
                source,
                sop_class_uid,
                sop_instance_uid,
                transfer_syntax_uid=str(context.transfer_syntax),
                max_pixel_samples=self._settings.max_pixel_samples,
                max_inflated_bytes=self._settings.max_instance_bytes,
            )
        except InstanceRefused as refused:
            return self._refuse(source, refused, details)

        target = self._spool.incoming_path(
            header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid
        )
        existed = target.exists()
        if not existed:  # an instance already stored keeps its first bytes
            try:
                _write(self._spool, target, source)
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
        )
        def record(session: Session) -> tuple[bool, str | None]:
            new = record_instance(session, item)
            return new, item.path if new else stored_path(session, item.sop_instance_uid)

        try:
            new, stored = self._commits.run(record)
        except SQLAlchemyError as exc:
            logger.error("database unavailable while recording an instance: %s", type(exc).__name__)
            moved = not existed and isinstance(source, Path)  # the bytes are at target now
            self._refuse(
                target if moved else source,
                InstanceRefused(f"database error: {type(exc).__name__}", OUT_OF_RESOURCES),
                details,
            )
            if not existed:
                target.unlink(missing_ok=True)
            return OUT_OF_RESOURCES
        if not new and not existed and stored != str(target):
            target.unlink(missing_ok=True)  # known under another study or series: first one wins
        logger.info(
            "received %s (%s, %d bytes)%s",
            header.sop_instance_uid,
            sop_class_uid,
            size,
            "" if new else ", already known: kept the first copy",
        )
        return SUCCESS

    def _refuse(
        self, source: Source | None, refused: InstanceRefused, details: dict[str, Any]
    ) -> int:
        """Quarantine the bytes with the reason; returns the status to answer."""
        logger.warning("refusing instance with 0x%04X: %s", refused.status, refused.reason)
        record = {**details, "status": f"0x{refused.status:04X}"}
        try:
            self._spool.quarantine(source, refused.reason, record)
        except OSError as exc:  # the answer matters more than the record
            logger.error("could not quarantine a refused instance: %s", exc)
        return refused.status


def _chunked(event: Event) -> bool:
    """True when pynetdicom wrote the dataset to a temporary file."""
    try:
        return isinstance(event.dataset_path, Path)
    except AttributeError:
        return False


def _write(spool: Spool, target: Path, source: Source) -> None:
    """Store the received bytes at ``target``: pynetdicom's temporary file is moved into place
    when it lies on the spool's filesystem (see :func:`dicom_node.scp.receive_into`)."""
    if isinstance(source, bytes):
        spool.write_bytes_atomic(target, source)
    else:
        spool.adopt(source, target)
