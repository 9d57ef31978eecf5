"""Limits enforced while a dataset arrives (dicom_node.stream_guard), through real associations:
a refused instance never piles up in spool/tmp, the association goes on with the next
instance, and a sender killed mid-transfer leaves no partial file behind."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node import statuses
from dicom_node.scu import echo, store_files
from phantom.us_dicom import make_us_dataset
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.network import wait_until
from tests.support.raw_store import send_raw
from tests.support.storescu import run_storescu

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MIB = 1024**2


def _large_file(folder: Path, megabytes: int, seed: int) -> Path:
    """A US multi-frame instance of about ``megabytes`` MiB (1 MiB frames of 1024 x 1024)."""
    ds, _, _ = make_us_dataset(seed=seed, rows=16, cols=16, frames=2)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 1024, 1024, megabytes
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = bytes(megabytes * MIB)
    path = folder / f"large-{megabytes}-{seed}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@contextmanager
def _peak_bytes(folder: Path) -> Iterator[list[int]]:
    """Sample the bytes of the files in ``folder`` every few milliseconds; yields [peak]."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total = 0
            for path in list(folder.iterdir()):
                try:
                    total += path.stat().st_size
                except FileNotFoundError:
                    continue
            peak[0] = max(peak[0], total)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def start(
    make_node: Callable[..., Node], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Node]:
    """Start an SCP that receives into its spool's tmp/ as the node does (``receive_into``:
    the process's temporary folder, restored after the test)."""

    def start_node(**overrides: object) -> Node:
        node = make_node(**overrides)
        monkeypatch.setattr(tempfile, "tempdir", str(node.spool.tmp_dir))
        return node

    return start_node


def _incoming(node: Node) -> list[Path]:
    return list(node.spool.root.glob("incoming/*/*/*.dcm"))


def test_scp_oversized_instance_refused_c001_while_arriving_then_next_stored(
    start: Callable[..., Node], phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    node = start(max_instance_bytes=8 * MIB)
    large = _large_file(tmp_path, 40, seed=1)
    with _peak_bytes(node.spool.tmp_dir) as peak:
        results = store_files(node.destination, [large, phantom_files["explicit_le"]], CALLING_AE)
    assert [result.status for result in results] == [statuses.INSTANCE_TOO_LARGE, statuses.SUCCESS]
    assert MIB < peak[0] <= 2 * 8 * MIB, f"{peak[0]} bytes in spool/tmp for an 8 MiB limit"
    [record] = node.spool.quarantined()
    assert "exceeds max_instance_bytes 8388608" in str(record["reason"])
    assert "file" not in record
    assert [path.stem for path in _incoming(node)] == [
        str(dcmread(phantom_files["explicit_le"]).SOPInstanceUID)
    ]
    assert list(node.spool.tmp_dir.iterdir()) == []


def test_scp_oversized_instance_from_dcmtk_storescu_refused_c001_tmp_bounded(
    start: Callable[..., Node], phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    node = start(max_instance_bytes=8 * MIB)
    large = _large_file(tmp_path, 40, seed=2)
    with _peak_bytes(node.spool.tmp_dir) as peak:
        outcomes = run_storescu(node.port, [large])
    assert outcomes[large] == "Error: CannotUnderstand", outcomes  # storescu's name for 0xC0xx
    assert MIB < peak[0] <= 2 * 8 * MIB, f"{peak[0]} bytes in spool/tmp for an 8 MiB limit"
    [record] = node.spool.quarantined()
    assert record["status"] == "0xC001"
    assert list(node.spool.tmp_dir.iterdir()) == []
    small = phantom_files["explicit_le"]
    assert run_storescu(node.port, [small])[small].startswith("Success"), "node still receives"


def test_scp_disk_below_watermark_refused_a700_before_bytes_are_written(
    start: Callable[..., Node], tmp_path: Path
) -> None:
    node = start(min_free_disk_bytes=10**18)
    large = _large_file(tmp_path, 20, seed=3)
    with _peak_bytes(node.spool.tmp_dir) as peak:
        [result] = store_files(node.destination, [large], CALLING_AE)
    assert result.status == statuses.OUT_OF_RESOURCES
    assert peak[0] < MIB, f"{peak[0]} bytes written although the disk is below the watermark"
    assert node.spool.quarantined() == []
    assert _incoming(node) == []


def test_scp_in_memory_receive_oversized_refused_c001(
    start: Callable[..., Node], phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    node = start(chunked=False, max_instance_bytes=8 * MIB)
    results = store_files(
        node.destination, [_large_file(tmp_path, 24, seed=4), phantom_files["rle"]], CALLING_AE
    )
    assert [result.status for result in results] == [statuses.INSTANCE_TOO_LARGE, statuses.SUCCESS]


def test_scp_refused_dataset_beyond_drain_limit_aborts_association(
    start: Callable[..., Node], tmp_path: Path
) -> None:
    node = start(max_instance_bytes=1 * MIB)  # drained up to 16 MiB, then aborted
    large = _large_file(tmp_path, 24, seed=5)
    assert send_raw(node.destination, [large], CALLING_AE) == [None]  # no answer: aborted
    wait_until(lambda: not list(node.spool.tmp_dir.iterdir()), timeout=5, what="an empty tmp/")
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS


#: a sender that sends the first PDUs of a C-STORE, then stalls (until it is killed)
_STALLING_SENDER = textwrap.dedent(
    """
    import sys, time
    from pynetdicom import AE
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom.presentation import build_context
    port, path = int(sys.argv[1]), sys.argv[2]
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.3.1", ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="LNMNODE")
    assert assoc.is_established
    send, sent = assoc.dul.send_pdu, [0]
    def stalling(primitive):
        send(primitive)
        sent[0] += 1
        if sent[0] > 8:
            print("stalled", flush=True)
            time.sleep(3600)
    assoc.dul.send_pdu = stalling
    assoc.send_c_store(path)
    """
)


def test_scp_sender_killed_mid_transfer_partial_file_gone_within_seconds(
    start: Callable[..., Node], tmp_path: Path
) -> None:
    node = start()
    large = _large_file(tmp_path, 32, seed=6)
    sender = subprocess.Popen(
        [sys.executable, "-c", _STALLING_SENDER, str(node.port), str(large)],
        stdout=subprocess.PIPE,
    )
    try:
        def partial() -> bool:
            return any(p.stat().st_size > 4 * MIB for p in node.spool.tmp_dir.iterdir())

        wait_until(partial, timeout=30, what="a partial file in spool/tmp")
    finally:
        sender.kill()
        sender.wait(timeout=10)
    killed = time.monotonic()
    wait_until(
        lambda: not list(node.spool.tmp_dir.iterdir()), timeout=5, what="the partial file gone"
    )
    assert time.monotonic() - killed < 5
    assert _incoming(node) == []
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS
