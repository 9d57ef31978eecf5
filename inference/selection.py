"""Choose a model input from a study's instances by the input's selection rule.

Rules (``SelectionRule``):

- ``bmode``: a grey-scale ultrasound image; single frames before cines (a cine gives its middle
  frame); never a CEUS instance. A colour Doppler image (its grey B-mode under the colour) is
  taken only when the study holds no grey-scale image, and the selection's ``note`` says so.
- ``doppler``: a colour Doppler image: a region of RegionDataType 2 (colour flow) in
  SequenceOfUltrasoundRegions, or a measurable fraction of coloured pixels in the tissue region
  (:data:`DOPPLER_MIN_COLOUR_FRACTION`); instances with a colour-flow region come first.
- ``cine``: a grey multi-frame instance (NumberOfFrames > 1), neither Doppler nor CEUS; the
  input's ``frames`` are sampled evenly over the whole cine.
- ``ceus``: a multi-frame instance the configurable :class:`CeusRule` marks as contrast
  (SeriesDescription "CEUS" by default); ``frames`` key frames at equal intervals.

Choosing reads headers only (``stop_before_pixels``); only the chosen instance's frames are
decoded (the next candidate is tried when they do not decode or their content does not fit).
Ties break on SeriesNumber, InstanceNumber and SOPInstanceUID, so the choice is deterministic.
An input the study does not hold raises :class:`MissingInput` with the reasons: never a guess.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import UID

from inference.frames import frame_count, read_frame, read_frames
from inference.regions import tissue_box, ultrasound_regions
from inference.registry import ModelInput, SelectionRule
from kernel.errors import InvalidInput
from kernel.provenance import is_node_result
from kernel.settings import Settings

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

COLOUR_FLOW_DATA_TYPE = 2
"""RegionDataType 2: colour flow (PS3.3 C.8.5.5.1.2)."""
COLOUR_CHROMA_LEVEL = 40
"""A pixel is coloured when max(R,G,B) - min(R,G,B) exceeds this (on 0-255)."""
DOPPLER_MIN_COLOUR_FRACTION = 0.02
"""Fraction of coloured pixels in the tissue region that makes an image colour Doppler.

Measured on real files: grey images with palette or JPEG colour noise stay below 0.3 %, the
NEMA power Doppler image (US1) holds 5 %.
"""
_NO_INPUT = {
    SelectionRule.BMODE: "no B-mode image in the study",
    SelectionRule.DOPPLER: "no colour Doppler image in the study",
    SelectionRule.CINE: "no grey-scale cine in the study",
    SelectionRule.CEUS: "no contrast-enhanced (CEUS) cine in the study",
}

NOTE_BMODE_FROM_DOPPLER = (
    "no grey-scale B-mode image in the study: the B-mode input is a colour Doppler image"
)

Header = tuple[Path, pydicom.Dataset]


class MissingInput(InvalidInput):
    """The study holds no instance that fits a model input: the model is skipped, not failed."""

    def __init__(self, message: str, input_name: str, rule: SelectionRule) -> None:
        super().__init__(message)
        self.input_name = input_name
        self.rule = rule


class Selection(NamedTuple):
    """The chosen input: instance path, its header (no pixel data), frame index, decoded frame."""

    path: Path
    dataset: pydicom.Dataset
    frame_index: int
    frame: np.ndarray


@dataclass(frozen=True)
class InputSelection:
    """The instance and frames chosen for one named model input.

    ``frame_indices`` are the source frames fed to the model, in order, and ``frames`` their
    decoded pixels (grey (H,W) or RGB (H,W,3)); ``key_position`` is the index into them of the
    key frame (the frame Grad-CAM and the outputs are shown on). ``note`` tells a reader of the
    report about a choice it should know of (a B-mode input taken from a Doppler image).
    """

    name: str
    rule: SelectionRule
    path: Path
    dataset: pydicom.Dataset
    frame_indices: tuple[int, ...]
    frames: tuple[np.ndarray, ...]
    key_position: int
    note: str | None = None

    @property
    def key_frame(self) -> int:
        """The source frame index (0-based) of the key frame."""
        return self.frame_indices[self.key_position]


@dataclass(frozen=True)
class CeusRule:
    """Which instances are contrast-enhanced: ``pattern`` matches the value of ``tag``.

    ``tag`` is a DICOM keyword or ``"GGGG,EEEE"`` (a private tag too). Build it from the
    settings with :meth:`from_settings`; the defaults are the settings' defaults.
    """

    tag: str = str(Settings.model_fields["ceus_tag"].default)
    pattern: str = str(Settings.model_fields["ceus_pattern"].default)

    @classmethod
    def from_settings(cls, settings: Settings) -> CeusRule:
        """The rule of ``settings.ceus_tag`` and ``settings.ceus_pattern``."""
        return cls(tag=settings.ceus_tag, pattern=settings.ceus_pattern)

    def matches(self, header: pydicom.Dataset) -> bool:
        """True when the header's value of ``tag`` matches ``pattern``."""
        if "," in self.tag:
            group, element = self.tag.split(",")
            tag = Tag(int(group, 16), int(element, 16))
        else:
            number = tag_for_keyword(self.tag)
            if number is None:
                return False
            tag = Tag(number)
        element = header.get(tag)
        if element is None or element.value is None:
            return False
        value = element.value
        if isinstance(value, bytes):
            value = value.decode("latin-1", errors="replace")
        return re.search(self.pattern, str(value)) is not None


