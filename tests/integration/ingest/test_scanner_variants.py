"""What real scanners send and the phantom's base forms do not cover (planar configuration 1,
YBR_FULL, explicit big endian, JPEG lossless, MONOCHROME1, 16-bit and segmented palettes):
each is received by the real SCP from pynetdicom and from DCMTK storescu, stored as sent, and
its stored first frame decodes to the image the phantom drew."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from dicom_node import statuses
from dicom_node.scu import store_files
from inference.frames import read_frame
from phantom.us_dicom import US_VARIANTS, bmode_image, make_us_variant, palette_colours
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.storescu import run_storescu

pytestmark = pytest.mark.integration

ROWS, COLS = 72, 88


def _expected(variant: str, seed: int) -> np.ndarray:
    """The decoded frame each variant must give: the drawn B-mode frame, as the viewer sees it."""
    image, _, _ = bmode_image(ROWS, COLS, seed, False)
    if variant.startswith("palette"):
        return palette_colours(image)
    if variant in ("rgb_planar1", "ybr_full"):
        return np.repeat(image[..., None], 3, axis=-1)
    return image


@pytest.fixture(scope="module")
def variant_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    folder = tmp_path_factory.mktemp("variants")
    files = {}
    for seed, variant in enumerate(US_VARIANTS, start=400):
        ds, _, _ = make_us_variant(variant, seed=seed, rows=ROWS, cols=COLS)
        path = folder / f"{variant}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files[variant] = (path, seed)
    return files


def _check_stored(node: Node, variant: str, path: Path, seed: int) -> None:
    sent = dcmread(path, stop_before_pixels=True)
    stored_path = node.spool.incoming_path(
        sent.StudyInstanceUID, sent.SeriesInstanceUID, sent.SOPInstanceUID
    )
    stored = dcmread(stored_path, stop_before_pixels=True)
    assert stored.PhotometricInterpretation == sent.PhotometricInterpretation, variant
    if sent.file_meta.TransferSyntaxUID.is_compressed:
        assert stored.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID, variant
    frame = read_frame(stored_path, 0)
    np.testing.assert_array_equal(frame, _expected(variant, seed), err_msg=variant)


@pytest.mark.parametrize("variant", list(US_VARIANTS))
def test_scp_pynetdicom_scanner_variant_stored_and_decodes_as_drawn(
    variant: str, node: Node, variant_files: dict[str, tuple[Path, int]]
) -> None:
    path, seed = variant_files[variant]
    [result] = store_files(node.destination, [path], CALLING_AE)
    assert result.status == statuses.SUCCESS, result.error
    _check_stored(node, variant, path, seed)
    assert node.spool.quarantined() == []


def test_scp_storescu_scanner_variants_stored_and_decode_as_drawn(
    make_node: Callable[..., Node], variant_files: dict[str, tuple[Path, int]]
) -> None:
    node = make_node()
    paths = [path for path, _ in variant_files.values()]
    outcomes = run_storescu(node.port, paths)
    assert {path.name: outcomes[path] for path in paths} == {path.name: "Success" for path in paths}
    for variant, (path, seed) in variant_files.items():
        _check_stored(node, variant, path, seed)


def test_big_endian_variant_dataset_bytes_big_endian(
    variant_files: dict[str, tuple[Path, int]],
) -> None:
    ds = dcmread(variant_files["big_endian"][0], stop_before_pixels=True)
    assert ds.original_encoding == (False, False)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
