"""Frozen dataset manifests: every file with its sha256, label, group and cross-validation fold.

Three sources: an image folder (``labels.csv``, node or ddti columns), a folder of DICOM files
with a pathology labels CSV, or the node's own received studies that have pathology labels.
Folds are label-stratified and group-level: a DICOM file's group is a pseudonym of its
patient, else its study (:meth:`training.groups.GroupKey.group`, a keyed pseudonym); an image folder's is
its ``labels.csv`` ``group``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from rich.console import Console
from rich.progress import Progress

from db.labels import LabelRecord
from db.models import LabelLevel, PathologyOutcome
from inference.registry import sha256_file
from kernel.errors import DatasetError
from training.coverage import LeftOut, folder_left_out
from training.datasets import Row, TrainingArrays, arrays_from_rows, read_image_folder, resize_grey
from training.groups import GroupKey
from training.splits import balance_record, fold_balance_of, fold_test_indices

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
MANIFEST_CSV = "manifest.csv"


@dataclass(frozen=True)
class ManifestRow:
    """One file of a dataset; ``kind`` is ``image`` or ``dicom``; paths are absolute."""

    path: str
    sha256: str
    kind: str
    malignant: int | None
    group: str
    mask: str | None = None
    mask_sha256: str | None = None
    fold: int = -1


def _progress() -> Progress:
    return Progress(disable=not Console().is_terminal)


def _assign_folds(rows: list[ManifestRow], k: int, seed: int) -> list[ManifestRow]:
    labelled = [i for i, r in enumerate(rows) if r.malignant is not None]
    fold_of = {}
    if len({rows[i].group for i in labelled}) >= k:
        tests = fold_test_indices(
            [rows[i].group for i in labelled], [rows[i].malignant for i in labelled], k, seed
        )
        for fold, test in enumerate(tests):
            fold_of.update({labelled[i]: fold for i in test})
    return [ManifestRow(**{**asdict(r), "fold": fold_of.get(i, -1)}) for i, r in enumerate(rows)]


def from_image_folder(folder: Path) -> list[ManifestRow]:
    """Rows of an image folder (conflicting-label groups dropped), hashed."""
    rows = [r for r in read_image_folder(folder) if not r.label_conflict]
    out = []
    with _progress() as progress:
        for row in progress.track(rows, description="hash images"):
            out.append(
                ManifestRow(
                    path=str(row.image.absolute()),
                    sha256=sha256_file(row.image),
                    kind="image",
                    malignant=row.malignant,
                    group=row.group,
                    mask=str(row.mask.absolute()) if row.mask else None,
                    mask_sha256=sha256_file(row.mask) if row.mask else None,
                )
            )
    return out


def _label_for(records: dict[tuple[LabelLevel, str], LabelRecord], uids: tuple[str, str, str]):
    """The most specific label of (study, series, instance) UIDs: instance, then series, then study."""
    for level, uid in zip(
        (LabelLevel.INSTANCE, LabelLevel.SERIES, LabelLevel.STUDY), reversed(uids), strict=True
    ):
        if (level, uid) in records:
            return records[(level, uid)]
    return None


def _outcome(record: LabelRecord | None) -> int | None:
    if record is None or record.outcome is PathologyOutcome.UNKNOWN:
        return None
    return int(record.outcome is PathologyOutcome.METASTATIC)


def dicom_header(path: Path) -> pydicom.Dataset | None:
    """The header of the DICOM file ``path``, or None (logged) for a file that is not DICOM or
    cannot be read: folders of studies hold notes, DICOMDIRs and truth files beside them."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        logger.warning("skipping a file that is not readable DICOM: %s", Path(path).name)
        return None


