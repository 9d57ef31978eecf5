"""De-identify a file or a folder of DICOM files into another folder, one shared UID map."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.uid import MediaStorageDirectoryStorage

from deid.leaks import identifying_terms, scrub_leaks, source_uids
from deid.options import DEFAULT_OPTIONS, DeidOptions, StructuredContent
from deid.payload import opaque_payload
from deid.pixels import blank_outside_tissue
from deid.profile import CLEAN_PIXEL_DATA, ProfileTable, UidMap, apply_basic_profile
from deid.reading import read_instance
from deid.structured import (
    CLEAN_STRUCTURED_CONTENT,
    clean_structured_content,
    has_structured_content,
)

logger = logging.getLogger(__name__)


@dataclass
class DeidReport:
    """What a run wrote; inputs are named by their path only (never by identifying values)."""

    written: list[Path] = field(default_factory=list)
    withheld: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    #: inputs that could not be de-identified, with the error's type (never its message)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: original UID -> new UID, every UID the run remapped: it links the export back to the
    #: source instances, so it is never shown (``repr``) and written only on request
    uid_map: dict[str, str] = field(default_factory=dict, repr=False)


class Withheld(Exception):
    """The file cannot be written without an identifier in it; the reason says why."""


def _inputs(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    return sorted(path for path in source.rglob("*") if path.is_file())


def deidentify_file(path: Path, out_dir: Path, uids: UidMap, table: ProfileTable,
                    options: DeidOptions = DEFAULT_OPTIONS,
                    written: dict[Path, Path] | None = None) -> Path:
    """De-identify one file into ``out_dir/<study>/<sop>.dcm``; :class:`Withheld` when it cannot be.

    ``written`` (output -> input) holds the files this run wrote, and gets this one: a second
    input of the same SOP Instance UID is withheld instead of overwriting the first's output.
    A DICOMDIR is withheld (its records name the files; the files themselves are exported), and
    so is an object whose payload cannot be cleaned (:func:`~deid.payload.opaque_payload`: an
    encapsulated PDF or CDA, waveform data), whatever the options.

    A file without an ultrasound tissue region cannot have its burned-in text blanked: it is
    withheld unless ``options.keep_unmasked`` (then BurnedInAnnotation is left as it was). A file
    with SR content items is withheld when ``options.structured_content`` is WITHHOLD.
    """
    ds = read_instance(path)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        raise Withheld("a DICOMDIR (the media's index, not an instance)")
    opaque = opaque_payload(ds)
    if opaque is not None:
        raise Withheld(opaque)
    structured = has_structured_content(ds)
    if structured and options.structured_content is StructuredContent.WITHHOLD:
        raise Withheld("structured content (SR content items)")
    terms, old_uids = identifying_terms(ds, table), source_uids(ds)
    masked = blank_outside_tissue(ds)
    if not masked and "PixelData" in ds and not options.keep_unmasked:
        raise Withheld("no tissue region to blank burned-in text by")
    applied = ([CLEAN_PIXEL_DATA] if masked else []) + ([CLEAN_STRUCTURED_CONTENT] if structured else [])
    apply_basic_profile(ds, uids, table, applied)
    if structured:
        clean_structured_content(ds)
    scrub_leaks(ds, terms, uids, old_uids)
    if getattr(ds, "file_meta", None) is not None:
        scrub_leaks(ds.file_meta, terms, uids, old_uids)
    if masked and str(ds.get("BurnedInAnnotation", "")).strip().upper() != "YES":
        # text outside the tissue regions is gone; a source that says YES may hold text inside
        # one (measurements, a probe name), which is not detected: it stays YES
        ds.BurnedInAnnotation = "NO"
    target = out_dir / str(ds.get("StudyInstanceUID", "no-study")) / f"{ds.SOPInstanceUID}.dcm"
    written = {} if written is None else written
    if target in written:  # two inputs of one SOP Instance UID: the first is kept
        raise Withheld(f"the same SOP Instance UID as {written[target].name}, already written")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        ds.save_as(partial, enforce_file_format=True)
        with open(partial, "rb") as stream:
            os.fsync(stream.fileno())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    written[target] = path
    return target


def deidentify_tree(source: Path, out_dir: Path, secret: str,
                    options: DeidOptions = DEFAULT_OPTIONS) -> DeidReport:
    """De-identify every DICOM file under ``source``; non-DICOM files are skipped, a file that
    fails is reported and the run goes on."""
    report = DeidReport()
    uids, table = UidMap(secret), ProfileTable.load()
    written: dict[Path, Path] = {}
    for path in _inputs(source):
        try:
            report.written.append(deidentify_file(path, out_dir, uids, table, options, written))
        except InvalidDicomError:
            report.skipped.append(path)
        except Withheld as reason:
            report.withheld.append((path, str(reason)))
        except Exception as exc:  # noqa: BLE001 (one odd file must not end the others' export)
            logger.warning("deidentify failed", extra={"error": type(exc).__name__})
            report.failed.append((path, type(exc).__name__))
    report.uid_map = dict(uids.mapping)
    logger.info("deidentified", extra={"written": len(report.written), "withheld": len(report.withheld),
                                        "skipped": len(report.skipped), "failed": len(report.failed)})
    return report
