from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from inference.frames import decode_frame, frame_count, read_frame, read_frames
from kernel.errors import InvalidInput
from phantom.us_dicom import bmode_image, make_us_dataset
from tests.support.paths import SHARED_DATA

US_DICOM = SHARED_DATA / "us-dicom"
LOSSLESS = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    JPEGLSLossless,
    JPEG2000Lossless,
]
ROWS, COLS, SEED = 48, 64, 3


def _manifest_rows() -> list:
    manifest = US_DICOM / "manifest.csv"
    if not manifest.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no real files at {US_DICOM}"))]
    with manifest.open(newline="") as handle:
        return [pytest.param(row, id=row["file"]) for row in csv.DictReader(handle)]


def _expected_frame(index: int) -> np.ndarray:
    image, _, _ = bmode_image(ROWS, COLS, SEED, False)
    return np.roll(image, index, axis=1)


@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda uid: UID(uid).name)
def test_decode_frame_lossless_phantom_equals_source(syntax: UID, rgb: bool) -> None:
    ds, _, _ = make_us_dataset(
        seed=SEED, rows=ROWS, cols=COLS, frames=3, rgb=rgb, transfer_syntax=syntax
    )

    frame = decode_frame(ds, 1)

    expected = _expected_frame(1)
    assert frame.dtype == np.uint8
    if rgb:
        assert frame.shape == (ROWS, COLS, 3)
        np.testing.assert_array_equal(frame, np.repeat(expected[..., None], 3, axis=-1))
    else:
        np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
def test_decode_frame_jpeg_baseline_phantom_close_to_source(rgb: bool) -> None:
    ds, _, _ = make_us_dataset(
        seed=SEED, rows=ROWS, cols=COLS, frames=3, rgb=rgb, transfer_syntax=JPEGBaseline8Bit
    )

    frame = decode_frame(ds, 2)

    assert frame.shape == ((ROWS, COLS, 3) if rgb else (ROWS, COLS))
    grey = frame[..., 0] if rgb else frame
    error = np.abs(grey.astype(float) - _expected_frame(2).astype(float)).mean()
    assert error < 6.0  # YBR decoded to RGB once: a second conversion would be far off


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless])
def test_read_frame_from_path_equals_decode_frame(tmp_path: Path, syntax: UID) -> None:
    ds, _, _ = make_us_dataset(
        seed=SEED, rows=ROWS, cols=COLS, frames=4, rgb=True, transfer_syntax=syntax
    )
    path = tmp_path / "cine.dcm"
    ds.save_as(path, enforce_file_format=True)

    np.testing.assert_array_equal(read_frame(path, 3), decode_frame(pydicom.dcmread(path), 3))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless])
def test_read_frames_in_order_asked_equal_decode_frame(tmp_path: Path, syntax: UID) -> None:
    ds, _, _ = make_us_dataset(
        seed=SEED, rows=ROWS, cols=COLS, frames=5, rgb=True, transfer_syntax=syntax
    )
    path = tmp_path / "cine.dcm"
    ds.save_as(path, enforce_file_format=True)
    full = pydicom.dcmread(path)

    frames = read_frames(path, [4, 1, 1, 3], pydicom.dcmread(path, stop_before_pixels=True))

    assert len(frames) == 4
    for frame, index in zip(frames, [4, 1, 1, 3], strict=True):
        np.testing.assert_array_equal(frame, decode_frame(full, index))


def test_read_frames_index_outside_frames_raises_invalid_input(tmp_path: Path) -> None:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS, frames=3)
    path = tmp_path / "cine.dcm"
    ds.save_as(path, enforce_file_format=True)

    with pytest.raises(InvalidInput, match="outside"):
        read_frames(path, [0, 3])


def test_read_frames_none_asked_reads_nothing(tmp_path: Path) -> None:
    assert read_frames(tmp_path / "absent.dcm", []) == []


def test_decode_frame_monochrome1_inverted() -> None:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS)
    ds.PhotometricInterpretation = "MONOCHROME1"

    np.testing.assert_array_equal(decode_frame(ds, 0), 255 - _expected_frame(0))


