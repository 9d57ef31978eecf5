"""Bad input and failures: each gets its status, the quarantine keeps the reason, the node
keeps answering C-ECHO, and instances stored before stay stored."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    UltrasoundImageStorage,
)
from pynetdicom import AE, _config
from pynetdicom.presentation import build_context
from sqlalchemy.orm import sessionmaker

from db.session import make_engine
from db.views import instance_rows
from dicom_node import statuses
from dicom_node.scu import StoreResult, echo, send_instances, store_files
from phantom.us_dicom import make_us_dataset
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.storescu import run_storescu

pytestmark = pytest.mark.integration


def _write(folder: Path, name: str, ds: Dataset) -> Path:
    path = folder / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _phantom(seed: int, **kwargs: object) -> Dataset:
    ds, _, _ = make_us_dataset(seed=seed, rows=48, cols=64, **kwargs)  # type: ignore[arg-type]
    return ds


@pytest.fixture
def stored_first(node: Node, phantom_files: dict[str, Path]) -> Iterator[Path]:
    """One instance stored before the bad input arrives; checks it survives and echo works."""
    file = phantom_files["explicit_le"]
    assert set(send_instances(node.destination, [file], CALLING_AE).values()) == {0}
    yield file
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS
    with node.sessions() as session:
        rows = instance_rows(session)
    assert _uid(file) in [row["sop_instance_uid"] for row in rows]
    assert Path(next(node.spool.root.glob(f"incoming/*/*/{_uid(file)}.dcm"))).is_file()


def _uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _send_one(node: Node, path: Path) -> int | None:
    return _answer(node, path).status


def _answer(node: Node, path: Path) -> StoreResult:
    """The node's answer to ``path``: its status and Error Comment (``error``)."""
    [result] = store_files(node.destination, [path], CALLING_AE)
    return result


def _incoming(node: Node) -> list[Path]:
    return sorted(node.spool.root.glob("incoming/*/*/*.dcm"))


def _only_quarantine_record(node: Node) -> dict[str, object]:
    [record] = node.spool.quarantined()
    assert record["calling_ae_title"] == CALLING_AE
    assert "PatientName" not in str(record) and "SYN" not in str(record)
    return record


def test_scp_missing_study_uid_refused_a900_quarantined(
    node: Node, stored_first: Path, tmp_path: Path
) -> None:
    ds = _phantom(1)
    del ds.StudyInstanceUID
    answer = _answer(node, _write(tmp_path, "no-study", ds))
    assert (answer.status, answer.error) == (0xA900, "StudyInstanceUID is missing")
    record = _only_quarantine_record(node)
    assert record["reason"] == "StudyInstanceUID is missing"  # the sender reads it too
    assert record["status"] == "0xA900"
    assert (node.spool.quarantine_dir / str(record["file"])).stat().st_size > 0


def test_scp_garbage_jpeg_fragment_refused_c210_quarantined(
    node: Node, stored_first: Path, tmp_path: Path
) -> None:
    ds = _phantom(2, transfer_syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([b"\xff\xd8" + b"not a jpeg" * 100])
    answer = _answer(node, _write(tmp_path, "garbage", ds))
    assert answer.status == statuses.CANNOT_UNDERSTAND
    assert answer.error is not None and answer.error.startswith("pixel data does not decode")
    assert len(answer.error) <= 64  # an LO
    record = _only_quarantine_record(node)
    assert str(record["reason"]).startswith("pixel data does not decode")
    assert record["sop_class_uid"] == ds.SOPClassUID
    assert record["transfer_syntax_uid"] == JPEGBaseline8Bit


def test_scp_truncated_file_refused_c210_quarantined(
    node: Node, stored_first: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _write(tmp_path, "whole", _phantom(3, frames=3))
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(whole.read_bytes()[:-5000])
    # send the raw bytes as they are (pynetdicom would otherwise parse and re-encode them)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title=CALLING_AE)
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="LNMNODE",
        contexts=[build_context(_phantom(3, frames=3).SOPClassUID, [ExplicitVRLittleEndian])],
    )
    assert assoc.is_established
    answer = assoc.send_c_store(truncated)
    assoc.release()
    assert answer.Status == statuses.CANNOT_UNDERSTAND
    record = _only_quarantine_record(node)
    assert "less than expected" in str(record["reason"])
    kept = (node.spool.quarantine_dir / str(record["file"])).stat().st_size
    assert kept > truncated.stat().st_size - 500  # the received bytes, with fresh file meta


def test_scp_ct_image_context_rejected_not_stored(
    node: Node, stored_first: Path, tmp_path: Path
) -> None:
    ds = _phantom(4)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ct = _write(tmp_path, "ct", ds)
    us = _write(tmp_path, "us", _phantom(5))
    ae = AE(ae_title=CALLING_AE)
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="LNMNODE",
        contexts=[build_context(CTImageStorage), build_context(UltrasoundImageStorage)],
    )
    assert assoc.is_established
    [rejected] = assoc.rejected_contexts
    assert (rejected.abstract_syntax, rejected.result) == (CTImageStorage, 0x03)
    assoc.release()
    # our SCU reports the file the peer does not take; the other file of the send is stored
    results = store_files(node.destination, [ct, us], CALLING_AE)
    assert [r.status for r in results] == [statuses.SOP_CLASS_NOT_SUPPORTED, statuses.SUCCESS]
    assert run_storescu(node.port, [ct]) == {ct: "F: No Acceptable Presentation Contexts"}
    assert node.spool.quarantined() == []  # no bytes ever arrived
    assert len(_incoming(node)) == 2


