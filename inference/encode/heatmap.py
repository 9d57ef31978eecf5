"""The Grad-CAM heatmap as an RGB Secondary Capture image (PS3.3 A.8.1) any viewer can show.

The source frame is shown in grey, blended with a colour map of the heatmap, with a colour
scale bar and its labels burned in on the right.
"""

from __future__ import annotations

import logging
from copy import deepcopy

import highdicom as hd
import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, pixel_array

from inference.encode.codes import HEATMAP_DERIVATION
from inference.encode.equipment import MANUFACTURER, model_name
from inference.encode.seg import OutputIdentity
from inference.encode.source import PATIENT_AND_STUDY, laterality_code_string, references_frames
from inference.registry import ModelSpec
from kernel.errors import EncodeError

logger = logging.getLogger(__name__)

COLORMAP = "jet"
MAX_ALPHA = 0.6
BAR_WIDTH = 64


def source_frame_rgb(source: Dataset, frame_index: int) -> np.ndarray:
    """Decode frame ``frame_index`` of ``source`` (that frame only) as (Rows, Columns, 3) uint8 RGB.

    pydicom 3 already converts YBR to RGB; PALETTE COLOR goes through its LUT; MONOCHROME1 is
    inverted; more than 8 bits are scaled to the stored range.
    """
    frames = max(1, int(source.get("NumberOfFrames", 1) or 1))
    if not 0 <= frame_index < frames:
        raise EncodeError(f"frame index {frame_index} outside 0..{frames - 1}")
    # only this frame is decoded: an 87-frame JPEG cine's other frames are never touched, and
    # a frame count the data exceeds (NumberOfFrames 0, tolerated on receipt) gives one frame
    pixels = pixel_array(source, index=frame_index)
    photometric = str(source.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, source)
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            low, high = float(array.min()), float(array.max())
        elif photometric == "PALETTE COLOR":
            low, high = 0.0, float(np.iinfo(array.dtype).max)
        else:
            bits = int(source.get("BitsStored", 8) or 8)
            signed = int(source.get("PixelRepresentation", 0) or 0) == 1
            low = -(2.0 ** (bits - 1)) if signed else 0.0
            high = (2.0 ** (bits - 1) - 1) if signed else 2.0**bits - 1
        scale = 255.0 / (high - low) if high > low else 0.0
        array = ((array.astype(np.float64) - low) * scale).clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        if photometric == "MONOCHROME1":
            array = 255 - array
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _scale_bar(rows: int) -> np.ndarray:
    """A (rows, BAR_WIDTH, 3) panel: a vertical colour scale with labels 1.0 (top) and 0.0."""
    panel = np.zeros((rows, BAR_WIDTH, 3), np.uint8)
    margin = min(16, rows // 8)
    height = max(rows - 2 * margin, 1)
    values = np.linspace(1.0, 0.0, height)
    colours = (colormaps[COLORMAP](values)[:, :3] * 255).astype(np.uint8)
    panel[margin : margin + height, 4:20] = colours[:, None, :]
    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((23, margin - 2), "1.0", fill=(255, 255, 255), font=font)
    draw.text((23, margin + height // 2 - 6), "0.5", fill=(255, 255, 255), font=font)
    draw.text((23, margin + height - 12), "0.0", fill=(255, 255, 255), font=font)
    return np.asarray(image)


def blend_heatmap(frame_rgb: np.ndarray, heatmap: np.ndarray, label: str) -> np.ndarray:
    """The grey frame blended with the colour-mapped heatmap, scale bar and label burned in.

    Parameters
    ----------
    frame_rgb
        (Rows, Columns, 3) uint8 source frame.
    heatmap
        (Rows, Columns) values in [0, 1] (clipped); opacity grows with the value.
    label
        Text burned in at the top left (the model and "Grad-CAM").
    """
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float64)).clip(0.0, 1.0)
    if heat.shape != frame_rgb.shape[:2]:
        raise EncodeError(
            f"heatmap shape {heat.shape} differs from the frame {frame_rgb.shape[:2]}"
        )
    grey = frame_rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    base = np.repeat(grey[..., None], 3, axis=-1)
    colour = colormaps[COLORMAP](heat)[..., :3] * 255.0
    alpha = (MAX_ALPHA * heat)[..., None]
    blended = ((1.0 - alpha) * base + alpha * colour).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(np.concatenate([blended, _scale_bar(blended.shape[0])], axis=1))
    font = ImageFont.load_default()
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(label_lines(label, image.width - 8, font)):
        draw.text((4, 2 + 12 * row), line, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def label_lines(label: str, width: int, font: ImageFont.ImageFont) -> list[str]:
    """``label`` broken at spaces into lines at most ``width`` pixels wide (a longer word
    keeps its own line): the whole label is burned in, never cut."""
    lines: list[str] = []
    for word in label.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def heatmap_label(spec: ModelSpec) -> str:
    """The label burned into the heatmap: the method and the model's whole name."""
    return f"Grad-CAM {model_name(spec.key, spec.version)}"


def build_heatmap(
    frame_rgb: np.ndarray,
    heatmap: np.ndarray,
    source: Dataset,
    identity: OutputIdentity,
    *,
    spec: ModelSpec,
    frame_index: int = 0,
) -> hd.sc.SCImage:
    """An RGB Secondary Capture of the blended heatmap in the source's study, new series.

    Parameters
    ----------
    frame_rgb
        The decoded source frame (:func:`source_frame_rgb`).
    heatmap
        Grad-CAM map in [0, 1] on the frame grid.
    source
        The CLEAN source header (:func:`inference.encode.source.clean_source`).
    identity
        UIDs, numbers and SeriesDescription of the image.
    spec
        The model: its name (label, equipment) and the layer Grad-CAM hooked.
    frame_index
        The source frame shown (0-based), referenced in SourceImageSequence for a cine.
    """
    pixels = blend_heatmap(frame_rgb, heatmap, heatmap_label(spec))
    laterality = laterality_code_string(source)
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=identity.series_instance_uid,
        series_number=identity.series_number,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=identity.instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=("A", "F"),  # placeholder, emptied below: US has no orientation
        laterality=laterality,
        series_description=identity.series_description[:64],
    )
    # highdicom's SC copies only part of the Patient and Study modules (no StudyDescription,
    # IssuerOfPatientID, PatientAge, PatientBirthDate): the heatmap carries what the SR carries
    for keyword in PATIENT_AND_STUDY:
        if keyword in source and keyword not in image:
            image.add(deepcopy(source[keyword]))
    image.PatientOrientation = ""
    if laterality is None:  # Type 2C that dciodvfy requires of an SC: empty, i.e. unknown
        image.Laterality = ""
    image.BurnedInAnnotation = "YES"
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.Modality = "US" if str(source.get("Modality", "")) == "US" else "OT"
    image.ConversionType = "WSD"  # a workstation made it (PS3.3 C.8.6.1)
    image.ManufacturerModelName = model_name(spec.key, spec.version)
    image.SoftwareVersions = spec.version[:64]
    frame = f", frame {frame_index + 1}" if int(source.get("NumberOfFrames", 1) or 1) > 1 else ""
    image.DerivationDescription = (
        f"Grad-CAM map of {model_name(spec.key, spec.version)} (layer "
        f"{spec.outputs.heatmap.layer}) blended over the source image{frame}, "
        f"with a colour scale from 0.0 to 1.0"
    )[:1024]
    derivation = Dataset()
    derivation.CodeValue = HEATMAP_DERIVATION.value
    derivation.CodingSchemeDesignator = HEATMAP_DERIVATION.scheme_designator
    derivation.CodeMeaning = HEATMAP_DERIVATION.meaning
    image.DerivationCodeSequence = [derivation]
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if references_frames(source):
        reference.ReferencedFrameNumber = frame_index + 1
    image.SourceImageSequence = [reference]
    logger.debug("built heatmap image %s", pixels.shape)
    return image
