"""Coverage-guided fuzzing of the receive stage's parsing path (atheris; not part of CI).

Each input is a transfer syntax choice and the dataset bytes a peer would send; the target
wraps them in a Part 10 file meta (as pynetdicom does for a received dataset) and runs what
the C-STORE handler runs on them, with the dataset's own UIDs: the memory-budget estimate
(:func:`dicom_node.memory_budget.check_cost`, a header peek) and
:func:`dicom_node.receive.check_instance` with the per-frame sample limit, so the pixel
checks and decoders are reached too. The first byte also picks the source, as the SCP
receives it: a temporary file (the default, chunked receive) or bytes in memory. Anything but
a returned header or ``InstanceRefused`` is a finding (the handler would answer 0xA700 for a
bad input instead of refusing it); so is a run over ``-timeout`` seconds or ``-rss_limit_mb``.

    pip install -e .[bench]
    python benchmarks/fuzz_receive.py fuzz-corpus/ -max_total_time=300 -rss_limit_mb=2048 -timeout=10

``fuzz-corpus/`` is seeded, when empty, with the hostile-input corpus of the tests
(tests/support/corpus.py) and valid phantom instances of every transfer syntax.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from io import BytesIO
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["pydicom", "dicom_node"]):
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import UID

    from dicom_node.contexts import ACCEPTED_TRANSFER_SYNTAXES, has_checked_pixels
    from dicom_node.memory_budget import check_cost
    from dicom_node.receive import InstanceRefused, check_instance

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
MAX_PIXEL_SAMPLES = 1 << 24
MAX_FRAME_SAMPLES = 1 << 22
#: the chunked receive's temporary file (in memory-backed /dev/shm when there is one)
SOURCE_FILE = Path(
    tempfile.mkstemp(suffix=".dcm", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)[1]
)
#: what the phantom writes: the valid seeds
SEED_SYNTAXES = (
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
)
MAX_INFLATED_BYTES = 64 << 20


def _meta(syntax: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(US_IMAGE)
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.1008.99")
    buffer = BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


METAS = [_meta(syntax) for syntax in ACCEPTED_TRANSFER_SYNTAXES]


def _uids(part10: bytes) -> tuple[str, str]:
    """The dataset's own SOP class and instance UIDs when readable, else placeholders."""
    try:
        ds = dcmread(
            BytesIO(part10),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID"],
        )
        return str(ds.get("SOPClassUID", US_IMAGE)), str(ds.get("SOPInstanceUID", "1.2.3.4"))
    except Exception:  # noqa: BLE001 (fuzzed bytes; check_instance judges them)
        return US_IMAGE, "1.2.3.4"


def test_one_input(data: bytes) -> None:
    if not data:
        return
    syntax_index = data[0] % len(ACCEPTED_TRANSFER_SYNTAXES)
    part10 = METAS[syntax_index] + data[1:]
    sop_class, sop_instance = _uids(part10)
    source: bytes | Path = part10
    if (data[0] // len(ACCEPTED_TRANSFER_SYNTAXES)) % 2 == 0:
        SOURCE_FILE.write_bytes(part10)
        source = SOURCE_FILE
    check_cost(source, len(part10), has_checked_pixels(sop_class), MAX_FRAME_SAMPLES)
    try:
        check_instance(
            source,
            sop_class,
            sop_instance,
            transfer_syntax_uid=str(ACCEPTED_TRANSFER_SYNTAXES[syntax_index]),
            max_pixel_samples=MAX_PIXEL_SAMPLES,
            max_frame_samples=MAX_FRAME_SAMPLES,
            max_inflated_bytes=MAX_INFLATED_BYTES,
        )
    except InstanceRefused:
        pass


def seed(folder: Path) -> None:
    """Write the hostile corpus and valid phantoms as seeds (first byte: the syntax index)."""
    from phantom.us_dicom import make_us_dataset
    from tests.support.corpus import build_corpus

    folder.mkdir(parents=True, exist_ok=True)
    index = {str(syntax): k for k, syntax in enumerate(ACCEPTED_TRANSFER_SYNTAXES)}
    for number, case in enumerate(build_corpus(truncations_per_base=8)):
        meta_end = 144 + int.from_bytes(case.data[140:144], "little")
        syntax = str(dcmread(BytesIO(case.data[:meta_end])).file_meta.TransferSyntaxUID)
        body = case.data[meta_end:]
        if syntax in index and len(body) < 1 << 20:
            (folder / f"corpus-{number:04d}").write_bytes(bytes([index[syntax]]) + body)
    for k, syntax in enumerate(SEED_SYNTAXES):
        ds, _, _ = make_us_dataset(seed=k, rows=32, cols=40, transfer_syntax=UID(syntax))
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        whole = buffer.getvalue()
        body = whole[144 + int.from_bytes(whole[140:144], "little") :]
        syntax_index = index[str(ds.file_meta.TransferSyntaxUID)]
        (folder / f"phantom-{k:02d}").write_bytes(bytes([syntax_index]) + body)


def main() -> None:
    warnings.simplefilter("ignore")
    folders = [Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")]
    for folder in folders:
        if not folder.exists() or not any(folder.iterdir()):
            seed(folder)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
