"""Memory per association (dicom_node.memory_budget, the per-frame sample limit): an 8192 x 8192
JPEG of about a megabyte does not make the SCP process decode a 200 MB frame; checks larger
than the memory budget run one at a time, and all are stored."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import encapsulate

from dicom_node import statuses
from dicom_node.scu import store_files
from kernel.settings import Destination
from phantom.us_dicom import make_us_dataset
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.network import wait_until
from tests.support.node import start_node

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SIDE = 8192


def _huge_jpeg(template: Path, folder: Path) -> Path:
    """The phantom's colour JPEG instance with one 8192 x 8192 frame (a smooth gradient)."""
    ds = dcmread(template)
    small = Image.linear_gradient("L").resize((SIDE, SIDE))
    image = Image.merge("RGB", (small, small.transpose(Image.Transpose.ROTATE_90), small))
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    ds.Rows = ds.Columns = SIDE
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.SequenceOfUltrasoundRegions[0].RegionLocationMaxX1 = SIDE - 1
    ds.SequenceOfUltrasoundRegions[0].RegionLocationMaxY1 = SIDE - 1
    path = folder / "huge-jpeg.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_scp_process_8192_squared_jpeg_refused_before_decoding_rss_flat(
    tmp_path: Path, phantom_files: dict[str, Path]
) -> None:
    huge = _huge_jpeg(phantom_files["jpeg_baseline_colour"], tmp_path)
    assert huge.stat().st_size < 4 * 1024**2
    node = start_node(tmp_path / "node", command="scp")
    try:
        destination = Destination(ae_title="LNMNODE", host="127.0.0.1", port=node.port)
        [warm] = store_files(destination, [phantom_files["jpeg_baseline_colour"]], CALLING_AE)
        assert warm.status == statuses.SUCCESS  # the JPEG decoder is loaded: a fair baseline
        before = _peak_rss_mib(node.process.pid)

        [result] = store_files(destination, [huge], CALLING_AE)

        grown = _peak_rss_mib(node.process.pid) - before
        assert grown < 64, f"the SCP's peak memory grew by {grown:.0f} MiB"
        assert result.status == statuses.CANNOT_UNDERSTAND
        wait_until(
            lambda: any((node.home / "spool" / "quarantine").glob("*.json")),
            timeout=5,
            what="a quarantine record",
        )
        [record] = (node.home / "spool" / "quarantine").glob("*.json")
        assert "max_frame_samples" in record.read_text()
    finally:
        node.stop()


def test_scp_memory_budget_smaller_than_instances_serialises_checks_all_stored(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    node = make_node(receive_memory_budget_bytes=1024**2)
    files = []
    for seed in range(4):  # 2 MB each: every check wants more than the whole budget
        ds, _, _ = make_us_dataset(seed=seed, rows=512, cols=640, frames=2, rgb=True)
        files.append(tmp_path / f"cine-{seed}.dcm")
        ds.save_as(files[-1], enforce_file_format=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda p: store_files(node.destination, [p], CALLING_AE), files))
    assert [result.status for [result] in answers] == [statuses.SUCCESS] * 4
    assert len(list(node.spool.root.glob("incoming/*/*/*.dcm"))) == 4
