"""Study-level datasets: the inputs a model's spec names, selected from labelled studies as
inference selects them, frozen with every file's sha256, the group and the cross-validation fold.

A *unit* is what a pathology label names: a study, a series or one instance (the label's
level). Each unit's files go through :func:`inference.runner.study_inputs`, the function
``run_model`` feeds the network with (selection rules, frame sampling, crop, resampling and
normalisation), and the resulting tensors are stored as they are (``inputs.npz``). A unit that
lacks an input of the spec is listed as excluded with the selection's reason: nothing is
guessed. A unit's group is a keyed pseudonym of its patient, else its study
(:meth:`training.groups.GroupKey.group`: the PatientID is never written, in clear or hashed).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import torch
from rich.console import Console
from rich.progress import Progress

from db.labels import LabelRecord
from db.models import LabelLevel, PathologyOutcome
from inference.registry import ModelSpec, sha256_file
from inference.selection import CeusRule
from kernel.errors import DatasetError, InvalidInput
from training.coverage import LeftOut, folder_left_out
from training.groups import GroupKey
from training.manifest import MANIFEST_CSV, MANIFEST_FILE, dicom_header
from training.splits import balance_record, fold_balance_of, fold_test_indices

logger = logging.getLogger(__name__)

INPUTS_FILE = "inputs.npz"
KIND = "study"


@dataclass(frozen=True)
class LabelledUnit:
    """The files a pathology label names (one study, series or instance) and its outcome."""

    uid: str
    level: LabelLevel
    paths: tuple[Path, ...]
    malignant: int
    group: str


@dataclass(frozen=True)
class StudyArrays:
    """Study-level training cases: one stacked tensor per spec input, as ``run_model`` builds
    them (already normalised), with labels, groups and names. No masks."""

    inputs: tuple[np.ndarray, ...]
    malignant: np.ndarray
    groups: np.ndarray
    names: np.ndarray
    masks: None = None
    has_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __post_init__(self) -> None:
        n = len(self.malignant)
        if any(len(x) != n for x in self.inputs) or len(self.groups) != n or len(self.names) != n:
            raise ValueError("StudyArrays: inputs, malignant, groups and names differ in length")
        if len(self.has_mask) != n:
            object.__setattr__(self, "has_mask", np.zeros(n, bool))

    def subset(self, indices: np.ndarray) -> StudyArrays:
        """The cases ``indices`` (in that order)."""
        index = np.asarray(indices, dtype=np.int64)
        return StudyArrays(
            tuple(x[index] for x in self.inputs),
            self.malignant[index],
            self.groups[index],
            self.names[index],
        )

    def network_inputs(self) -> list[torch.Tensor]:
        """One tensor per spec input, batch first, in forward order."""
        return [torch.from_numpy(x) for x in self.inputs]

    def mask_tensor(self) -> None:
        """Studies carry no reference masks."""


def _outcome(record: LabelRecord) -> int | None:
    if record.outcome is PathologyOutcome.UNKNOWN:
        return None
    return int(record.outcome is PathologyOutcome.METASTATIC)


#: how specific a label is: a file takes its most specific one
_SPECIFICITY = {LabelLevel.STUDY: 0, LabelLevel.SERIES: 1, LabelLevel.INSTANCE: 2}


def labelled_units(
    paths: Iterable[Path], records: Iterable[LabelRecord], group_key: GroupKey
) -> tuple[list[LabelledUnit], LeftOut]:
    """The units the labels ``records`` name among the DICOM files ``paths``, and what is left
    out (:func:`training.coverage.folder_left_out`: studies without a label, labels naming no
    file, labels of unknown outcome; and labels whose every file has a more specific label).
    Units sort by UID.

    A file belongs to its most specific label (instance, then series, then study), as in
    :func:`training.manifest.from_dicom_files`: a study labelled benign whose Doppler series is
    labelled metastatic (another node) gives two units, the study's without that series, never
    the same image under both outcomes."""
    by_uid: dict[tuple[LabelLevel, str], list[tuple[Path, pydicom.Dataset]]] = {}
    for path in sorted(Path(p) for p in paths):
        header = dicom_header(path)
        if header is None:
            continue
        for level, keyword in (
            (LabelLevel.STUDY, "StudyInstanceUID"),
            (LabelLevel.SERIES, "SeriesInstanceUID"),
            (LabelLevel.INSTANCE, "SOPInstanceUID"),
        ):
            uid = str(header.get(keyword, "") or "")
            if uid:
                by_uid.setdefault((level, uid), []).append((path, header))
    records = list(records)
    owner: dict[Path, tuple[int, str]] = {}  # file -> (specificity, uid) of its label
    for record in records:
        claim = (_SPECIFICITY[record.level], record.uid)
        for path, _ in by_uid.get((record.level, record.uid), []):
            owner[path] = max(owner.get(path, claim), claim)
    units, overridden = [], []
    for record in records:
        malignant = _outcome(record)
        named = by_uid.get((record.level, record.uid), [])
        claim = (_SPECIFICITY[record.level], record.uid)
        files = [(path, header) for path, header in named if owner[path] == claim]
        if malignant is None or not named:  # folder_left_out lists it
            continue
        if not files:
            overridden.append((record.level.value, record.uid))
        else:
            paths_of = tuple(path for path, _ in files)
            group = group_key.group(files[0][1])
            units.append(LabelledUnit(record.uid, record.level, paths_of, malignant, group))
    headers = {path: header for files in by_uid.values() for path, header in files}
    left_out = folder_left_out(headers.values(), records) | LeftOut(
        labels_overridden=tuple(sorted(overridden))
    )
    return sorted(units, key=lambda u: u.uid), left_out


def _folds(units: list[LabelledUnit], k: int, seed: int) -> list[int]:
    """Each unit's fold (label-stratified, by group); -1 for all when too few groups."""
    if len({u.group for u in units}) < k:
        return [-1] * len(units)
    fold_of = [-1] * len(units)
    tests = fold_test_indices([u.group for u in units], [u.malignant for u in units], k, seed)
    for fold, test in enumerate(tests):
        for index in test:
            fold_of[index] = fold
    return fold_of


