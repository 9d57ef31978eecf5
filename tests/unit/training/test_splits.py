"""Tests of training.splits: seeded, stratified hold-out and k-fold that keep groups whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.datasets import Row
from training.splits import (
    MIN_PER_CLASS,
    balance_record,
    fold_balance,
    fold_balance_of,
    group_kfold,
    holdout_indices,
    holdout_split,
    thin_fold_warning,
)


def _rows(n: int = 60) -> list[Row]:
    """n rows in groups of 1 to 3 images; labels constant within a group, about 1/3 positive."""
    rows, group = [], 0
    while len(rows) < n:
        size = 1 + group % 3
        for _ in range(size):
            rows.append(Row(Path(f"{len(rows)}.png"), None, int(group % 3 == 0), f"g{group}"))
        group += 1
    return rows[:n]


def test_holdout_split_groups_never_straddle() -> None:
    kept, held = holdout_split(_rows(), 0.2, seed=1)
    assert not {r.group for r in kept} & {r.group for r in held}
    assert len(kept) + len(held) == 60


def test_holdout_split_fraction_of_groups_and_both_labels() -> None:
    rows = _rows()
    _, held = holdout_split(rows, 0.2, seed=1)
    share = len({r.group for r in held}) / len({r.group for r in rows})
    assert 0.1 <= share <= 0.3
    assert {r.malignant for r in held} == {0, 1}


def test_holdout_split_same_seed_same_split_other_seed_differs() -> None:
    rows = _rows()
    first = [r.image for r in holdout_split(rows, 0.2, seed=3)[1]]
    assert first == [r.image for r in holdout_split(rows, 0.2, seed=3)[1]]
    assert first != [r.image for r in holdout_split(rows, 0.2, seed=4)[1]]


def test_holdout_indices_bad_fraction_raises() -> None:
    with pytest.raises(ValueError, match="fraction"):
        holdout_indices(["a", "b"], [0, 1], 1.5, seed=0)


def test_holdout_indices_one_group_raises() -> None:
    with pytest.raises(ValueError, match="two groups"):
        holdout_indices(["a", "a"], [0, 1], 0.5, seed=0)


def test_group_kfold_every_row_tested_once_groups_whole() -> None:
    rows = _rows()
    folds = group_kfold(rows, k=5, seed=0)
    assert len(folds) == 5
    tested = sorted(i for _, test in folds for i in test)
    assert tested == list(range(len(rows)))
    for train, test in folds:
        assert not {rows[i].group for i in train} & {rows[i].group for i in test}


def test_group_kfold_k_one_raises() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        group_kfold(_rows(), k=1, seed=0)


def test_fold_balance_flags_a_fold_with_few_or_no_cases_of_a_class() -> None:
    labels = [1, 1, 0, 0, 0, 0, 0, 0, None, 1] + [1] * 5 + [0] * 5
    tests = [[0, 1, 2, 3, 4, 5, 6, 7, 8], [9, *range(10, 20)], [2, 3, 4, 5, 6]]
    balance = fold_balance(labels, tests)
    assert [(b.positive, b.negative) for b in balance] == [(2, 6), (6, 5), (0, 5)]
    assert [b.is_thin() for b in balance] == [True, False, True]
    warning = thin_fold_warning(balance)
    assert warning is not None and warning.startswith("warning: 2 of 3 folds have fewer than 5")
    assert "fold 2: 0 positive, 5 negative" in warning
    assert thin_fold_warning(balance[1:2]) is None
    record = balance_record(fold_balance_of(labels[:10], [0, 0, 0, 0, 0, 1, 1, 1, -1, 1]))
    assert record["thin_folds"] == [0, 1] and record["folds"][1] == {
        "fold": 1, "positive": 1, "negative": 3}  # fmt: skip
    assert record["min_per_class"] == MIN_PER_CLASS == 5 and record["warning"]
