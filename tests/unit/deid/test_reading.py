"""Raw datasets (no preamble, no DICM prefix, no file meta: old archives) are de-identified like
DICOM files; other bytes are still skipped."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from deid.files import deidentify_tree
from deid.options import DeidOptions
from deid.reading import read_instance
from phantom.us_dicom import make_us_dataset
from tests.support.paths import shared_data

SECRET = "test-secret"


def _raw(source: Path, target: Path) -> None:
    """The bytes of ``source`` after its preamble, DICM prefix and file meta group."""
    data = source.read_bytes()
    assert data[128:132] == b"DICM"
    meta_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL, explicit VR LE
    target.write_bytes(data[144 + meta_length :])


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_read_instance_raw_dataset_read_with_its_transfer_syntax(tmp_path: Path, syntax) -> None:  # type: ignore[no-untyped-def]
    ds, _, _ = make_us_dataset(seed=4, rows=64, cols=80, transfer_syntax=syntax)
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    _raw(tmp_path / "a.dcm", tmp_path / "raw")
    read = read_instance(tmp_path / "raw")
    assert read.file_meta.TransferSyntaxUID == syntax
    assert read.SOPInstanceUID == ds.SOPInstanceUID
    assert (read.pixel_array == ds.pixel_array).all()


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, ExplicitVRLittleEndian])
def test_read_instance_file_meta_without_preamble_keeps_its_transfer_syntax(
    tmp_path: Path, syntax: str
) -> None:
    """No preamble and no DICM prefix, but file meta: its transfer syntax holds, even compressed."""
    ds, _, _ = make_us_dataset(seed=4, rows=64, cols=80, transfer_syntax=syntax)
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    (tmp_path / "raw").write_bytes((tmp_path / "a.dcm").read_bytes()[132:])
    read = read_instance(tmp_path / "raw")
    assert read.file_meta.TransferSyntaxUID == syntax
    assert read.pixel_array.shape == ds.pixel_array.shape


@pytest.mark.parametrize("content", [b"\x08\x00 not a dataset at all", b"plain text", b""])
def test_read_instance_other_bytes_not_dicom(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x").write_bytes(content)
    with pytest.raises(InvalidDicomError):
        read_instance(tmp_path / "x")


def test_deidentify_raw_datasets_written_not_skipped(tmp_path: Path) -> None:
    """They were reported "skipped" as not DICOM (the CLI: "no DICOM file in ...")."""
    (tmp_path / "in").mkdir()
    for seed, syntax in ((4, ImplicitVRLittleEndian), (5, ExplicitVRLittleEndian)):
        ds, _, _ = make_us_dataset(seed=seed, rows=64, cols=80, transfer_syntax=syntax)
        ds.save_as(tmp_path / f"{seed}.dcm", enforce_file_format=True)
        _raw(tmp_path / f"{seed}.dcm", tmp_path / "in" / f"IM{seed:04d}")
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", SECRET)
    assert report.skipped == [tmp_path / "in" / "notes.txt"]
    assert len(report.written) == 2 and not report.failed and not report.withheld
    for output in report.written:
        assert output.suffix == ".dcm" and output.read_bytes()[128:132] == b"DICM"
        assert output.stem == pydicom.dcmread(output).SOPInstanceUID


def _errors(path: Path) -> int:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60,
                         check=False)  # fmt: skip
    return sum(line.startswith("Error") for line in (out.stdout + out.stderr).splitlines())


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    [
        "orthanc_tests/Implicit-vr-us-palette.dcm",
        "pydicom_data/US1_UNCR.dcm",
        "pydicom_wheel/ExplVR_BigEnd.dcm",
    ],
)
def test_deidentify_real_file_as_raw_dataset_written_and_dciodvfy_not_worse(
    tmp_path: Path, name: str
) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    source = shared_data("us-dicom", name)
    (tmp_path / "in").mkdir()
    _raw(source, tmp_path / "in" / "raw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = deidentify_tree(
            tmp_path / "in", tmp_path / "out", SECRET, DeidOptions(keep_unmasked=True)
        )
    assert len(report.written) == 1, report
    syntax = pydicom.dcmread(source, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert pydicom.dcmread(report.written[0]).file_meta.TransferSyntaxUID == syntax
    assert _errors(report.written[0]) <= _errors(source)
