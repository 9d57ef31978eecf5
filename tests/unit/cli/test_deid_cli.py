"""`lnm-node deidentify` through typer's runner: a source without DICOM is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("files", "told"),
    [
        (["notes.txt"], "{source} is not a DICOM file"),
        (["a/notes.txt", "b.png"], "no DICOM file in {source}: 2 other file(s)"),
        ([], "no DICOM file in {source}: no file at all"),
    ],
)
def test_deidentify_source_without_dicom_exits_1_saying_so(
    tmp_path: Path, files: list[str], told: str
) -> None:
    """It said "0 written, 0 withheld, 1 skipped, 0 failed" and exited 0."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("not DICOM")
    source = folder / files[0] if len(files) == 1 else folder
    result = runner.invoke(app, ["deidentify", str(source), str(tmp_path / "out")],
                           env={"LNM_DEID_UID_SECRET": "k" * 32, "COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 1, result.output
    assert told.format(source=source) in result.output.splitlines()
    assert not (tmp_path / "out").exists()


def test_deidentify_uid_secret_stdin_empty_is_a_usage_error_exit_2(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = runner.invoke(app, ["deidentify", str(tmp_path / "in"), str(tmp_path / "out"),
                                 "--uid-secret-stdin"], input="\n", env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--uid-secret-stdin: standard input gave no key" in result.output
    assert not (tmp_path / "out").exists()


def test_deidentify_raw_dataset_without_preamble_written_exit_0(tmp_path: Path) -> None:
    """A dataset without preamble, DICM prefix or file meta (old archives) was called "not a
    DICOM file" (exit 1)."""
    from phantom.us_dicom import make_us_dataset

    ds, _, _ = make_us_dataset(seed=4, rows=64, cols=80)
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    data = (tmp_path / "a.dcm").read_bytes()
    (tmp_path / "IM0001").write_bytes(data[144 + int.from_bytes(data[140:144], "little") :])
    result = runner.invoke(app, ["deidentify", str(tmp_path / "IM0001"), str(tmp_path / "out")],
                           env={"LNM_DEID_UID_SECRET": "k" * 32, "COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 written, 0 withheld, 0 skipped, 0 failed" in result.output
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1
