"""Checks that a received dataset is whole, honestly encoded and bounded, before any decoding.

Used by :mod:`dicom_node.receive`. Each check raises :class:`~kernel.errors.InvalidInput` with
a reason that names what is wrong; none of them decodes pixel data, so a hostile header can
never make the node allocate or compute more than the limits it was given:

- :func:`check_inflated_size`: a deflated dataset is inflated as a stream first, and refused
  beyond a byte limit (:class:`TooLarge`) (a zip bomb of a few kilobytes would otherwise inflate in memory).
- :func:`check_encoding`: the bytes are encoded as the transfer syntax says (pydicom reads an
  explicit VR dataset sent as implicit, and the reverse, without complaint).
- :func:`check_complete`: the last element is as long as its length field says (a truncated
  stream or a lying length).
- :func:`check_depth`: sequences nest at most :data:`MAX_SEQUENCE_DEPTH` deep.
- :func:`check_pixel_bounds`: Rows x Columns x samples per frame and x frames in all within
  limits, sane values.
- :func:`check_fragments`: encapsulated pixel data has a fragment per frame, and every
  frame's codestream (all its fragments) is of the transfer syntax's kind and declares the
  header's size (JPEG SOF/DHP, JPEG-LS SOF55, JPEG 2000 SIZ; RLE: 1 to 15 segments), so
  that no frame a model later decodes can be larger than the bounds checked here.
- :func:`check_native_length`: native pixel data is as long as the header says, with the
  attributes a decoder needs (pydicom's own validation, without decoding).
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, parse_basic_offsets, parse_fragments
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, RLELossless

from kernel.errors import InvalidInput

#: deeper sequence nesting than any real dataset has (a TID 1500 SR nests about 7 deep)
MAX_SEQUENCE_DEPTH = 32

_JPEG_FAMILY = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.6", "1.2.840.10008.1.2.4.7")
_JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_JPEG_2000 = ("1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20")
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
#: JPEG start-of-frame markers (ISO 10918-1 B.1.1.3), DHP (hierarchical: the whole image's
#: size, same layout) and JPEG-LS SOF55
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xDE, 0xF7}


class TooLarge(InvalidInput):
    """The input is beyond a configured size limit (a permanent refusal)."""


def _handle(source: bytes | Path) -> BinaryIO:
    return BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def _meta_end(head: bytes) -> int | None:
    """Offset of the dataset after a Part 10 file meta, or None when the head is not one."""
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return None
    (group_length,) = struct.unpack("<I", head[140:144])
    return 144 + group_length


def check_inflated_size(source: bytes | Path, transfer_syntax: str, limit: int) -> None:
    """Refuse a deflated dataset that inflates beyond ``limit`` bytes or does not inflate."""
    if transfer_syntax != DeflatedExplicitVRLittleEndian:
        return
    with _handle(source) as handle:
        end = _meta_end(handle.read(144))
        if end is None:
            return  # not a Part 10 stream: the header parse refuses it
        handle.seek(end)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        try:
            while not inflater.eof and (chunk := handle.read(1 << 20)):
                while chunk and not inflater.eof:
                    inflated = inflater.decompress(chunk, 1 << 20)
                    total += len(inflated)
                    if total > limit:
                        raise TooLarge(f"deflated dataset inflates beyond {limit} bytes")
                    if not inflated and len(inflater.unconsumed_tail) == len(chunk):
                        # defensive: never spin on input zlib neither inflates nor consumes
                        # (the fuzzer found an endless loop on bytes after the stream's end)
                        raise InvalidInput("deflated dataset does not inflate: no progress")
                    chunk = inflater.unconsumed_tail
        except zlib.error as exc:
            raise InvalidInput(f"deflated dataset does not inflate: {exc}") from exc


def _first_raw(ds: Dataset) -> RawDataElement | None:
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset yields elements, not tags)
        element = ds.get_item(tag)
        if isinstance(element, RawDataElement):
            return element
    return None


def check_encoding(ds: Dataset) -> None:
    """Refuse a dataset whose elements are not encoded as its transfer syntax says."""
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    element = _first_raw(ds)
    if element is None or not syntax.is_transfer_syntax or syntax == DeflatedExplicitVRLittleEndian:
        return
    if element.is_implicit_VR != syntax.is_implicit_VR:
        found = "implicit" if element.is_implicit_VR else "explicit"
        raise InvalidInput(
            f"the dataset is encoded {found} VR, its transfer syntax {syntax} says otherwise"
        )


def check_complete(ds: Dataset) -> None:
    """Refuse a dataset whose last element is shorter than its length field (truncated, or lying)."""
    tags = list(ds.keys())
    if not tags:
        raise InvalidInput("the dataset is empty")
    element = ds.get_item(tags[-1])
    if not isinstance(element, RawDataElement) or element.length == 0xFFFFFFFF:
        return
    if element.value is not None and len(element.value) < element.length:
        raise InvalidInput(
            f"element {element.tag}: {len(element.value)} bytes arrived, less than expected "
            f"({element.length} declared: a truncated stream or a lying length)"
        )


def _may_be_sequence(element: object) -> bool:
    if isinstance(element, RawDataElement):
        return element.VR in (None, "SQ", "UN") or element.length == 0xFFFFFFFF
    return getattr(element, "VR", None) == "SQ"


def check_depth(ds: Dataset, limit: int = MAX_SEQUENCE_DEPTH) -> None:
    """Refuse sequences nested deeper than ``limit`` (walked without recursion)."""
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    while stack:
        current, depth = stack.pop()
        for tag in current.keys():  # noqa: SIM118 (a Dataset iterates elements)
            if tag.group == 0x7FE0 or not _may_be_sequence(current.get_item(tag)):
                continue
            element = current[tag]
            if element.VR != "SQ":
                continue
            if depth + 1 > limit:
                raise InvalidInput(f"sequences nest deeper than {limit} levels")
            stack.extend((item, depth + 1) for item in element.value)


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value) if value not in (None, "") else int(default)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{keyword} {value!r} is not a number") from exc


def frame_count(ds: Dataset) -> int:
    """NumberOfFrames, 1 when absent or unreadable (tolerated, as found in the wild)."""
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def check_pixel_bounds(
    ds: Dataset, max_pixel_samples: int, max_frame_samples: int | None = None
) -> None:
    """Refuse image attributes that are absent, impossible, beyond ``max_pixel_samples`` in
    all or beyond ``max_frame_samples`` in one frame (what decoding one frame allocates)."""
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    samples, bits = _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated", 0)
    if rows < 1 or columns < 1:
        raise InvalidInput(f"Rows {rows} x Columns {columns}: no image")
    if samples not in (1, 3):
        raise InvalidInput(f"SamplesPerPixel {samples} is neither 1 nor 3")
    if bits not in (1, 8, 16, 32, 64):
        raise InvalidInput(f"BitsAllocated {bits} is not 1, 8, 16, 32 or 64")
    stored = _int(ds, "BitsStored", bits)
    if not 1 <= stored <= bits:
        raise InvalidInput(f"BitsStored {stored} does not fit BitsAllocated {bits}")
    per_frame = rows * columns * samples
    if max_frame_samples is not None and per_frame > max_frame_samples:
        raise InvalidInput(
            f"{rows} x {columns} x {samples} samples = {per_frame} in one frame exceeds "
            f"max_frame_samples {max_frame_samples}"
        )
    total = per_frame * frame_count(ds)
    if total > max_pixel_samples:
        raise InvalidInput(
            f"{rows} x {columns} x {samples} samples x {frame_count(ds)} frames = {total} exceeds "
            f"max_pixel_samples {max_pixel_samples}"
        )


def codestream_size(fragment: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG, JPEG-LS or JPEG 2000 codestream declares; None if none found."""
    if fragment.startswith(b"\xff\xd8"):
        position = 2
        while position + 9 <= len(fragment):
            if fragment[position] != 0xFF:
                return None
            marker = fragment[position + 1]
            if marker in _SOF:
                rows, columns = struct.unpack(">HH", fragment[position + 5 : position + 9])
                return rows, columns
            if marker == 0xFF:  # fill byte
                position += 1
                continue
            (length,) = struct.unpack(">H", fragment[position + 2 : position + 4])
            position += 2 + length
        return None
    start = fragment.find(b"\xff\x4f\xff\x51")
    if start < 0 or start + 24 > len(fragment):
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", fragment[start + 8 : start + 24])
    return ysiz - yosiz, xsiz - xosiz


