"""Our SCU against our SCP: statuses, exceptions that carry policy, per-file reports."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from dicom_node import statuses
from dicom_node.scu import echo, send_instances
from dicom_node.send import send_paths
from kernel.errors import InvalidInput, PeerRejected, TransientError
from kernel.settings import Destination
from phantom.us_dicom import make_us_dataset
from tests.integration.dicom_node.helpers import CALLING_AE, Node

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _garbage_jpeg(folder: Path) -> Path:
    ds, _, _ = make_us_dataset(seed=77, rows=32, cols=32, transfer_syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([b"\xff\xd8" + b"garbage" * 40])
    path = folder / "garbage.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_send_instances_phantom_files_returns_uid_to_success(
    node: Node, phantom_files: dict[str, Path]
) -> None:
    files = [phantom_files["rle"], phantom_files["jpeg_2000"]]
    result = send_instances(node.destination, files, CALLING_AE)
    assert result == {dcmread(p).SOPInstanceUID: statuses.SUCCESS for p in files}


def test_send_instances_closed_port_raises_transient(phantom_files: dict[str, Path]) -> None:
    destination = Destination(ae_title="NOBODY", host="127.0.0.1", port=_closed_port())
    with pytest.raises(TransientError, match=r"aborted: cannot connect \(Connection refused\)"):
        send_instances(destination, [phantom_files["rle"]], CALLING_AE, timeout=5)


def test_send_instances_peer_that_never_answers_says_so_without_a_second_wait(
    phantom_files: dict[str, Path],
) -> None:
    """The kernel completes the TCP handshake of a socket that never accepts; no A-ASSOCIATE
    answer comes. The reason is told from the time spent, not by probing (which, against a
    peer that drops packets, waited up to 5 s more)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        destination = Destination(ae_title="SILENT", host="127.0.0.1", port=silent.getsockname()[1])
        with pytest.raises(TransientError, match=r"(aborted|failed): no answer within 1 s"):
            send_instances(destination, [phantom_files["rle"]], CALLING_AE, timeout=1)


def test_send_instances_calling_ae_not_allowed_raises_transient(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    node = make_node(calling_ae_allowlist=["OTHER"])
    with pytest.raises(TransientError, match="rejected"):
        send_instances(node.destination, [phantom_files["rle"]], CALLING_AE)


def test_send_instances_store_refused_raises_peer_rejected_with_status(
    node: Node, phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    files = [_garbage_jpeg(tmp_path), phantom_files["rle"]]
    with pytest.raises(PeerRejected) as caught:
        send_instances(node.destination, files, CALLING_AE)
    assert caught.value.status == statuses.CANNOT_UNDERSTAND
    assert "pixel data does not decode" in str(caught.value)  # the peer's Error Comment
    assert "stored 1 of 2 instances, refused garbage.dcm" in str(caught.value)
    # the refusal did not stop the sending: the next file is stored
    stored = [dcmread(p).SOPInstanceUID for p in node.spool.root.glob("incoming/*/*/*.dcm")]
    assert stored == [dcmread(phantom_files["rle"]).SOPInstanceUID]


def test_send_instances_class_the_peer_does_not_take_others_still_stored(
    phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    """A PACS without a context for one output's class (SEG here) gets the others (the SR is
    the result itself); the refusal is 0x0122, permanent: a configuration to fix, not retried."""
    from pydicom.uid import RLELossless, SegmentationStorage, UltrasoundImageStorage
    from pynetdicom import AE, evt

    stored: list[str] = []

    def on_store(event):  # type: ignore[no-untyped-def]
        stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    peer = AE(ae_title="NOSEG")
    peer.add_supported_context(UltrasoundImageStorage, [RLELossless])
    server = peer.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        segmentation = dcmread(phantom_files["rle"])
        segmentation.SOPClassUID = segmentation.file_meta.MediaStorageSOPClassUID = SegmentationStorage
        segmentation.SOPInstanceUID = segmentation.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
        seg_path = tmp_path / "seg.dcm"
        segmentation.save_as(seg_path, enforce_file_format=True)
        destination = Destination(ae_title="NOSEG", host="127.0.0.1", port=server.server_address[1])
        with pytest.raises(PeerRejected) as caught:
            send_instances(destination, [seg_path, phantom_files["rle"]], CALLING_AE)
    finally:
        server.shutdown()
    assert caught.value.status == statuses.SOP_CLASS_NOT_SUPPORTED
    assert statuses.is_permanent_failure(caught.value.status)
    assert "stored 1 of 2 instances, refused seg.dcm (1.2.3.4.5): 0x0122" in str(caught.value)
    assert stored == [dcmread(phantom_files["rle"]).SOPInstanceUID]


def test_send_instances_not_dicom_raises_invalid_input(node: Node, tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(InvalidInput):
        send_instances(node.destination, [tmp_path / "readme.txt"], CALLING_AE)


def test_echo_running_scp_returns_success(node: Node) -> None:
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS


def test_echo_closed_port_raises_transient() -> None:
    destination = Destination(ae_title="NOBODY", host="127.0.0.1", port=_closed_port())
    with pytest.raises(TransientError):
        echo(destination, CALLING_AE, timeout=5)


def test_send_paths_folder_with_mixed_files_reports_each_file(
    node: Node, phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "study"
    (folder / "sub").mkdir(parents=True)
    good = folder / "sub" / "a.dcm"
    good.write_bytes(phantom_files["jpeg_ls"].read_bytes())
    (folder / "notes.txt").write_text("not DICOM")
    (folder / ".hidden.dcm").write_bytes(phantom_files["rle"].read_bytes())
    bad = _garbage_jpeg(tmp_path)
    report = send_paths(node.destination, [folder, bad], CALLING_AE)
    outcome = {r.path.name: (r.status, r.ok) for r in report.results}
    assert outcome == {
        "notes.txt": (None, False),
        "a.dcm": (statuses.SUCCESS, True),
        "garbage.dcm": (statuses.CANNOT_UNDERSTAND, False),
    }
    assert report.sent == 1
    assert {r.path.name for r in report.failed} == {"notes.txt", "garbage.dcm"}


def test_send_paths_missing_path_raises_file_not_found(node: Node, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        send_paths(node.destination, [tmp_path / "absent"], CALLING_AE)
