"""A deterministic corpus of malformed and hostile DICOM inputs.

Every case is a Part 10 file whose file meta is well formed enough for pynetdicom to pick a
presentation context (SOP class, SOP instance, transfer syntax); the dataset bytes after it
are what is hostile. :func:`tests.support.raw_store.send_raw` sends those bytes as they are (pynetdicom's chunked
send: no decoding, no re-encoding), so the node sees exactly what a broken or malicious
modality would send.

A case's ``refused`` is True when the node must answer a failure status (the bytes cannot be
a usable instance); False when a status other than 0xC211 is all that is required (the input
is odd, but a tolerant reader may store it).
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    UltrasoundImageStorage,
    generate_uid,
)

from phantom.us_dicom import make_us_dataset
from tests.support.dicom_bytes import (
    dataset_bytes,
    deflate_bomb,
    encapsulated_element,
    explicit_element,
    explicit_header,
    insert_before,
    nested,
    part10_meta,
    replace_value,
    set_length,
    set_vr,
)

#: a tag as it appears in little endian bytes
_ROWS = b"\x28\x00\x10\x00"
_COLUMNS = b"\x28\x00\x11\x00"
_PIXEL_DATA = b"\xe0\x7f\x10\x00"
_SOP_INSTANCE = b"\x08\x00\x18\x00"
_STUDY_UID = b"\x20\x00\x0d\x00"
_REGIONS = b"\x18\x00\x11\x60"
_FRAMES = b"\x28\x00\x08\x00"


@dataclass(frozen=True)
class CorpusCase:
    """One hostile input: a name saying what it is, the Part 10 bytes, the required outcome."""

    name: str
    data: bytes
    refused: bool


@dataclass(frozen=True)
class _Base:
    sop_instance: str
    syntax: str
    body: bytes
    sop_class: str = UltrasoundImageStorage

    def case(self, name: str, body: bytes, refused: bool = True, syntax: str = "") -> CorpusCase:
        meta = part10_meta(self.sop_class, self.sop_instance, syntax or self.syntax)
        return CorpusCase(name, meta + body, refused)


def _base(seed: int, syntax: str, **kwargs: object) -> _Base:
    ds, _, _ = make_us_dataset(
        seed=seed,
        rows=48,
        cols=64,
        transfer_syntax=UID(syntax),
        **kwargs,  # type: ignore[arg-type]
    )
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["corpus", str(seed), syntax])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return _Base(
        str(ds.SOPInstanceUID),
        str(ds.file_meta.TransferSyntaxUID),
        dataset_bytes(ds),
        str(ds.SOPClassUID),
    )


def _truncations(bases: list[_Base], per_base: int) -> Iterator[CorpusCase]:
    rng = random.Random(3)
    for number, base in enumerate(bases):
        size = len(base.body)
        offsets = {1, 2, 7, 8, 9, size - 1, size - 2, size // 2}
        tag = _PIXEL_DATA if base.syntax != ExplicitVRBigEndian else b"\x7f\xe0\x00\x10"
        offsets |= {base.body.index(tag) + k for k in (0, 4, 8, 12, 13)}
        while len(offsets) < per_base:
            offsets.add(rng.randrange(1, size))
        encapsulated = UID(base.syntax).is_compressed
        for offset in sorted(offsets):
            # cut inside the closing sequence delimiter: every fragment is there (tolerated)
            refused = not (encapsulated and offset >= size - 8)
            yield base.case(
                f"truncated-{number}-{base.syntax}-at-{offset}", base.body[:offset], refused
            )


def _lying_lengths(base: _Base) -> Iterator[CorpusCase]:
    body = base.body
    for label, tag in (
        ("rows", _ROWS),
        ("sop-instance", _SOP_INSTANCE),
        ("study-uid", _STUDY_UID),
        ("pixel-data", _PIXEL_DATA),
        ("regions", _REGIONS),
    ):
        _, _, at, size = explicit_header(body, tag)
        (true_length,) = struct.unpack("<I" if size == 4 else "<H", body[at : at + size])
        for lie in (0xFFFFFFF0, 0x7FFFFFFF, true_length + 1, true_length + 4096, 0xFFFE):
            if size == 2 and lie > 0xFFFF:
                continue
            refused = label != "regions" or lie != 0xFFFFFFFF
            yield base.case(f"lying-length-{label}-{lie:#x}", set_length(body, tag, lie), refused)
        yield base.case(f"lying-length-{label}-zero", set_length(body, tag, 0), label != "regions")
    yield base.case(
        "lying-length-pixel-data-short-by-one", set_length(body, _PIXEL_DATA, len(body))
    )


def _wrong_vrs(base: _Base) -> Iterator[CorpusCase]:
    for label, tag in (
        ("rows", _ROWS),
        ("sop-instance", _SOP_INSTANCE),
        ("pixel-data", _PIXEL_DATA),
    ):
        for vr in (b"SQ", b"XX", b"\x00\x00", b"OB", b"UN", b"FD", b"AT"):
            # the element's length field keeps its size; a reader that trusts the new VR
            # misreads the length: anything may follow, nothing may crash
            yield base.case(f"wrong-vr-{label}-{vr.hex()}", set_vr(base.body, tag, vr), False)


def _image_attributes(base: _Base, encapsulated: list[_Base]) -> Iterator[CorpusCase]:
    body = base.body
    huge = {
        "rows-65535": (_ROWS, struct.pack("<H", 65535)),
        "columns-65535": (_COLUMNS, struct.pack("<H", 65535)),
        "rows-zero": (_ROWS, struct.pack("<H", 0)),
        "columns-zero": (_COLUMNS, struct.pack("<H", 0)),
        "bits-allocated-64": (b"\x28\x00\x00\x01", struct.pack("<H", 64)),
        "bits-allocated-0": (b"\x28\x00\x00\x01", struct.pack("<H", 0)),
        "bits-allocated-3": (b"\x28\x00\x00\x01", struct.pack("<H", 3)),
        "bits-stored-200": (b"\x28\x00\x01\x01", struct.pack("<H", 200)),
        "high-bit-99": (b"\x28\x00\x02\x01", struct.pack("<H", 99)),
        "samples-0": (b"\x28\x00\x02\x00", struct.pack("<H", 0)),
        "samples-65535": (b"\x28\x00\x02\x00", struct.pack("<H", 65535)),
        "pixel-representation-7": (b"\x28\x00\x03\x01", struct.pack("<H", 7)),
        "photometric-unknown": (b"\x28\x00\x04\x00", b"NONSENSE"),
        "photometric-palette-no-lut": (b"\x28\x00\x04\x00", b"PALETTE COLOR "),
        "photometric-empty": (b"\x28\x00\x04\x00", b""),
    }
    for label, (tag, value) in huge.items():
        # decoders ignore HighBit: a wrong one is tolerated
        yield base.case(f"image-{label}", replace_value(body, tag, value), label != "high-bit-99")
    square = replace_value(replace_value(body, _ROWS, b"\xff\xff"), _COLUMNS, b"\xff\xff")
    yield base.case("image-rows-columns-65535-native", square)
    frames = explicit_element(0x0028, 0x0008, "IS", b"2147483647")
    yield base.case("image-frames-2147483647", insert_before(body, b"\x28\x00\x10\x00", frames))
    for text in (b"-5", b"0 ", b"abc ", b"1e99", b"99999999999 "):
        element = explicit_element(0x0028, 0x0008, "IS", text)
        refused = text not in (b"-5", b"0 ", b"abc ")  # unreadable counts fall back to 1 frame
        yield base.case(
            f"image-frames-{text.strip().decode()}",
            insert_before(body, b"\x28\x00\x10\x00", element),
            refused,
        )
    for enc in encapsulated:
        square = replace_value(replace_value(enc.body, _ROWS, b"\xff\xff"), _COLUMNS, b"\xff\xff")
        yield enc.case(f"image-rows-columns-65535-{enc.syntax}", square)
        frames = explicit_element(0x0028, 0x0008, "IS", b"100000")
        yield enc.case(f"image-frames-100000-{enc.syntax}", insert_before(enc.body, _ROWS, frames))


def _short_pixels(base: _Base, encapsulated: list[_Base]) -> Iterator[CorpusCase]:
    body = base.body
    _, _, at, _ = explicit_header(body, _PIXEL_DATA)
    (length,) = struct.unpack("<I", body[at : at + 4])
    pixels = body[at + 4 : at + 4 + length]
    for keep in (0, 1, length // 2, length - 2):
        yield base.case(
            f"short-pixels-native-{keep}-of-{length}",
            replace_value(body, _PIXEL_DATA, pixels[:keep]),
        )
    for enc in encapsulated:
        start = enc.body.index(_PIXEL_DATA)
        no_fragments = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" + encapsulate([])[:8]
        yield enc.case(
            f"short-pixels-no-fragments-{enc.syntax}",
            enc.body[:start] + no_fragments + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",
        )
        no_delimiter = enc.body[:-8]
        yield enc.case(f"short-pixels-no-sequence-delimiter-{enc.syntax}", no_delimiter, False)
        fragment = encapsulate([b"\x00" * 16])
        yield enc.case(
            f"short-pixels-tiny-fragment-{enc.syntax}",
            enc.body[:start] + b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" + fragment,
        )


def _codestream_bombs(bases: dict[str, _Base]) -> Iterator[CorpusCase]:
    """Compressed frames whose own header claims far more than the dataset declares."""
    jpeg = bases[JPEGBaseline8Bit]
    start = jpeg.body.index(_PIXEL_DATA)
    stream = bytearray(jpeg.body[start:])
    sof = stream.index(b"\xff\xc0")
    stream[sof + 5 : sof + 9] = b"\xff\xf0\xff\xf0"  # 65520 x 65520
    yield jpeg.case("bomb-jpeg-sof-65520x65520", jpeg.body[:start] + bytes(stream))
    # found by benchmarks/fuzz_receive.py: the same frame split in two fragments, its SOF in
    # the second one (the first fragment alone declares no size); libjpeg took minutes and GBs
    frame = next(generate_frames(bytes(stream[12:]), number_of_frames=1))
    split = frame.index(b"\xff\xc0")
    yield jpeg.case(
        "bomb-jpeg-sof-65520x65520-second-fragment",
        jpeg.body[:start] + encapsulated_element([frame[:split], frame[split:]]),
    )
    j2k = bases[JPEG2000Lossless]
    start = j2k.body.index(_PIXEL_DATA)
    stream = bytearray(j2k.body[start:])
    siz = stream.index(b"\xff\x51")
    stream[siz + 6 : siz + 14] = struct.pack(">II", 60000, 60000)
    yield j2k.case("bomb-j2k-siz-60000x60000", j2k.body[:start] + bytes(stream))
    rle = bases[RLELossless]
    start = rle.body.index(_PIXEL_DATA)
    # one segment of "repeat the next byte 128 times" runs, 1 MiB of them: 128 MiB decoded
    runs = b"\x81\x00" * (1 << 19)
    header = struct.pack("<16I", 1, 64, *([0] * 14))
    frame = header + runs
    yield rle.case(
        "bomb-rle-runs-128MiB",
        rle.body[:start] + b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" + encapsulate([frame])[8:],
    )
    header = struct.pack("<16I", 15, *[64] * 15)
    yield rle.case(
        "bomb-rle-15-segments-same-offset",
        rle.body[:start]
        + b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
        + encapsulate([header + b"\x00" * 64])[8:],
    )


def _later_frame_bombs(cines: list[_Base]) -> Iterator[CorpusCase]:
    """Cines whose first frame is honest and whose last frame lies: every frame is bounded."""
    for cine in cines:
        start = cine.body.index(_PIXEL_DATA)
        frames = list(generate_frames(cine.body[start + 12 :], number_of_frames=3))
        last = bytearray(frames[-1])
        if cine.syntax == JPEG2000Lossless:
            siz = last.index(b"\xff\x51")
            last[siz + 6 : siz + 14] = struct.pack(">II", 60000, 60000)
        else:
            sof = last.index(b"\xff\xc0")
            last[sof + 5 : sof + 9] = b"\xff\xf0\xff\xf0"
        name = UID(cine.syntax).keyword
        yield cine.case(
            f"bomb-last-frame-{name}",
            cine.body[:start] + encapsulated_element([*frames[:-1], bytes(last)]),
        )
        yield cine.case(
            f"not-a-codestream-last-frame-{name}",
            cine.body[:start] + encapsulated_element([*frames[:-1], b"\x00" * 64]),
        )


def _transfer_syntax_lies(bases: dict[str, _Base]) -> Iterator[CorpusCase]:
    explicit = bases[ExplicitVRLittleEndian]
    pairs = [
        (ExplicitVRLittleEndian, JPEGBaseline8Bit, True),
        (ExplicitVRLittleEndian, RLELossless, True),
        (ExplicitVRLittleEndian, JPEG2000Lossless, True),
        (ExplicitVRLittleEndian, ImplicitVRLittleEndian, True),
        (ExplicitVRLittleEndian, ExplicitVRBigEndian, True),
        (ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, True),
        (ImplicitVRLittleEndian, ExplicitVRLittleEndian, True),
        (JPEGBaseline8Bit, ExplicitVRLittleEndian, True),
        (JPEGBaseline8Bit, JPEG2000Lossless, True),
        (JPEGBaseline8Bit, RLELossless, True),
        (RLELossless, JPEGLSLossless, True),
        (JPEG2000Lossless, JPEGBaseline8Bit, True),
        (JPEGLSLossless, JPEG2000Lossless, True),
        (ExplicitVRBigEndian, ExplicitVRLittleEndian, True),
    ]
    for actual, claimed, refused in pairs:
        base = bases[actual]
        yield base.case(f"syntax-{actual}-sent-as-{claimed}", base.body, refused, syntax=claimed)
    deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflated.compress(explicit.body) + deflated.flush()
    yield explicit.case("syntax-deflated-valid", body, False, syntax=DeflatedExplicitVRLittleEndian)
    yield explicit.case(
        "syntax-deflated-truncated",
        body[: len(body) // 2],
        True,
        syntax=DeflatedExplicitVRLittleEndian,
    )
    yield explicit.case(
        "syntax-deflated-garbage",
        bytes(range(256)) * 4,
        True,
        syntax=DeflatedExplicitVRLittleEndian,
    )


def _deflate_bombs(base: _Base) -> Iterator[CorpusCase]:
    for megabytes in (64, 256):
        yield base.case(
            f"bomb-deflate-{megabytes}MiB",
            deflate_bomb(megabytes << 20),
            syntax=DeflatedExplicitVRLittleEndian,
        )


def _not_dicom(base: _Base) -> Iterator[CorpusCase]:
    rng = random.Random(11)
    blobs = {
        "random-1k": rng.randbytes(1024),
        "random-64k": rng.randbytes(65536),
        "zeros-4k": bytes(4096),
        "ones-4k": b"\xff" * 4096,
        "text": b"This is not a DICOM file.\n" * 40,
        "png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(500),
        "zip": b"PK\x03\x04" + rng.randbytes(500),
        "dicm-repeated": b"DICM" * 1000,
        "preamble-again": bytes(128) + b"DICM" + base.body,
        "single-byte": b"\x08",
        "item-tags-only": b"\xfe\xff\x00\xe0\xff\xff\xff\xff" * 200,
        "delimiters-only": b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" * 200,
    }
    for label, blob in blobs.items():
        yield base.case(f"not-dicom-{label}", blob)


def _broken_meta(bases: dict[str, _Base]) -> Iterator[CorpusCase]:
    base = bases[ExplicitVRLittleEndian]
    other = generate_uid(entropy_srcs=["corpus", "other-instance"])
    yield CorpusCase(
        "meta-instance-differs-from-dataset",
        part10_meta(UltrasoundImageStorage, other, base.syntax) + base.body,
        True,
    )
    yield CorpusCase(
        "meta-class-multiframe-dataset-single",
        part10_meta("1.2.840.10008.5.1.4.1.1.3.1", base.sop_instance, base.syntax) + base.body,
        True,
    )
    yield base.case("meta-preamble-in-dataset", bytes(128) + b"DICM" + base.body)


def _nesting(base: _Base) -> Iterator[CorpusCase]:
    for depth in (20, 64, 1000, 5000):
        for defined in (True, False):
            kind = "defined" if defined else "undefined"
            extra = nested(depth, defined)
            refused = depth > 32  # deeper than any real dataset: refused, never a crash
            yield base.case(
                f"nested-sq-{depth}-{kind}", insert_before(base.body, _STUDY_UID, extra), refused
            )
    unterminated = (
        b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" * 3000
    )
    yield base.case(
        "nested-sq-unterminated", base.body[: base.body.index(_PIXEL_DATA)] + unterminated
    )


def _odd_values(base: _Base) -> Iterator[CorpusCase]:
    body = base.body
    for label, value in (
        ("sop-instance-10k", b"1." * 5000),
        ("sop-instance-traversal", b"../../../etc/passwd\x00"),
        ("sop-instance-nul", b"\x00" * 8),
        ("sop-instance-backslash", b"1.2\\3.4\x00"),
        ("study-uid-traversal", b"../../x\x00"),
        ("study-uid-65", b"1." * 32 + b"1\x00"),
    ):
        tag = _STUDY_UID if label.startswith("study") else _SOP_INSTANCE
        yield base.case(f"value-{label}", replace_value(body, tag, value))
    undefined_ob = b"\x09\x00\x10\x10OB\x00\x00\xff\xff\xff\xff" + bytes(64)
    yield base.case(
        "value-private-undefined-length-ob", insert_before(body, _STUDY_UID, undefined_ob)
    )
    private_huge = b"\x09\x00\x10\x10OB\x00\x00" + struct.pack("<I", 0x7FFFFFF0) + bytes(32)
    yield base.case("value-private-huge-length", insert_before(body, _STUDY_UID, private_huge))
    many = b"".join(
        explicit_element(0x0009, 0x1000 + (k % 0xF000), "LO", b"X%05d" % k) for k in range(20000)
    )
    yield base.case("value-20000-private-elements", insert_before(body, _STUDY_UID, many), False)
    regions = replace_value(
        body, _REGIONS, b"\xfe\xff\x00\xe0\x08\x00\x00\x00" + b"\x18\x00\x14\x60US\x02\x00"
    )
    yield base.case("value-regions-item-cut", regions, False)
    yield base.case(
        "value-tags-out-of-order",
        body[body.index(_SOP_INSTANCE) :] + body[: body.index(_SOP_INSTANCE)],
        False,
    )


def build_corpus(truncations_per_base: int = 24) -> list[CorpusCase]:
    """The whole corpus, deterministic: the same bytes on every call and machine."""
    syntaxes = (
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        ExplicitVRBigEndian,
        RLELossless,
        JPEGBaseline8Bit,
        JPEGLSLossless,
        JPEG2000Lossless,
    )
    bases: dict[str, _Base] = {}
    for seed, syntax in enumerate(syntaxes, start=700):
        if syntax == ExplicitVRBigEndian:
            ds, _, _ = make_us_dataset(seed=seed, rows=48, cols=64)
            ds.SOPInstanceUID = generate_uid(entropy_srcs=["corpus", str(seed), syntax])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
            bases[syntax] = _Base(str(ds.SOPInstanceUID), syntax, dataset_bytes(ds))
        else:
            bases[syntax] = _base(seed, syntax)
    cine = _base(799, ExplicitVRLittleEndian, frames=3)
    compressed_cines = [_base(798, JPEGBaseline8Bit, frames=3), _base(797, JPEG2000Lossless, frames=3)]
    explicit = bases[ExplicitVRLittleEndian]
    encapsulated = [
        bases[s] for s in (RLELossless, JPEGBaseline8Bit, JPEGLSLossless, JPEG2000Lossless)
    ]
    generators: list[Callable[[], Iterator[CorpusCase]]] = [
        lambda: _truncations([*bases.values(), cine], truncations_per_base),
        lambda: _lying_lengths(explicit),
        lambda: _wrong_vrs(explicit),
        lambda: _image_attributes(explicit, encapsulated),
        lambda: _short_pixels(explicit, encapsulated),
        lambda: _codestream_bombs(bases),
        lambda: _later_frame_bombs(compressed_cines),
        lambda: _transfer_syntax_lies(bases),
        lambda: _deflate_bombs(explicit),
        lambda: _not_dicom(explicit),
        lambda: _broken_meta(bases),
        lambda: _nesting(explicit),
        lambda: _odd_values(explicit),
    ]
    cases = [case for generate in generators for case in generate()]
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise ValueError("corpus case names must be unique")
    return cases


def write_corpus(folder: Path, cases: list[CorpusCase]) -> list[Path]:
    """One file per case, named after it; returns the paths in case order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, case in enumerate(cases):
        path = folder / f"{index:04d}-{case.name.replace('/', '_')}.dcm"
        path.write_bytes(case.data)
        paths.append(path)
    return paths