def build_study_dataset(
    spec: ModelSpec,
    units: list[LabelledUnit],
    source: str,
    k: int,
    seed: int,
    ceus: CeusRule | None = None,
    left_out: LeftOut | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, tensors by input name) of ``units`` for ``spec``'s inputs.

    Every unit goes through :func:`inference.runner.study_inputs`; one that lacks an input
    is listed under ``excluded`` with the reason; each fold's test units by class are under
    ``fold_balance`` (:func:`training.splits.balance_record`); what never became a unit (``left_out``, from
    :func:`labelled_units`) is listed under ``left_out``. Raises ``ValueError`` when no unit is
    left.
    """
    from inference.runner import study_inputs

    kept: list[LabelledUnit] = []
    tensors: dict[str, list[np.ndarray]] = {item.name: [] for item in spec.inputs}
    excluded = []
    with Progress(disable=not Console().is_terminal) as progress:
        for unit in progress.track(units, description="select inputs"):
            try:
                _, built = study_inputs(spec, unit.paths, ceus=ceus)
            except InvalidInput as error:  # MissingInput, or frames that do not decode
                excluded.append({"uid": unit.uid, "level": unit.level.value, "reason": str(error)})
                continue
            for item, (tensor, _) in zip(spec.inputs, built, strict=True):
                tensors[item.name].append(tensor[0].numpy())
            kept.append(unit)
    if not kept:
        raise DatasetError(
            f"no labelled unit of {source} holds every input of {spec.ref} "
            f"({len(excluded)} excluded): nothing to build a dataset of"
        )
    folds = _folds(kept, k, seed)
    rows = [
        {
            "uid": unit.uid,
            "level": unit.level.value,
            "malignant": unit.malignant,
            "group": unit.group,
            "fold": fold,
            "files": [{"path": str(p.absolute()), "sha256": sha256_file(p)} for p in unit.paths],
        }
        for unit, fold in zip(kept, folds, strict=True)
    ]
    manifest = {
        "kind": KIND,
        "source": source,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": spec.key,
        "spec": spec.model_dump(mode="json"),
        "k": k,
        "seed": seed,
        "n": len(rows),
        "n_positive": sum(r["malignant"] == 1 for r in rows),
        "n_groups": len({r["group"] for r in rows}),
        "n_excluded": len(excluded),
        "fold_balance": balance_record(fold_balance_of([u.malignant for u in kept], folds)),
        "rows": rows,
        "excluded": excluded,
        "left_out": (left_out or LeftOut()).to_json(),
    }
    return manifest, {name: np.stack(stack) for name, stack in tensors.items() if stack}


def write_study_dataset(manifest: dict, tensors: dict[str, np.ndarray], out_dir: Path) -> Path:
    """Write ``inputs.npz``, ``manifest.json`` (with the sha256 of ``inputs.npz``) and
    ``manifest.csv`` (one row per unit, excluded ones with their reason)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / INPUTS_FILE, **tensors)
    manifest = {**manifest, "inputs_sha256": sha256_file(out_dir / INPUTS_FILE)}
    path = out_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    with (out_dir / MANIFEST_CSV).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "level", "malignant", "group", "fold", "files", "excluded"])
        for row in manifest["rows"]:
            files = " ".join(f["path"] for f in row["files"])
            writer.writerow([row["uid"], row["level"], row["malignant"], row["group"],
                             row["fold"], files, ""])  # fmt: skip
        for row in manifest["excluded"]:
            writer.writerow([row["uid"], row["level"], "", "", "", "", row["reason"]])
        for level, uid, reason in _left_out_rows(manifest.get("left_out", {})):
            writer.writerow([uid, level, "", "", "", "", reason])
    return path


