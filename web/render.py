"""Pictures for the study page: the source frame with the node outline, and the heatmap, as PNG.

The outline comes from the SEG (its segment on the source frame) when there is one, else
from the SR polygon (a cine source has no SEG); the long and short axis from the SR's calipers.
Both are drawn in :data:`OUTLINE_RGB`.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw
from scipy.ndimage import binary_dilation, binary_erosion

from inference.frames import read_frame

OUTLINE_RGB = (0, 255, 0)
OUTLINE_WIDTH = 2


def to_rgb8(frame: np.ndarray) -> np.ndarray:
    """A decoded frame (grey or RGB, unsigned integers at full dtype range) as uint8 RGB."""
    array = np.asarray(frame)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.integer):
            array = (array.astype(np.float64) * (255.0 / np.iinfo(array.dtype).max)).round()
        else:
            low, high = float(array.min()), float(array.max())
            array = (array - low) * (255.0 / (high - low)) if high > low else array * 0
        array = array.clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def source_frame(path: Path, frame_number: int) -> np.ndarray:
    """Frame ``frame_number`` (1-based) of the received instance at ``path``, uint8 RGB."""
    return to_rgb8(read_frame(path, frame_number - 1))


def seg_mask(seg_path: Path, source_sop_instance_uid: str) -> np.ndarray | None:
    """The SEG's frames on the source image, combined into one boolean mask (or None).

    Read with pydicom, frame by frame through each frame's Derivation Image reference: our SEG of
    an uncalibrated ultrasound image carries Pixel Measures without spacing, which
    highdicom's reader refuses although the standard allows it.
    """
    seg = pydicom.dcmread(seg_path)
    frames = np.asarray(seg.pixel_array).reshape(-1, int(seg.Rows), int(seg.Columns))
    mask = np.zeros(frames.shape[1:], dtype=bool)
    found = False
    for index, group in enumerate(seg.get("PerFrameFunctionalGroupsSequence", [])):
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                if source.get("ReferencedSOPInstanceUID") == source_sop_instance_uid:
                    mask |= frames[index] > 0
                    found = True
    return mask if found else None


def draw_mask_outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the boundary of ``mask`` painted in :data:`OUTLINE_RGB`."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the image {image.shape[:2]}")
    boundary = mask & ~binary_erosion(mask, iterations=1, border_value=0)
    boundary = binary_dilation(boundary, iterations=OUTLINE_WIDTH - 1) if OUTLINE_WIDTH > 1 else boundary
    out = image.copy()
    out[boundary] = OUTLINE_RGB
    return out


def draw_polyline(image: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
    """``image`` with the polyline ``points`` (SCOORD column, row) drawn on it: the outline
    (closed: its last point is its first) or an axis (two points)."""
    picture = Image.fromarray(image)
    if len(points) >= 2:
        # SCOORD (0, 0) is the top-left corner of the top-left pixel; PIL draws on pixel centres
        shifted = [(x - 0.5, y - 0.5) for x, y in points]
        ImageDraw.Draw(picture).line(shifted, fill=OUTLINE_RGB, width=OUTLINE_WIDTH)
    return np.asarray(picture)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def heatmap_png(path: Path) -> bytes:
    """The heatmap Secondary Capture's pixels (RGB, first frame) as PNG."""
    dataset = pydicom.dcmread(path)
    pixels = np.asarray(dataset.pixel_array)
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    return png_bytes(to_rgb8(pixels))
