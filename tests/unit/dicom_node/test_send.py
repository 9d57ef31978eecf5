from pathlib import Path

import pytest

from dicom_node.send import collect_files


def test_collect_files_folder_and_file_sorted_without_hidden(tmp_path: Path) -> None:
    (tmp_path / "b" / ".git").mkdir(parents=True)
    for name in ("b/2.dcm", "b/1.dcm", "b/.git/x", "b/.hidden", "c.dcm"):
        (tmp_path / name).write_bytes(b"x")
    files = collect_files([tmp_path / "b", tmp_path / "c.dcm", tmp_path / "b" / "1.dcm"])
    assert files == [tmp_path / "b" / "1.dcm", tmp_path / "b" / "2.dcm", tmp_path / "c.dcm"]


def test_collect_files_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent"):
        collect_files([tmp_path / "absent"])


def test_collect_files_export_folder_without_its_dicomdir(tmp_path: Path) -> None:
    """A modality or CD export: DICOMDIR indexes the instances; it is not sent as one."""
    (tmp_path / "export" / "IMG").mkdir(parents=True)
    for name in ("export/DICOMDIR", "export/IMG/IM1", "export/IMG/IM2"):
        (tmp_path / name).write_bytes(b"x")
    assert collect_files([tmp_path / "export"]) == [
        tmp_path / "export" / "IMG" / "IM1",
        tmp_path / "export" / "IMG" / "IM2",
    ]