def test_scp_unknown_calling_ae_with_allowlist_rejected_113(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    node = make_node(calling_ae_allowlist=[CALLING_AE])
    ae = AE(ae_title="INTRUDER")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", node.port, ae_title="LNMNODE")
    assert assoc.is_rejected
    primitive = assoc.acceptor.primitive
    assert (primitive.result, primitive.result_source, primitive.diagnostic) == (1, 1, 3)
    [outcome] = run_storescu(node.port, [phantom_files["rle"]], calling_ae="INTRUDER").values()
    assert outcome == "F: Reason: Calling AE Title Not Recognized"
    assert set(send_instances(node.destination, [phantom_files["rle"]], CALLING_AE).values()) == {0}


def test_scp_wrong_called_ae_rejected_117(node: Node, stored_first: Path) -> None:
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", node.port, ae_title="SOMEONEELSE")
    assert assoc.is_rejected
    primitive = assoc.acceptor.primitive
    assert (primitive.result, primitive.result_source, primitive.diagnostic) == (1, 1, 7)


def test_scp_instance_too_large_refused_c001_reason_kept(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    node = make_node(max_instance_bytes=4096)
    answer = _answer(node, phantom_files["explicit_le"])
    assert answer.status == statuses.INSTANCE_TOO_LARGE
    assert "exceeds max_instance_bytes 4096" in str(answer.error)
    record = _only_quarantine_record(node)
    assert "exceeds max_instance_bytes 4096" in str(record["reason"])
    assert "file" not in record  # the bytes are not kept: they could fill the disk
    assert _incoming(node) == []
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS


def test_scp_disk_below_minimum_refused_a700_nothing_kept(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    node = make_node(min_free_disk_bytes=10**18)
    assert _send_one(node, phantom_files["explicit_le"]) == statuses.OUT_OF_RESOURCES
    assert node.spool.quarantined() == []
    assert _incoming(node) == []
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS


def test_scp_database_unavailable_refused_a700_no_success(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    # a PostgreSQL URL on a loopback port nothing listens on: every connection is refused
    closed = sessionmaker(
        make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none"), expire_on_commit=False
    )
    node = make_node(sessions=closed)
    file = phantom_files["jpeg_ls"]
    answer = _answer(node, file)
    assert answer.status == statuses.OUT_OF_RESOURCES
    assert str(answer.error).startswith("database error")
    record = _only_quarantine_record(node)
    assert str(record["reason"]).startswith("database error")
    assert record["status"] == "0xA700"
    assert _incoming(node) == []  # no file without its row
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS


def test_scp_spool_write_fails_refused_a700_quarantined(
    node: Node, phantom_files: dict[str, Path]
) -> None:
    incoming = node.spool.root / "incoming"
    incoming.rmdir()
    incoming.write_text("a file where the incoming folder should be")  # every write fails
    assert _send_one(node, phantom_files["rle"]) == statuses.OUT_OF_RESOURCES
    record = _only_quarantine_record(node)
    assert str(record["reason"]).startswith("spool write failed")
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS


def test_cli_send_prints_each_files_status_and_the_nodes_reason(
    node: Node, phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    ds = _phantom(5)
    del ds.StudyInstanceUID
    bad = _write(tmp_path, "no-study[1]", ds)  # brackets: no markup is read in a file name
    good = phantom_files["explicit_le"]
    to = f"LNMNODE@127.0.0.1:{node.port}"
    sent = subprocess.run(
        [sys.executable, "-m", "cli.main", "send", str(bad), str(good), "--to", to,
         "--calling-ae", CALLING_AE],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert sent.returncode == 1, sent.stdout + sent.stderr
    lines = sent.stdout.splitlines()
    assert f"failed {bad}: 0xA900 Failure (StudyInstanceUID is missing)" in lines
    assert f"ok {good}: 0x0000 Success" in lines
    assert lines[-1] == "1 sent, 1 failed"