def _kind_matches(syntax: str, fragment: bytes) -> bool:
    if syntax.startswith(_JPEG_FAMILY) or syntax in _JPEG_LS:
        return fragment.startswith(b"\xff\xd8")
    if syntax.startswith(_JPEG_2000):
        return fragment.startswith((b"\xff\x4f\xff\x51", _JP2_SIGNATURE))
    if syntax == RLELossless:
        return len(fragment) >= 64 and 1 <= struct.unpack("<I", fragment[:4])[0] <= 15
    return True


def check_native_length(ds: Dataset) -> None:
    """Refuse native pixel data shorter than the header declares, or missing an attribute a
    decoder needs (pydicom's decoder validation: no pixel is decoded)."""
    runner = DecodeRunner(ds.file_meta.TransferSyntaxUID)
    try:
        runner.set_source(ds)
        runner.validate()
    except (AttributeError, ValueError, NotImplementedError) as exc:
        raise InvalidInput(str(exc)) from exc


def _check_codestream(syntax: str, index: int, frame: bytes, declared: tuple[int, int]) -> None:
    name = UID(syntax).name
    if not _kind_matches(syntax, frame):
        raise InvalidInput(f"frame {index + 1} is not a {name} codestream")
    if syntax == RLELossless:
        return
    size = codestream_size(frame)
    if size is None:
        raise InvalidInput(f"frame {index + 1}'s {name} codestream declares no size")
    if size != declared:
        raise InvalidInput(
            f"frame {index + 1}'s codestream is {size[0]} x {size[1]}, the header says "
            f"{declared[0]} x {declared[1]}"
        )


def check_fragments(ds: Dataset) -> None:
    """Encapsulated pixel data: enough fragments, and every frame's codestream of the right
    kind and size (read from its header; nothing is decoded)."""
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if not UID(syntax).is_compressed or "PixelData" not in ds:
        return
    frames = frame_count(ds)
    declared = (_int(ds, "Rows", 0), _int(ds, "Columns", 0))
    buffer = BytesIO(ds.PixelData)
    try:
        parse_basic_offsets(buffer)
        count, _ = parse_fragments(buffer)
        if count < frames:
            raise InvalidInput(f"{frames} frames declared, {count} fragments present")
        # a frame may span several fragments: its header may not be in its first one
        seen = 0
        for index, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
            _check_codestream(syntax, index, frame, declared)
            seen += 1
    except (ValueError, struct.error) as exc:
        raise InvalidInput(f"encapsulated pixel data does not parse: {exc}") from exc
    if seen < frames:
        raise InvalidInput(f"{frames} frames declared, {seen} codestreams present")