#: the manifest.csv reason of each ``left_out`` list
_LEFT_OUT_REASONS = {
    "labels_without_study": "label matches no study",
    "labels_outcome_unknown": "outcome unknown",
    "labels_overridden": "every file has a more specific label",
}


def _left_out_rows(left_out: dict) -> list[tuple[str, str, str]]:
    """(level, uid, reason) of each study and label a manifest's ``left_out`` lists."""
    rows = [("study", uid, "no label")
            for uid in left_out.get("studies_without_label", {}).get("uids", [])]  # fmt: skip
    for name, reason in _LEFT_OUT_REASONS.items():
        rows += [(r["level"], r["uid"], reason) for r in left_out.get(name, {}).get("labels", [])]
    return rows


def is_study_manifest(manifest: dict) -> bool:
    """Whether a manifest document is a study-level one (this module's)."""
    return manifest.get("kind") == KIND


def is_study_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds a study-level dataset."""
    path = Path(folder) / MANIFEST_FILE
    return path.is_file() and is_study_manifest(json.loads(path.read_text()))


def changed_files(manifest: dict) -> list[str]:
    """Files whose sha256 no longer matches the manifest (empty when the dataset is intact)."""
    return [
        f["path"]
        for row in manifest["rows"]
        for f in row["files"]
        if not Path(f["path"]).is_file() or sha256_file(Path(f["path"])) != f["sha256"]
    ]


def load_study_arrays(folder: Path, spec: ModelSpec) -> tuple[StudyArrays, np.ndarray]:
    """(cases, frozen fold per case) of the study dataset in ``folder``, for ``spec``.

    Raises :class:`DatasetError` when the dataset was built for other inputs than ``spec``'s, or when
    ``inputs.npz`` is not the file the manifest froze.
    """
    manifest = json.loads((Path(folder) / MANIFEST_FILE).read_text())
    if sha256_file(Path(folder) / INPUTS_FILE) != manifest.get("inputs_sha256"):
        raise DatasetError(f"{folder}/{INPUTS_FILE} is not the file its manifest froze: rebuild it")
    built_for = [tuple(sorted(i.items())) for i in _inputs_of(manifest["spec"])]
    wanted = [tuple(sorted(i.items())) for i in _inputs_of(spec.model_dump(mode="json"))]
    if built_for != wanted:
        raise DatasetError(
            f"{folder} holds the inputs of {manifest['model']} "
            f"({manifest['spec']['architecture']}); {spec.key} ({spec.architecture}) takes "
            "other inputs: rebuild the dataset with --model"
        )
    with np.load(Path(folder) / INPUTS_FILE) as saved:
        inputs = tuple(saved[item.name] for item in spec.inputs)
    rows = manifest["rows"]
    arrays = StudyArrays(
        inputs,
        np.array([r["malignant"] for r in rows], np.int8),
        np.array([r["group"] for r in rows], dtype=str),
        np.array([r["uid"] for r in rows], dtype=str),
    )
    return arrays, np.array([r["fold"] for r in rows], np.int64)


def _inputs_of(spec_json: dict) -> list[dict]:
    return [
        {"name": i["name"], "rule": i["rule"], "contract": json.dumps(i["contract"])}
        for i in spec_json["inputs"]
    ]
