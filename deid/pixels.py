"""Burned-in text: blank every pixel outside the ultrasound tissue regions (PS3.3 C.8.5.5)."""

from __future__ import annotations

import numpy as np
from pydicom import Dataset

from inference.regions import tissue_regions


def tissue_mask(ds: Dataset) -> np.ndarray | None:
    """Rows x columns, True inside a tissue or colour-flow region; None when there is none."""
    regions = tissue_regions(ds)
    if not regions:
        return None
    mask = np.zeros((int(ds.Rows), int(ds.Columns)), dtype=bool)
    for region in regions:
        x0, y0, x1, y1 = region.box()
        mask[y0:y1, x0:x1] = True
    return mask


def blank_outside_tissue(ds: Dataset) -> bool:
    """Set every pixel outside the tissue regions to 0, re-encoded uncompressed.

    Returns False (pixels untouched) when the image has no tissue region: then nothing can be
    said of its burned-in text. YBR colour is decoded to RGB (pydicom's default) and written so.
    """
    mask = tissue_mask(ds)
    if mask is None or "PixelData" not in ds:
        return False
    pixels = ds.pixel_array.copy()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels[:, ~mask] = 0
    else:
        pixels[~mask] = 0
    photometric = str(ds.PhotometricInterpretation)
    if photometric.startswith("YBR"):
        photometric = "RGB"
    ds.set_pixel_data(pixels, photometric, int(ds.BitsStored), generate_instance_uid=False)
    if "NumberOfFrames" in ds and frames == 1 and pixels.ndim == 2 + (photometric == "RGB"):
        ds.NumberOfFrames = 1
    return True
