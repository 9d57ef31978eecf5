"""Seeded, group-aware, label-stratified splits: rows of one group never straddle two parts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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


#: fewer test cases of either class than this in a fold makes its AUC meaningless
MIN_PER_CLASS = 5


@dataclass(frozen=True)
class FoldBalance:
    """The labelled test cases of one fold, by class."""

    fold: int
    positive: int
    negative: int

    def is_thin(self, minimum: int = MIN_PER_CLASS) -> bool:
        """Whether either class has fewer than ``minimum`` test cases (zero included)."""
        return min(self.positive, self.negative) < minimum

    def __str__(self) -> str:
        return f"fold {self.fold}: {self.positive} positive, {self.negative} negative"


def fold_balance(labels: Sequence[int | None], tests: Sequence[Sequence[int]]) -> list[FoldBalance]:
    """Each fold's labelled test cases by class (``tests``: test indices per fold)."""
    y = np.array([-1 if label is None else int(label) for label in labels])
    return [
        FoldBalance(fold, int((y[np.asarray(t, np.int64)] == 1).sum()),
                    int((y[np.asarray(t, np.int64)] == 0).sum()))
        for fold, t in enumerate(tests)
    ]  # fmt: skip


def thin_fold_warning(balance: Sequence[FoldBalance], minimum: int = MIN_PER_CLASS) -> str | None:
    """One line naming the folds with fewer than ``minimum`` test cases of a class, or None."""
    thin = [b for b in balance if b.is_thin(minimum)]
    if not thin:
        return None
    return (f"warning: {len(thin)} of {len(balance)} folds have fewer than {minimum} positive or "
            f"negative test cases ({'; '.join(map(str, thin))}): their AUC means little; "
            "use fewer folds or more studies")  # fmt: skip


def fold_balance_of(labels: Sequence[int | None], fold_of: Sequence[int]) -> list[FoldBalance]:
    """:func:`fold_balance` of frozen folds (``fold_of[i]``: case i's fold; -1: none)."""
    folds = np.asarray(fold_of, np.int64)
    k = int(folds.max()) + 1 if folds.size else 0
    return fold_balance(labels, [np.flatnonzero(folds == fold) for fold in range(k)])


def balance_record(balance: Sequence[FoldBalance], minimum: int = MIN_PER_CLASS) -> dict:
    """The manifest's ``fold_balance``: each fold's counts, the thin folds and the warning."""
    return {
        "min_per_class": minimum,
        "warning": thin_fold_warning(balance, minimum),
        "folds": [{"fold": b.fold, "positive": b.positive, "negative": b.negative}
                  for b in balance],
        "thin_folds": [b.fold for b in balance if b.is_thin(minimum)],
    }  # fmt: skip


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
