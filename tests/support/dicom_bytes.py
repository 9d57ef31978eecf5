"""Byte-level DICOM editing for hostile test inputs: explicit VR little endian elements,
file meta, lengths, VRs and nesting rewritten in place (pydicom would refuse to write them)."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID


def part10_meta(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    """Preamble, ``DICM`` and a well-formed file meta group for these UIDs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.1008.99")
    buffer = BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


def dataset_bytes(ds: Dataset) -> bytes:
    """The dataset bytes after the file meta, in the dataset's own transfer syntax."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    (group_length,) = struct.unpack("<I", data[140:144])
    return data[144 + group_length :]


def explicit_header(body: bytes, tag: bytes) -> tuple[int, str, int, int]:
    """(offset, VR, length field offset, length field size) of the first ``tag`` element."""
    offset = body.index(tag)
    vr = body[offset + 4 : offset + 6].decode("latin-1")
    if vr in ("OB", "OW", "OF", "SQ", "UT", "UN", "OD", "OL", "OV", "UC", "UR", "SV", "UV"):
        return offset, vr, offset + 8, 4
    return offset, vr, offset + 6, 2


def set_length(body: bytes, tag: bytes, length: int) -> bytes:
    """Overwrite the length field of the first ``tag`` element (the value stays as it is)."""
    _, _, at, size = explicit_header(body, tag)
    field = struct.pack("<I" if size == 4 else "<H", length & (0xFFFFFFFF if size == 4 else 0xFFFF))
    return body[:at] + field + body[at + size :]


def replace_value(body: bytes, tag: bytes, value: bytes) -> bytes:
    """Replace an explicit VR LE element's value (and its length field) with ``value``."""
    _, _, at, size = explicit_header(body, tag)
    (old,) = struct.unpack("<I" if size == 4 else "<H", body[at : at + size])
    field = struct.pack("<I" if size == 4 else "<H", len(value))
    return body[:at] + field + value + body[at + size + old :]


def set_vr(body: bytes, tag: bytes, vr: bytes) -> bytes:
    """Overwrite the two VR bytes of the first ``tag`` element."""
    offset = body.index(tag)
    return body[: offset + 4] + vr + body[offset + 6 :]


def explicit_element(group: int, elem: int, vr: str, value: bytes) -> bytes:
    """An explicit VR little endian element."""
    head = struct.pack("<HH", group, elem) + vr.encode()
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def nested(depth: int, defined: bool) -> bytes:
    """ReferencedImageSequence nested ``depth`` deep, with defined or undefined lengths."""
    inner = explicit_element(0x0008, 0x0100, "SH", b"T1")
    for _ in range(depth):
        if defined:
            item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
            inner = explicit_element(0x0008, 0x1140, "SQ", item)
        else:
            item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + inner + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
            inner = (
                b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff"
                + item
                + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
            )
    return inner


def insert_before(body: bytes, tag: bytes, extra: bytes) -> bytes:
    offset = body.index(tag)
    return body[:offset] + extra + body[offset:]


def deflate_bomb(inflated_bytes: int) -> bytes:
    """Deflated bytes that inflate to one OB element of ``inflated_bytes`` zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(explicit_element(0x0009, 0x0010, "LO", b"BOMB"))]
    parts.append(
        compressor.compress(b"\x09\x00\x00\x10OB\x00\x00" + struct.pack("<I", inflated_bytes))
    )
    chunk = bytes(1 << 20)
    for _ in range(inflated_bytes >> 20):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    return b"".join(parts)


def encapsulated_element(fragments: list[bytes]) -> bytes:
    """A Pixel Data element (explicit VR LE, undefined length) holding ``fragments`` as they are."""
    items = b"".join(b"\xfe\xff\x00\xe0" + struct.pack("<I", len(f)) + f for f in fragments)
    return (
        b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
        + b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
        + items
        + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    )