def test_decode_frame_12_bit_grey_scaled_to_full_range() -> None:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS)
    ramp = np.tile(np.linspace(0, 4095, COLS).astype(np.uint16), (ROWS, 1))
    ds.set_pixel_data(ramp, "MONOCHROME2", 12)

    frame = decode_frame(ds, 0)

    assert frame.dtype == np.uint16
    assert frame.min() == 0 and frame.max() == 65535
    np.testing.assert_allclose(frame / 65535.0, ramp / 4095.0, atol=1e-4)


def test_decode_frame_signed_16_bit_grey_shifted_to_unsigned() -> None:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS)
    ramp = np.tile(np.linspace(-2048, 2047, COLS).astype(np.int16), (ROWS, 1))
    ds.set_pixel_data(ramp, "MONOCHROME2", 12)

    frame = decode_frame(ds, 0)

    assert frame.dtype == np.uint16
    assert frame[0, 0] == 0 and frame[0, -1] == 65535


def _palette_dataset() -> pydicom.Dataset:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    return ds


def test_decode_frame_palette_8_bit_lut_applied() -> None:
    ds = _palette_dataset()
    for colour, table in (
        ("Red", np.arange(256)),
        ("Green", 255 - np.arange(256)),
        ("Blue", np.zeros(256)),
    ):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 8])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table.astype(np.uint8).tobytes())

    frame = decode_frame(ds, 0)

    source = _expected_frame(0)
    assert frame.shape == (ROWS, COLS, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[..., 0], source)
    np.testing.assert_array_equal(frame[..., 1], 255 - source)
    assert not frame[..., 2].any()


def test_decode_frame_segmented_16_bit_palette_applied() -> None:
    ds = _palette_dataset()
    # discrete segment (opcode 0) with one entry 0, then linear (opcode 1) over 255 entries
    segments = {"Red": 65535, "Green": 32768, "Blue": 0}
    for colour, end in segments.items():
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        data = np.array([0, 1, 0, 1, 255, end], dtype="<u2").tobytes()
        setattr(ds, f"Segmented{colour}PaletteColorLookupTableData", data)

    frame = decode_frame(ds, 0)

    source = _expected_frame(0).astype(float)
    assert frame.dtype == np.uint16
    np.testing.assert_allclose(frame[..., 0], source / 255 * 65535, atol=1)
    np.testing.assert_allclose(frame[..., 1], source / 255 * 32768, atol=1)


def test_decode_frame_without_pixel_data_raises_invalid_input() -> None:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS)
    del ds.PixelData

    with pytest.raises(InvalidInput, match="no pixel data"):
        decode_frame(ds, 0)


@pytest.mark.parametrize("index", [-1, 3])
def test_decode_frame_index_outside_frames_raises_invalid_input(index: int) -> None:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS, frames=3)

    with pytest.raises(InvalidInput, match="outside"):
        decode_frame(ds, index)


def test_decode_frame_truncated_pixel_data_raises_invalid_input() -> None:
    ds, _, _ = make_us_dataset(seed=SEED, rows=ROWS, cols=COLS)
    ds.PixelData = ds.PixelData[:100]

    with pytest.raises(InvalidInput, match="cannot be decoded"):
        decode_frame(ds, 0)


def test_read_frame_not_dicom_raises_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"not dicom at all" * 10)

    with pytest.raises(InvalidInput):
        read_frame(path, 0)


@pytest.mark.parametrize(("value", "expected"), [(None, 1), ("", 1), (5, 5), (0, 1)])
def test_frame_count_number_of_frames_values(value: object, expected: int) -> None:
    ds = pydicom.Dataset()
    if value is not None:
        ds.NumberOfFrames = value

    assert frame_count(ds) == expected


@pytest.mark.shared_data
@pytest.mark.parametrize("row", _manifest_rows())
def test_decode_frame_real_file_matches_pydicom(row: dict) -> None:
    path = US_DICOM / row["file"]
    ds = pydicom.dcmread(path)
    count = frame_count(ds)
    index = count // 2

    frame = decode_frame(ds, index)

    assert count == int(row["frames"])
    assert frame.shape[:2] == (int(row["rows"]), int(row["cols"]))
    reference = ds.pixel_array if count == 1 else ds.pixel_array[index]
    if row["pi"] == "PALETTE COLOR":
        reference = apply_color_lut(reference, ds)
    assert frame.ndim == (3 if row["pi"] != "MONOCHROME2" else 2)
    np.testing.assert_array_equal(frame, reference)
    np.testing.assert_array_equal(read_frame(path, index), frame)
