"""De-identify a file or a folder of DICOM files into another folder, one shared UID map."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from deid.pixels import blank_outside_tissue
from deid.profile import ProfileTable, UidMap, apply_basic_profile

logger = logging.getLogger(__name__)


@dataclass
class DeidReport:
    """What a run wrote; inputs are named by their path only (never by identifying values)."""

    written: list[Path] = field(default_factory=list)
    withheld: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def _inputs(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    return sorted(path for path in source.rglob("*") if path.is_file())


def deidentify_file(path: Path, out_dir: Path, uids: UidMap, table: ProfileTable,
                    keep_unmasked: bool = False) -> Path | None:
    """De-identify one file into ``out_dir/<study>/<sop>.dcm``; None when withheld.

    A file without an ultrasound tissue region cannot have its burned-in text blanked: it is
    withheld unless ``keep_unmasked`` (then BurnedInAnnotation is left as it was).
    """
    ds = pydicom.dcmread(path)
    masked = blank_outside_tissue(ds)
    if not masked and "PixelData" in ds and not keep_unmasked:
        return None
    apply_basic_profile(ds, uids, table, clean_pixels=masked)
    if masked:
        ds.BurnedInAnnotation = "NO"
    target = out_dir / str(ds.get("StudyInstanceUID", "no-study")) / f"{ds.SOPInstanceUID}.dcm"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    ds.save_as(partial, enforce_file_format=True)
    with open(partial, "rb") as stream:
        os.fsync(stream.fileno())
    partial.replace(target)
    return target


def deidentify_tree(source: Path, out_dir: Path, secret: str, keep_unmasked: bool = False) -> DeidReport:
    """De-identify every DICOM file under ``source``; non-DICOM files are skipped."""
    report = DeidReport()
    uids, table = UidMap(secret), ProfileTable.load()
    for path in _inputs(source):
        try:
            target = deidentify_file(path, out_dir, uids, table, keep_unmasked)
        except InvalidDicomError:
            report.skipped.append(path)
            continue
        if target is None:
            report.withheld.append(path)
        else:
            report.written.append(target)
    logger.info("deidentified", extra={"written": len(report.written), "withheld": len(report.withheld),
                                        "skipped": len(report.skipped)})
    return report
