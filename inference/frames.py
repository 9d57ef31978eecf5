"""Decode one frame of an ultrasound instance into a display-ready numpy array.

pydicom 3 does the decoding (every transfer syntax its plugins read, planar configuration,
YBR to RGB); this module only finishes what pydicom leaves to the caller: PALETTE COLOR
through the palette (PS3.3 C.7.6.3.1.5), MONOCHROME1 inverted, and integer samples stored
in fewer bits than their dtype scaled to the dtype's full range.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, iter_pixels, pixel_array

from kernel.errors import InvalidInput

logger = logging.getLogger(__name__)

# What pydicom and its plugins raise for pixel data they cannot decode.
_DECODE_ERRORS = (
    RuntimeError,
    ValueError,
    NotImplementedError,
    AttributeError,
    KeyError,
    TypeError,
    OSError,
)


def frame_count(ds: pydicom.Dataset) -> int:
    """Number of frames in ``ds`` (1 when NumberOfFrames is absent, empty or invalid)."""
    value = ds.get("NumberOfFrames")
    try:
        count = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        return 1
    return max(count, 1)


def _check_index(ds: pydicom.Dataset, index: int) -> None:
    count = frame_count(ds)
    if not 0 <= index < count:
        raise InvalidInput(f"frame index {index} is outside the instance's {count} frame(s)")


def _full_range(array: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Integer samples of ``bits_stored`` bits to the full range of an unsigned dtype."""
    if signed:
        offset = 1 << (bits_stored - 1)
        target = np.uint8 if array.dtype.itemsize == 1 else np.uint16
        array = (array.astype(np.int64) + offset).clip(0, (1 << bits_stored) - 1).astype(target)
    maximum = np.iinfo(array.dtype).max
    stored_max = (1 << bits_stored) - 1
    if stored_max >= maximum:
        return array
    scaled = array.astype(np.float64).clip(0, stored_max) * (maximum / stored_max)
    return np.rint(scaled).astype(array.dtype)


def finish_frame(array: np.ndarray, header: pydicom.Dataset) -> np.ndarray:
    """Turn one frame as pydicom decodes it into grey (H,W) or RGB (H,W,3), unsigned integers.

    ``header`` needs the Image Pixel module (a header read with ``stop_before_pixels`` has it).
    YBR data must already be RGB (pydicom 3's default); it is not converted again. Modality
    and VOI LUTs are not applied: ultrasound pixels are display values already.
    """
    photometric = str(header.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR":
        return apply_color_lut(array, header)
    if not np.issubdtype(array.dtype, np.integer):
        return array
    bits_stored = int(header.get("BitsStored") or array.dtype.itemsize * 8)
    signed = int(header.get("PixelRepresentation") or 0) == 1
    array = _full_range(array, bits_stored, signed)
    if photometric == "MONOCHROME1":
        array = np.iinfo(array.dtype).max - array
    return array


def decode_frame(ds: pydicom.Dataset, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a dataset with pixel data, grey (H,W) or RGB (H,W,3).

    Only the requested frame is decoded. Raises :class:`InvalidInput` when the pixel data is
    absent or cannot be decoded.
    """
    if "PixelData" not in ds:
        raise InvalidInput("the instance carries no pixel data")
    _check_index(ds, index)
    try:
        array = pixel_array(ds, index=index)
    except _DECODE_ERRORS as error:
        raise InvalidInput(f"pixel data cannot be decoded: {error}") from error
    return finish_frame(array, ds)


def read_frame(path: Path, index: int, header: pydicom.Dataset | None = None) -> np.ndarray:
    """Frame ``index`` of the instance at ``path``, read from disk without loading other frames.

    ``header`` (read with ``stop_before_pixels``) is read from ``path`` when not given.
    """
    return read_frames(path, (index,), header)[0]


def read_frames(
    path: Path, indices: Sequence[int], header: pydicom.Dataset | None = None
) -> list[np.ndarray]:
    """Frames ``indices`` of the instance at ``path``, in the order asked, from one pass over
    the file (pydicom ``iter_pixels``): each distinct frame is decoded once, other frames are
    not loaded. ``header`` (read with ``stop_before_pixels``) is read from ``path`` when not
    given. Raises :class:`InvalidInput` when a frame is absent or does not decode.
    """
    wanted = sorted(set(indices))
    if not wanted:
        return []
    try:
        if header is None:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        for index in wanted:
            _check_index(header, index)
        arrays = list(iter_pixels(path, indices=wanted))
        if len(arrays) != len(wanted):
            raise InvalidInput(f"{len(wanted)} frame(s) asked, {len(arrays)} decoded")
    except InvalidInput:
        raise
    except (InvalidDicomError, *_DECODE_ERRORS) as error:
        raise InvalidInput(f"pixel data cannot be decoded: {error}") from error
    decoded = {
        index: finish_frame(array, header) for index, array in zip(wanted, arrays, strict=True)
    }
    return [decoded[index] for index in indices]
