"""The key file and the UID map: owner-only files, a key reused across batches, nothing
overwritten."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest

from deid.sensitive import SensitiveFileError, load_or_create_key, write_uid_map


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_load_or_create_key_absent_created_0600_then_the_same_key_read_back(
    tmp_path: Path,
) -> None:
    key, created = load_or_create_key(tmp_path / "deid.key")
    assert created and len(key) == 64
    assert _mode(tmp_path / "deid.key") == 0o600
    assert load_or_create_key(tmp_path / "deid.key") == (key, False)
    assert [p.name for p in tmp_path.iterdir()] == ["deid.key"]  # no partial file left


def test_load_or_create_key_stale_partial_of_a_killed_run_does_not_block(tmp_path: Path) -> None:
    (tmp_path / ".deid.key.partial").write_text("half")
    key, created = load_or_create_key(tmp_path / "deid.key")
    assert created and (tmp_path / "deid.key").read_text() == key + "\n"


@pytest.mark.parametrize(("content", "mode", "told"), [
    ("k" * 32 + "\n", 0o644, "can be read or written by others (mode 0644): chmod 600"),
    ("k" * 32 + "\n", 0o620, "can be read or written by others (mode 0620)"),
    ("\n", 0o600, "holds no key"),
    ("", 0o600, "holds no key"),
])  # fmt: skip
def test_load_or_create_key_others_may_read_or_empty_refused(
    tmp_path: Path, content: str, mode: int, told: str
) -> None:
    path = tmp_path / "deid.key"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(SensitiveFileError, match=told.replace("(", r"\(").replace(")", r"\)")):
        load_or_create_key(path)


def test_write_uid_map_csv_sorted_0600_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    write_uid_map(path, {"1.2.3.9": "2.25.9", "1.2.3.1": "2.25.1"})
    assert _mode(path) == 0o600
    with open(path, newline="") as stream:
        assert list(csv.reader(stream)) == [
            ["original_uid", "deidentified_uid"], ["1.2.3.1", "2.25.1"], ["1.2.3.9", "2.25.9"]]  # fmt: skip
    with pytest.raises(SensitiveFileError, match="never overwritten"):
        write_uid_map(path, {})
    assert path.read_text().count("\n") == 3
