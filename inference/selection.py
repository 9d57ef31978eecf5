"""Choose a model input from a study's instances by the input's selection rule.

Choosing reads headers only (``stop_before_pixels``); only the chosen instance's frame is
decoded, to prove its pixels are usable (the next candidate is tried when they are not).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from inference.frames import frame_count, read_frame
from inference.registry import SelectionRule
from kernel.errors import InvalidInput

logger = logging.getLogger(__name__)

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE_STORAGE_RETIRED = "1.2.840.10008.5.1.4.1.1.6"
US_MULTIFRAME_IMAGE_STORAGE_RETIRED = "1.2.840.10008.5.1.4.1.1.3"
ULTRASOUND_IMAGE_CLASSES = frozenset(
    {
        US_IMAGE_STORAGE,
        US_MULTIFRAME_IMAGE_STORAGE,
        US_IMAGE_STORAGE_RETIRED,
        US_MULTIFRAME_IMAGE_STORAGE_RETIRED,
    }
)
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
_PIXEL_MODULE = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "PhotometricInterpretation")


class Selection(NamedTuple):
    """The chosen input: instance path, its header (no pixel data), frame index, decoded frame."""

    path: Path
    dataset: pydicom.Dataset
    frame_index: int
    frame: np.ndarray


def read_headers(paths: Iterable[Path]) -> list[tuple[Path, pydicom.Dataset]]:
    """Headers (no pixel data) of every readable DICOM file in ``paths``; others are skipped."""
    headers = []
    for path in paths:
        try:
            headers.append((Path(path), pydicom.dcmread(path, stop_before_pixels=True)))
        except (InvalidDicomError, OSError, ValueError, EOFError) as error:
            logger.warning("skipping unreadable file %s: %s", Path(path).name, error)
    return headers


def bmode_rejection(header: pydicom.Dataset) -> str | None:
    """Why ``header`` cannot be a B-mode input, or ``None`` when it can (header only)."""
    sop_class = str(header.get("SOPClassUID", ""))
    modality = str(header.get("Modality", "")).upper()
    if sop_class in SECONDARY_CAPTURE_CLASSES:
        if modality != "US":
            return "secondary capture not of modality US"
    elif sop_class not in ULTRASOUND_IMAGE_CLASSES:
        return f"not an ultrasound image ({UID(sop_class).name or 'no SOP class'})"
    if any(header.get(keyword) in (None, "") for keyword in _PIXEL_MODULE):
        return "incomplete image pixel module"
    syntax = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return "no transfer syntax"
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        return f"no decoder for {UID(syntax).name}"
    return None


def _order(item: tuple[Path, pydicom.Dataset]) -> tuple[int, int, int, str]:
    header = item[1]

    def number(keyword: str) -> int:
        try:
            return int(header.get(keyword) or 0)
        except (TypeError, ValueError):
            return 0

    single = 0 if frame_count(header) == 1 else 1
    return single, number("SeriesNumber"), number("InstanceNumber"), str(header.SOPInstanceUID)


def rank_bmode(
    headers: list[tuple[Path, pydicom.Dataset]],
) -> tuple[list[tuple[Path, pydicom.Dataset]], Counter[str]]:
    """B-mode candidates, best first, and a count of why the others were rejected.

    Single-frame images come before cines; ties break on SeriesNumber, InstanceNumber and
    SOPInstanceUID, so the choice is deterministic.
    """
    candidates: list[tuple[Path, pydicom.Dataset]] = []
    rejected: Counter[str] = Counter()
    for path, header in headers:
        reason = bmode_rejection(header)
        if reason is None and "SOPInstanceUID" not in header:
            reason = "no SOP instance UID"
        if reason is None:
            candidates.append((path, header))
        else:
            rejected[reason] += 1
    return sorted(candidates, key=_order), rejected


def select_bmode(paths: Iterable[Path]) -> Selection:
    """The B-mode input of a study: the best candidate whose chosen frame decodes.

    A cine gives its middle frame. Raises :class:`InvalidInput` with the reasons when no
    instance fits.
    """
    headers = read_headers(paths)
    candidates, rejected = rank_bmode(headers)
    for path, header in candidates:
        index = frame_count(header) // 2
        try:
            frame = read_frame(path, index, header)
        except InvalidInput as error:
            logger.warning("skipping %s: %s", path.name, error)
            rejected["pixel data does not decode"] += 1
            continue
        logger.debug("selected %s frame %d", path.name, index)
        return Selection(path, header, index, frame)
    reasons = "; ".join(f"{count} {reason}" for reason, count in sorted(rejected.items()))
    raise InvalidInput(
        f"no B-mode image in the study ({len(headers)} instance(s) read"
        + (f": {reasons})" if reasons else ")")
    )


def select_input(paths: Iterable[Path], rule: SelectionRule) -> Selection:
    """Choose the input named by ``rule`` from a study's instance files."""
    if rule is SelectionRule.BMODE:
        return select_bmode(paths)
    raise InvalidInput(f"selection rule {rule!r} is not implemented")
