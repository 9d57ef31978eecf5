"""The pre-decoding integrity checks, on generated datasets and codestreams."""

from __future__ import annotations

import zlib
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit

from dicom_node.integrity import (
    MAX_SEQUENCE_DEPTH,
    TooLarge,
    check_depth,
    check_inflated_size,
    check_pixel_bounds,
    codestream_size,
)
from kernel.errors import InvalidInput
from phantom.us_dicom import jpeg_lossless_frame, make_us_dataset


def _nested(depth: int) -> Dataset:
    ds = Dataset()
    current = ds
    for _ in range(depth):
        item = Dataset()
        current.ReferencedImageSequence = Sequence([item])
        current = item
    return ds


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, JPEG2000Lossless])
def test_codestream_size_phantom_frame_matches_rows_columns(syntax: str) -> None:
    ds, _, _ = make_us_dataset(seed=1, rows=40, cols=56, transfer_syntax=syntax)
    first = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert codestream_size(first) == (40, 56)


def test_codestream_size_jpeg_lossless_frame_matches_shape() -> None:
    ds, _, _ = make_us_dataset(seed=2, rows=24, cols=40)
    assert codestream_size(jpeg_lossless_frame(ds.pixel_array)) == (24, 40)


def test_codestream_size_not_a_codestream_none() -> None:
    assert codestream_size(b"\x00" * 64) is None


def test_check_depth_at_limit_accepted_beyond_refused() -> None:
    check_depth(_nested(MAX_SEQUENCE_DEPTH))
    with pytest.raises(InvalidInput, match="nest deeper"):
        check_depth(_nested(MAX_SEQUENCE_DEPTH + 1))


def test_check_pixel_bounds_beyond_limit_refused_names_setting() -> None:
    ds, _, _ = make_us_dataset(seed=3, rows=32, cols=32, frames=2)
    check_pixel_bounds(ds, 32 * 32 * 2)
    with pytest.raises(InvalidInput, match="max_pixel_samples"):
        check_pixel_bounds(ds, 32 * 32 * 2 - 1)


def _deflated_file(payload: bytes) -> bytes:
    ds, _, _ = make_us_dataset(seed=4, rows=16, cols=16)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    whole = buffer.getvalue()
    meta_end = 144 + int.from_bytes(whole[140:144], "little")
    return whole[:meta_end] + payload


def test_check_inflated_size_bomb_refused_too_large() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(bytes(8 << 20)) + compressor.flush()
    with pytest.raises(TooLarge):
        check_inflated_size(_deflated_file(bomb), DeflatedExplicitVRLittleEndian, 1 << 20)


def test_check_inflated_size_real_deflated_file_accepted_and_reads() -> None:
    ds, _, _ = make_us_dataset(seed=5, rows=16, cols=16)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    check_inflated_size(buffer.getvalue(), DeflatedExplicitVRLittleEndian, 1 << 20)
    assert dcmread(BytesIO(buffer.getvalue())).Rows == 16


def test_check_inflated_size_corrupt_stream_refused() -> None:
    with pytest.raises(InvalidInput, match="does not inflate"):
        check_inflated_size(
            _deflated_file(bytes(range(256)) * 4), DeflatedExplicitVRLittleEndian, 1 << 20
        )


def test_check_inflated_size_bytes_after_stream_end_returns() -> None:
    # found by benchmarks/fuzz_receive.py: an inflated size past a 1 MiB step followed by
    # trailing bytes made the inflation loop spin forever
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(bytes(3 << 20)) + compressor.flush() + b"trailing bytes"
    check_inflated_size(_deflated_file(stream), DeflatedExplicitVRLittleEndian, 8 << 20)


def test_check_pixel_bounds_frame_beyond_frame_limit_refused_names_setting() -> None:
    ds, _, _ = make_us_dataset(seed=2, rows=32, cols=32, frames=2)
    check_pixel_bounds(ds, 1 << 30, 32 * 32)
    with pytest.raises(InvalidInput, match="max_frame_samples"):
        check_pixel_bounds(ds, 1 << 30, 32 * 32 - 1)
