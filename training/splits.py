"""Seeded, group-aware, label-stratified splits: rows of one group never straddle two parts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


class Splittable(Protocol):
    """Anything with a group and an optional 0/1 label (``training.datasets.Row`` is one)."""

    @property
    def group(self) -> str: ...

    @property
    def malignant(self) -> int | None: ...


T = TypeVar("T", bound=Splittable)


def _folds(groups: Sequence[str], labels: Sequence[int | None], k: int, seed: int):
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    y = np.array([-1 if label is None else int(label) for label in labels])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return splitter.split(np.zeros(len(y)), y, np.asarray(groups, dtype=str))


def holdout_indices(
    groups: Sequence[str], labels: Sequence[int | None], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices; about ``fraction`` of the groups are held out, stratified by label.

    The held-out part is the first fold of a ``StratifiedGroupKFold`` with ``round(1/fraction)``
    folds (fewer when there are fewer groups or cases), so ``fraction`` is honoured to the
    nearest 1/k.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(set(groups)) < 2:
        raise ValueError("a hold-out split needs at least two groups")
    classes = [-1 if label is None else int(label) for label in labels]
    smallest_class = int(np.unique(classes, return_counts=True)[1].min())
    k = max(2, min(round(1.0 / fraction), len(set(groups)), smallest_class))
    kept, held = next(iter(_folds(groups, labels, k, seed)))
    return np.sort(kept), np.sort(held)


def holdout_split(rows: Sequence[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(kept, held-out) rows: a seeded group-aware hold-out stratified by ``malignant``."""
    kept, held = holdout_indices(
        [r.group for r in rows], [r.malignant for r in rows], fraction, seed
    )
    return [rows[i] for i in kept], [rows[i] for i in held]


def group_kfold(rows: Sequence[T], k: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """``k`` (train, test) index pairs from ``StratifiedGroupKFold``; groups never straddle."""
    folds = _folds([r.group for r in rows], [r.malignant for r in rows], k, seed)
    return [(train.tolist(), test.tolist()) for train, test in folds]


def fold_test_indices(
    groups: Sequence[str], labels: Sequence[int | None], k: int, seed: int
) -> list[np.ndarray]:
    """Test indices of each of ``k`` label-stratified group folds (groups never straddle)."""
    return [np.sort(test) for _, test in _folds(groups, labels, k, seed)]


#: a model's hold-out groups, beside its weights (``write_holdout``'s format)
HOLDOUT_FILE = "holdout.json"


def write_holdout(path: Path, groups: list[str], seed: int, fraction: float, source: str) -> None:
    """``holdout.json``: the held-out group ids and how they were drawn."""
    path.write_text(
        json.dumps(
            {"seed": seed, "fraction": fraction, "source": source, "groups": sorted(groups)},
            indent=2,
        )
        + "\n"
    )
