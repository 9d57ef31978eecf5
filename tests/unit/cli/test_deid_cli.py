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


def _batch(folder: Path, seed: int) -> None:
    """One instance of the patient MRN-4711-0815 (the same patient in every batch)."""
    import pydicom

    from phantom.us_dicom import write_us_study

    for path in write_us_study(folder, seed=seed, count=1):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = "MRN-4711-0815", "Doe^Jane"
        ds.save_as(path)


def _run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["deidentify", *args], env={"COLUMNS": "200", **(env or {})})


def test_deidentify_key_file_same_pseudonym_across_batches_key_never_exported(
    tmp_path: Path,
) -> None:
    """Without a key each run drew a random one: the same patient had another pseudonym in every
    batch."""
    import pydicom

    _batch(tmp_path / "in1", seed=3)
    _batch(tmp_path / "in2", seed=4)
    key = tmp_path / "keys" / "deid.key"
    key.parent.mkdir()
    first = _run(str(tmp_path / "in1"), str(tmp_path / "out1"), "--key-file", str(key))
    assert first.exit_code == 0, first.output
    assert f"new key written to {key} (0600)" in first.output
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    second = _run(str(tmp_path / "in2"), str(tmp_path / "out2"), "--key-file", str(key))
    assert second.exit_code == 0, second.output
    assert "new key" not in second.output
    outputs = [*(tmp_path / "out1").rglob("*.dcm"), *(tmp_path / "out2").rglob("*.dcm")]
    assert len(outputs) == 2
    assert len({pydicom.dcmread(p).PatientID for p in outputs}) == 1
    secret = key.read_text().strip().encode()
    assert not any(secret in p.read_bytes() for p in outputs)


@pytest.mark.parametrize(
    ("extra", "env", "told"),
    [
        (["--key-file", "{out}/deid.key"], {}, "the key file must not be inside OUT"),
        (["--key-file", "{tmp}/k", "--uid-secret-stdin"], {}, "give one key"),
        (
            ["--key-file", "{tmp}/k"],
            {"LNM_DEID_UID_SECRET": "k" * 32},
            "LNM_DEID_UID_SECRET is set",
        ),
        (["--uid-map", "{out}/map.csv"], {}, "the UID map is inside OUT"),
        (["--uid-map", "{tmp}/exists.csv"], {}, "exists: a UID map is never overwritten"),
    ],
)
def test_deidentify_key_or_map_placed_where_it_would_leak_refused_exit_2_nothing_written(
    tmp_path: Path, extra: list[str], env: dict[str, str], told: str
) -> None:
    _batch(tmp_path / "in", seed=3)
    (tmp_path / "exists.csv").write_text("original_uid,deidentified_uid\n")
    out = tmp_path / "out"
    args = [a.format(out=out, tmp=tmp_path) for a in extra]
    result = _run(str(tmp_path / "in"), str(out), *args, env=env)
    assert result.exit_code == 2, result.output
    assert told in result.output
    assert not out.exists()


def test_deidentify_uid_map_traces_each_output_to_its_source_0600(tmp_path: Path) -> None:
    import csv

    import pydicom

    _batch(tmp_path / "in", seed=3)
    source = pydicom.dcmread(next((tmp_path / "in").rglob("*.dcm")))
    result = _run(str(tmp_path / "in"), str(tmp_path / "out"), "--uid-map",
                  str(tmp_path / "site" / "map.csv"), env={"LNM_DEID_UID_SECRET": "k" * 32})  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(tmp_path / "site" / "map.csv", newline="") as stream:
        rows = dict(csv.reader(stream))
    assert oct((tmp_path / "site" / "map.csv").stat().st_mode & 0o777) == "0o600"
    output = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert rows["original_uid"] == "deidentified_uid"
    assert rows[source.SOPInstanceUID] == output.SOPInstanceUID
    assert rows[source.StudyInstanceUID] == output.StudyInstanceUID
    inside = _run(str(tmp_path / "in"), str(tmp_path / "out2"), "--uid-map",
                  str(tmp_path / "out2" / "map.csv"), "--uid-map-in-output")  # fmt: skip
    assert inside.exit_code == 0, inside.output
    assert (tmp_path / "out2" / "map.csv").exists()