def read_headers(paths: Iterable[Path]) -> list[Header]:
    """Headers (no pixel data) of every readable DICOM file in ``paths``; others are skipped."""
    headers = []
    for path in paths:
        try:
            headers.append((Path(path), pydicom.dcmread(path, stop_before_pixels=True)))
        except (InvalidDicomError, OSError, ValueError, EOFError) as error:
            logger.warning("skipping unreadable file %s: %s", Path(path).name, error)
    return headers


def bmode_rejection(header: pydicom.Dataset) -> str | None:
    """Why ``header`` cannot be an ultrasound image input, or ``None`` when it can (header only)."""
    sop_class = str(header.get("SOPClassUID", ""))
    modality = str(header.get("Modality", "")).upper()
    if is_node_result(header):
        return "a result of this node, not an acquisition"
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
    if "SOPInstanceUID" not in header:
        return "no SOP instance UID"
    return None


def has_colour_flow_region(header: pydicom.Dataset) -> bool:
    """True when an ultrasound region of the header is colour flow (RegionDataType 2)."""
    return any(region.data_type == COLOUR_FLOW_DATA_TYPE for region in ultrasound_regions(header))


def is_colour(header: pydicom.Dataset) -> bool:
    """True when the pixels can hold colour (RGB, YBR or PALETTE COLOR)."""
    photometric = str(header.get("PhotometricInterpretation", "")).strip().upper()
    return photometric.startswith(("RGB", "YBR", "PALETTE"))


def colour_fraction(frame: np.ndarray, header: pydicom.Dataset) -> float:
    """Fraction of coloured pixels (chroma above :data:`COLOUR_CHROMA_LEVEL`) in the tissue box.

    A grey frame (H,W) gives 0. The tissue box keeps coloured annotations outside the image
    area (text, colour bars) out of the count.
    """
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[-1] < 3:
        return 0.0
    x0, y0, x1, y1 = tissue_box(header)
    crop = array[y0:y1, x0:x1, :3] if x1 > x0 and y1 > y0 else array[..., :3]
    if crop.size == 0:
        crop = array[..., :3]
    scale = (
        255.0 / float(np.iinfo(crop.dtype).max) if np.issubdtype(crop.dtype, np.integer) else 1.0
    )
    chroma = (crop.max(axis=-1).astype(np.float32) - crop.min(axis=-1)) * scale
    return float((chroma > COLOUR_CHROMA_LEVEL).mean())


def is_doppler_frame(frame: np.ndarray, header: pydicom.Dataset) -> bool:
    """True when the decoded frame holds colour Doppler content (see :func:`colour_fraction`)."""
    return colour_fraction(frame, header) >= DOPPLER_MIN_COLOUR_FRACTION