def from_dicom_files(
    paths: Iterable[Path], labels: list[LabelRecord], group_key: GroupKey
) -> tuple[list[ManifestRow], int, LeftOut]:
    """(rows of labelled DICOM files, number of files without a known outcome, the studies and
    labels left out: :func:`training.coverage.folder_left_out`); group = patient pseudonym, else
    study (:meth:`training.groups.GroupKey.group`). A file that is not DICOM is skipped
    (:func:`dicom_header`)."""
    records = {(r.level, r.uid): r for r in labels}
    rows, unlabelled, headers = [], 0, []
    with _progress() as progress:
        for path in progress.track(list(paths), description="read DICOM headers"):
            header = dicom_header(path)
            if header is None:
                continue
            headers.append(header)
            uids = (
                str(header.StudyInstanceUID),
                str(header.SeriesInstanceUID),
                str(header.SOPInstanceUID),
            )
            malignant = _outcome(_label_for(records, uids))
            if malignant is None:
                unlabelled += 1
                continue
            rows.append(ManifestRow(str(Path(path).absolute()), sha256_file(Path(path)), "dicom",
                                    malignant, group_key.group(header)))  # fmt: skip
    return rows, unlabelled, folder_left_out(headers, labels)


def build_manifest(
    rows: list[ManifestRow], source: str, k: int, seed: int, left_out: LeftOut | None = None
) -> dict:
    """The manifest document: source, creation time, fold plan, each fold's test cases by class
    (``fold_balance``, thin folds flagged), the rows with their folds and, for labelled DICOM
    sources, what was ``left_out``."""
    if not rows:
        raise DatasetError(f"no labelled rows from {source}: nothing to build a dataset of")
    rows = _assign_folds(rows, k, seed)
    balance = fold_balance_of([r.malignant for r in rows], [r.fold for r in rows])
    extra = {} if left_out is None else {"left_out": left_out.to_json()}
    return {
        "source": source,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "k": k,
        "seed": seed,
        "n": len(rows),
        "n_positive": sum(r.malignant == 1 for r in rows),
        "n_groups": len({r.group for r in rows}),
        "fold_balance": balance_record(balance),
        "rows": [asdict(r) for r in rows],
        **extra,
    }


def write_manifest(manifest: dict, out_dir: Path) -> Path:
    """Write ``manifest.json`` and ``manifest.csv`` into ``out_dir``; returns the JSON's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    with (out_dir / MANIFEST_CSV).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ManifestRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(manifest["rows"])
    return path


def verify_manifest(manifest: dict) -> list[str]:
    """Paths whose sha256 no longer matches the manifest (empty when the dataset is intact)."""
    changed = []
    for row in manifest["rows"]:
        for key, digest in (("path", "sha256"), ("mask", "mask_sha256")):
            if row.get(key) and sha256_file(Path(row[key])) != row[digest]:
                changed.append(row[key])
    return changed


def manifest_arrays(manifest: dict, size: int) -> TrainingArrays:
    """The manifest's labelled rows on the model grid (a DICOM file contributes its first frame)."""
    rows = [r for r in manifest["rows"] if r["malignant"] is not None]
    images = [r for r in rows if r["kind"] == "image"]
    arrays = arrays_from_rows(
        [Row(Path(r["path"]), Path(r["mask"]) if r["mask"] else None, r["malignant"], r["group"])
         for r in images], size,
    )  # fmt: skip
    dicoms = [r for r in rows if r["kind"] == "dicom"]
    if not dicoms:
        return arrays
    from inference.frames import read_frame
    from inference.transforms import to_grey_unit

    extra = np.stack(
        [resize_grey(to_grey_unit(read_frame(Path(r["path"]), 0)), size) for r in dicoms]
    )
    return TrainingArrays(
        images=np.concatenate([arrays.images, extra]),
        masks=np.concatenate([arrays.masks, np.zeros_like(extra)]),
        malignant=np.concatenate(
            [arrays.malignant, np.array([r["malignant"] for r in dicoms], np.int8)]
        ),
        groups=np.concatenate([arrays.groups, np.array([r["group"] for r in dicoms], dtype=str)]),
        names=np.concatenate(
            [arrays.names, np.array([Path(r["path"]).name for r in dicoms], dtype=str)]
        ),
    )
