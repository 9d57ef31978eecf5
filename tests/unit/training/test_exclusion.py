"""Hold-out groups kept out of training: reading, dropping (frozen folds remapped), recording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.datasets import TrainingArrays
from training.exclusion import (
    EXCLUSION_FILE,
    no_exclusion,
    read_excluded_groups,
    record_exclusion,
    run_exclusion,
    without_excluded,
)


def _arrays(groups: list[str]) -> TrainingArrays:
    n = len(groups)
    return TrainingArrays(
        np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1),
        np.zeros((n, 1, 1, 1), np.float32),
        np.arange(n) % 2,
        np.array(groups),
        np.array([f"case{i}" for i in range(n)]),
        np.ones(n, bool),
    )


def _holdout(path: Path, groups: list[str]) -> Path:
    path.write_text(json.dumps({"seed": 1, "groups": groups}))
    return path


def test_excluded_groups_leave_and_frozen_folds_follow(tmp_path: Path) -> None:
    arrays = _arrays(["a", "a", "b", "c", "c", "d"])
    tests = [np.array([0, 1, 3]), np.array([2, 4, 5])]
    exclusion = read_excluded_groups([_holdout(tmp_path / "h.json", ["c"])])
    kept, folds, counted = without_excluded(arrays, tests, exclusion)
    assert kept.names.tolist() == ["case0", "case1", "case2", "case5"]
    assert counted.excluded_cases == 2
    assert folds is not None
    assert [kept.names[f].tolist() for f in folds] == [["case0", "case1"], ["case2", "case5"]]


def test_union_of_files_and_nothing_to_exclude(tmp_path: Path) -> None:
    exclusion = read_excluded_groups(
        [_holdout(tmp_path / "1.json", ["a"]), _holdout(tmp_path / "2.json", ["d"])]
    )
    assert exclusion.groups == {"a", "d"}
    arrays = _arrays(["b", "c"])
    kept, folds, counted = without_excluded(arrays, None, exclusion)
    assert kept is arrays and folds is None and counted.excluded_cases == 0
    with pytest.raises(ValueError, match="no case"):
        without_excluded(_arrays(["a", "d"]), None, exclusion)


def test_not_a_holdout_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"seed": 1}')
    with pytest.raises(ValueError, match="'groups' list"):
        read_excluded_groups([tmp_path / "bad.json"])


def test_a_run_resumes_only_with_its_own_exclusion(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = read_excluded_groups([_holdout(tmp_path / "h.json", ["a", "b"])])
    record_exclusion(run, first)
    assert json.loads((run / EXCLUSION_FILE).read_text())["groups"] == ["a", "b"]
    assert run_exclusion(run).digest == first.digest
    record_exclusion(run, first)  # the same: resumes
    other = read_excluded_groups([_holdout(tmp_path / "o.json", ["a"])])
    with pytest.raises(ValueError, match="another exclusion"):
        record_exclusion(run, other)
    old = tmp_path / "old-run"  # trained before exclusion.json existed: nothing excluded
    (old / "fold_0").mkdir(parents=True)
    record_exclusion(old, no_exclusion())
    with pytest.raises(ValueError, match="nothing excluded"):
        record_exclusion(old, first)
    assert run_exclusion(old).groups == frozenset()


def test_holdout_naming_patient_ids_in_clear_leaves_their_keyed_cases_records_the_keys(
    tmp_path: Path,
) -> None:
    """A holdout.json written before groups were keyed names PatientIDs; the cases of a dataset
    built now carry keys. The hold-out matched nothing and trained on (found last session)."""
    from training.groups import GroupKey

    key = GroupKey(b"site secret")
    legacy_key = key.legacy
    keys = [legacy_key("P1"), legacy_key("P1"), legacy_key("P2"), "1.2.9"]
    old = read_excluded_groups([_holdout(tmp_path / "old.json", ["P1", "1.2.9", "P7"])])
    kept, _, counted = without_excluded(_arrays(keys), None, old, key.legacy)
    assert kept.names.tolist() == ["case2"]
    assert counted.excluded_cases == 3 and counted.unmatched_groups == 1
    assert counted.groups == {legacy_key("P1"), "1.2.9", "P7"}  # P1 goes no further in clear
    again = without_excluded(_arrays(keys), None, counted, key.legacy)  # a resumed run
    assert again[2].digest == counted.digest and again[0].names.tolist() == ["case2"]
    old_dataset = without_excluded(_arrays(["P1", "P2"]), None, old, key.legacy)  # old manifest
    assert old_dataset[0].names.tolist() == ["case1"] and old_dataset[2].digest == old.digest


def test_the_shipped_ynet_busi_holdout_still_excludes_its_image_groups_digest_unchanged() -> None:
    """busi-dev groups are image names, not patients: keyed groups must not change them."""
    from tests.support.paths import REPO
    from training.exclusion import model_holdout

    holdout = model_holdout(REPO / "inference" / "models" / "ynet-busi")
    named = sorted(holdout.groups)[:3]
    arrays = _arrays([named[0], "benign/not-held (1).png", named[1], named[2], named[0]])
    kept, _, counted = without_excluded(arrays, None, holdout)
    assert kept.names.tolist() == ["case1"] and counted.excluded_cases == 4
    assert counted.groups == holdout.groups and counted.digest == holdout.digest
    assert counted.unmatched_groups == len(holdout.groups) - 3