def sample_frame_indices(count: int, frames: int) -> tuple[int, ...]:
    """``frames`` frame indices spread evenly over ``count`` frames, first and last included.

    One frame is the middle one. When ``count < frames`` some frames repeat.
    """
    if frames <= 1:
        return (count // 2,)
    return tuple(int(i) for i in np.rint(np.linspace(0, count - 1, frames)).astype(int))


def _number(header: pydicom.Dataset, keyword: str) -> int:
    try:
        return int(header.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def _order(item: Header) -> tuple[int, int, int, str]:
    header = item[1]
    single = 0 if frame_count(header) == 1 else 1
    return (
        single,
        _number(header, "SeriesNumber"),
        _number(header, "InstanceNumber"),
        str(header.SOPInstanceUID),
    )


def _series_order(item: Header) -> tuple[int, int, int, str]:
    header = item[1]
    return (
        0,
        _number(header, "SeriesNumber"),
        _number(header, "InstanceNumber"),
        str(header.SOPInstanceUID),
    )


def _doppler_order(item: Header) -> tuple[int, int, int, int, str]:
    return (0 if has_colour_flow_region(item[1]) else 1, *_order(item))


def _bmode_order(item: Header) -> tuple[int, int, int, int, str]:
    return (1 if has_colour_flow_region(item[1]) else 0, *_order(item))


def _rule_rejection(header: pydicom.Dataset, rule: SelectionRule, ceus: CeusRule) -> str | None:
    """Why a usable ultrasound image cannot serve ``rule`` (header only), or ``None``."""
    contrast = ceus.matches(header)
    multi = frame_count(header) > 1
    if rule is SelectionRule.CEUS:
        if not contrast:
            return "not marked as CEUS"
        return None if multi else "CEUS but a single frame"
    if contrast:
        return "a CEUS instance"
    if rule is SelectionRule.DOPPLER:
        if has_colour_flow_region(header) or is_colour(header):
            return None
        return "grey-scale, no colour flow region"
    if rule is SelectionRule.CINE and has_colour_flow_region(header):
        return "a colour Doppler image (colour flow region)"
    if rule is SelectionRule.CINE and not multi:
        return "a single frame"
    return None


def _content_rejection(
    frame: np.ndarray, header: pydicom.Dataset, rule: SelectionRule
) -> str | None:
    """Why the decoded key frame's content does not fit ``rule``, or ``None``."""
    if rule is SelectionRule.DOPPLER:
        if has_colour_flow_region(header) or is_doppler_frame(frame, header):
            return None
        return "no colour flow content"
    if rule is SelectionRule.BMODE and has_colour_flow_region(header):
        return "a colour Doppler image (colour flow region)"
    if rule in (SelectionRule.BMODE, SelectionRule.CINE) and is_doppler_frame(frame, header):
        return "a colour Doppler image (coloured pixels)"
    return None


_ORDERS: dict[SelectionRule, Callable[[Header], tuple[object, ...]]] = {
    SelectionRule.BMODE: _bmode_order,
    SelectionRule.DOPPLER: _doppler_order,
    SelectionRule.CINE: _series_order,
    SelectionRule.CEUS: _series_order,
}


def rank_candidates(
    headers: list[Header], rule: SelectionRule, ceus: CeusRule | None = None
) -> tuple[list[Header], Counter[str]]:
    """Candidates for ``rule``, best first, and a count of why the others were rejected.

    Header only. B-mode takes single frames before cines and images with a colour flow region
    last; Doppler takes those first; ties break on SeriesNumber, InstanceNumber and
    SOPInstanceUID.
    """
    ceus = ceus or CeusRule()
    candidates: list[Header] = []
    rejected: Counter[str] = Counter()
    for path, header in headers:
        reason = bmode_rejection(header) or _rule_rejection(header, rule, ceus)
        if reason is None:
            candidates.append((path, header))
        else:
            rejected[reason] += 1
    return sorted(candidates, key=_ORDERS[rule]), rejected


def rank_bmode(headers: list[Header]) -> tuple[list[Header], Counter[str]]:
    """B-mode candidates, best first, and a count of why the others were rejected."""
    return rank_candidates(headers, SelectionRule.BMODE)


def _missing(rule: SelectionRule, name: str, read: int, rejected: Counter[str]) -> MissingInput:
    reasons = "; ".join(f"{count} {reason}" for reason, count in sorted(rejected.items()))
    detail = f"{read} instance(s) read" + (f": {reasons}" if reasons else "")
    return MissingInput(f"{_NO_INPUT[rule]} ({detail})", name, rule)


def _decode(
    path: Path, header: pydicom.Dataset, indices: tuple[int, ...], key: np.ndarray
) -> list[np.ndarray]:
    """The frames ``indices`` of one instance whose key (middle) frame ``key`` is decoded
    already: the others in one pass over the file, each distinct frame once."""
    key_index = indices[len(indices) // 2]
    rest = [index for index in indices if index != key_index]
    decoded = dict(zip(rest, read_frames(path, rest, header), strict=True))
    decoded[key_index] = key
    return [decoded[index] for index in indices]


def choose(
    headers: list[Header],
    rule: SelectionRule,
    frames: int = 1,
    *,
    name: str | None = None,
    ceus: CeusRule | None = None,
) -> InputSelection:
    """The instance and ``frames`` frames of ``headers`` that serve ``rule``.

    ``frames == 1`` takes the middle frame; more frames are sampled evenly over the whole
    instance (:func:`sample_frame_indices`). The key frame is the middle sampled frame. For
    B-mode, colour Doppler images are kept aside and used only when no grey-scale image fits
    (with :data:`NOTE_BMODE_FROM_DOPPLER`). Raises :class:`MissingInput` with the reasons when
    no instance fits.
    """
    name = name or rule.value
    candidates, rejected = rank_candidates(headers, rule, ceus)
    kept_aside: list[tuple[Path, pydicom.Dataset, tuple[int, ...], np.ndarray]] = []
    for path, header in candidates:
        indices = sample_frame_indices(frame_count(header), frames)
        try:
            key = read_frame(path, indices[len(indices) // 2], header)
        except InvalidInput as error:
            logger.warning("skipping %s: %s", path.name, error)
            rejected["pixel data does not decode"] += 1
            continue
        reason = _content_rejection(key, header, rule)
        if reason is not None and rule is SelectionRule.BMODE:
            kept_aside.append((path, header, indices, key))
        if reason is not None:
            rejected[reason] += 1
            continue
        chosen = _selection(name, rule, path, header, indices, key, rejected)
        if chosen is not None:
            return chosen
    for path, header, indices, key in kept_aside:
        chosen = _selection(name, rule, path, header, indices, key, rejected)
        if chosen is not None:
            logger.info("input %s: no grey-scale image, a colour Doppler image is used", name)
            return replace(chosen, note=NOTE_BMODE_FROM_DOPPLER)
    raise _missing(rule, name, len(headers), rejected)


def _selection(
    name: str,
    rule: SelectionRule,
    path: Path,
    header: pydicom.Dataset,
    indices: tuple[int, ...],
    key: np.ndarray,
    rejected: Counter[str],
) -> InputSelection | None:
    """The selection of ``indices`` of one candidate (its key frame decoded), or ``None``."""
    try:
        decoded = _decode(path, header, indices, key) if len(indices) > 1 else [key]
    except InvalidInput as error:
        logger.warning("skipping %s: %s", path.name, error)
        rejected["pixel data does not decode"] += 1
        return None
    logger.debug("input %s: selected %s frames %s", name, path.name, indices)
    return InputSelection(name, rule, path, header, indices, tuple(decoded), len(indices) // 2)


def select_model_input(
    headers: list[Header], model_input: ModelInput, *, ceus: CeusRule | None = None
) -> InputSelection:
    """The selection for one named model input: its rule, and as many frames as its contract.

    ``headers`` are the study's headers (:func:`read_headers`), read once for all inputs.
    """
    return choose(
        headers, model_input.rule, model_input.contract.frames, name=model_input.name, ceus=ceus
    )


def select_bmode(paths: Iterable[Path]) -> Selection:
    """The B-mode input of a study: the best candidate whose chosen frame decodes.

    A cine gives its middle frame. Raises :class:`MissingInput` (an :class:`InvalidInput`)
    with the reasons when no instance fits.
    """
    return select_input(paths, SelectionRule.BMODE)


def select_input(
    paths: Iterable[Path], rule: SelectionRule, *, ceus: CeusRule | None = None
) -> Selection:
    """Choose the input named by ``rule`` from a study's instance files (its key frame)."""
    chosen = choose(read_headers(paths), rule, 1, ceus=ceus)
    return Selection(chosen.path, chosen.dataset, chosen.key_frame, chosen.frames[0])


def reference_header(paths: Iterable[Path]) -> Header | None:
    """A header of the study to describe it by when no input fits (e.g. in a "not run" SR).

    The first readable instance, ultrasound images first, in series and instance order;
    ``None`` when no file of the study is readable DICOM with a SOP Instance UID.
    """
    headers = [(p, h) for p, h in read_headers(paths) if "SOPInstanceUID" in h]
    if not headers:
        return None

    def key(item: Header) -> tuple[int, int, int, str]:
        _, series, instance, uid = _series_order(item)
        return (0 if bmode_rejection(item[1]) is None else 1), series, instance, uid

    return min(headers, key=key)
