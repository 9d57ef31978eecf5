"""Groups kept out of training: a hold-out used once, at the end, never seen by k-fold.

A hold-out is a ``holdout.json`` (``training.splits.write_holdout``: ``{"groups": [...]}``),
usually the one beside a packaged model's weights. :func:`without_excluded` drops its groups
from the cases (and remaps a manifest's frozen folds); :func:`record_exclusion` writes what was
left out into the run folder (``exclusion.json``) and refuses to resume a run that excluded
something else, so one run's folds never mix two selections.

A group of a DICOM dataset is a keyed pseudonym of its patient (:mod:`training.groups`). A
hold-out written before 2026-12-08 named its patients' PatientIDs in clear; given the site's
group key, such a group still leaves out the cases of its pseudonym (the PatientID without an
issuer: :meth:`training.groups.GroupKey.legacy`), and the exclusion then records the
pseudonym, not the ID, so the clear ID goes no further (``exclusion.json``, the packaged
model's ``holdout.json``). A group that finds no case is counted (``unmatched_groups``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from training.groups import resolve_groups
from training.splits import HOLDOUT_FILE

EXCLUSION_FILE = "exclusion.json"


C = TypeVar("C")


@dataclass(frozen=True)
class Exclusion:
    """What was left out: the files named, their groups' digest, how many cases fell and how
    many of the groups found no case."""

    files: tuple[str, ...]
    groups: frozenset[str]
    excluded_cases: int = 0
    unmatched_groups: int = 0

    @property
    def digest(self) -> str:
        """SHA-256 of the sorted group ids: what a resumed run must match."""
        return hashlib.sha256("\n".join(sorted(self.groups)).encode()).hexdigest()

    @classmethod
    def from_json(cls, record: dict) -> Exclusion:
        """The exclusion a :meth:`to_json` record describes."""
        return cls(tuple(record["files"]), frozenset(map(str, record["groups"])),
                   int(record.get("excluded_cases", 0)))  # fmt: skip

    def to_json(self) -> dict:
        """The ``exclusion.json`` record (group ids included, for audit)."""
        return {
            "files": list(self.files),
            "n_groups": len(self.groups),
            "excluded_cases": self.excluded_cases,
            "sha256": self.digest,
            "groups": sorted(self.groups),
        }


def read_excluded_groups(paths: Sequence[Path]) -> Exclusion:
    """The union of the ``groups`` of each ``holdout.json`` in ``paths``.

    Raises ``ValueError`` for a file without a ``groups`` list.
    """
    groups: set[str] = set()
    for path in paths:
        try:
            record = json.loads(Path(path).read_text())
            groups.update(map(str, record["groups"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}: not a hold-out file with a 'groups' list ({error})"
            ) from error
    return Exclusion(tuple(str(p) for p in paths), frozenset(groups))


def without_excluded(
    cases: C,
    tests: list[np.ndarray] | None,
    exclusion: Exclusion,
    legacy: Callable[[str], str] | None = None,
) -> tuple[C, list[np.ndarray] | None, Exclusion]:
    """``cases`` without the excluded groups' cases, the frozen folds ``tests`` remapped to
    the kept cases' new indices, and the exclusion with its case and unmatched-group counts
    filled in; a group named in clear that left out the cases of its ``legacy`` form
    (:meth:`training.groups.GroupKey.legacy`) is replaced by that form
    (:func:`training.groups.resolve_groups`)."""
    groups = np.asarray(cases.groups).astype(str)  # type: ignore[attr-defined]
    resolved = resolve_groups(exclusion.groups, groups.tolist(), legacy)
    found = {group for group in resolved.values() if group is not None}
    keep = ~np.isin(groups, sorted(found))
    recorded = frozenset(key or group for group, key in resolved.items())
    counted = Exclusion(exclusion.files, recorded, int((~keep).sum()),
                        sum(key is None for key in resolved.values()))  # fmt: skip
    if keep.all():
        return cases, tests, counted
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        raise ValueError("the exclusion leaves no case to train on")
    new_index = np.full(len(groups), -1, np.int64)
    new_index[kept] = np.arange(kept.size)
    remapped = None
    if tests is not None:
        remapped = [np.sort(new_index[t[keep[t]]]) for t in tests]
    return cases.subset(kept), remapped, counted  # type: ignore[attr-defined]


def record_exclusion(run: Path, exclusion: Exclusion) -> None:
    """Write ``run/exclusion.json``; raise ``ValueError`` when the run already trained with a
    different exclusion (or, before this record existed, without one): a new run is needed."""
    run = Path(run)
    path = run / EXCLUSION_FILE
    if path.is_file():
        before = json.loads(path.read_text())
        if before.get("sha256") == exclusion.digest:
            return
        what = f"{before.get('n_groups')} groups from {', '.join(before.get('files', [])) or '-'}"
    elif any(run.glob("fold_*")):
        if not exclusion.groups:
            return
        what = "nothing excluded"
    else:
        run.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(exclusion.to_json(), indent=2) + "\n")
        return
    raise ValueError(f"{run} was trained with another exclusion ({what}): use a new --out folder")


def model_holdout(folder: Path) -> Exclusion:
    """The hold-out groups of the model packaged in ``folder`` (its ``holdout.json``)."""
    return read_excluded_groups([Path(folder) / HOLDOUT_FILE])


def run_exclusion(run: Path) -> Exclusion:
    """The exclusion a k-fold run was trained with (``run/exclusion.json``; none without it)."""
    path = Path(run) / EXCLUSION_FILE
    if not path.is_file():
        return no_exclusion()
    return Exclusion.from_json(json.loads(path.read_text()))


def write_model_holdout(folder: Path, exclusion: Exclusion) -> Path:
    """``folder/holdout.json`` of a packaged model trained without ``exclusion``'s groups, so
    that ``lnm-node evaluate --subset holdout`` measures it on exactly those groups."""
    path = Path(folder) / HOLDOUT_FILE
    record = {"source": "excluded from training", "files": list(exclusion.files),
              "groups": sorted(exclusion.groups)}  # fmt: skip
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def no_exclusion() -> Exclusion:
    """Nothing excluded (a run that trains on every case)."""
    return Exclusion((), frozenset())
