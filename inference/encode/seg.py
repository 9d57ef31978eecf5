"""The model's segmentation as a DICOM Segmentation (BINARY), PS3.3 A.51, built by highdicom.

The segment is described by the model's spec (label, category, type); the Pixel Measures
functional group carries the pixel size of the calibrated ultrasound region that holds the
segment (OHIF needs it to open a SEG at all; :func:`inference.encode.outputs.build_outputs`
builds no SEG for an uncalibrated source).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from inference.encode.codes import ALGORITHM_FAMILY_AI, from_spec
from inference.encode.equipment import MANUFACTURER, model_name
from inference.registry import ModelSpec
from kernel.errors import EncodeError

logger = logging.getLogger(__name__)

IMAGE_PLANE_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
"""The orientation written in the SEG's Plane Orientation group: the image plane itself (rows
along x, columns along y), the orientation viewers assume for an ultrasound image that has none;
OHIF refuses a SEG without the group."""


@dataclass(frozen=True)
class OutputIdentity:
    """Identity of one output instance: UIDs, numbers and description."""

    series_instance_uid: str
    sop_instance_uid: str
    series_number: int
    instance_number: int
    series_description: str


def pixel_measures_item(pixel_spacing_mm: tuple[float, float]) -> Dataset:
    """A Pixel Measures Sequence item (PS3.3 C.7.6.16.2.1): (row, column) spacing in mm.

    Values are rounded to 0.1 micrometre (DS holds 16 characters).
    """
    item = Dataset()
    item.PixelSpacing = [round(float(v), 7) for v in pixel_spacing_mm]
    return item


def build_seg(
    mask: np.ndarray,
    source: Dataset,
    identity: OutputIdentity,
    *,
    spec: ModelSpec,
    tracking_id: str,
    tracking_uid: str,
    pixel_spacing_mm: tuple[float, float],
) -> hd.seg.Segmentation:
    """A BINARY Segmentation of the spec's first segment on a single-frame source image.

    Parameters
    ----------
    mask
        (Rows, Columns) mask on the source grid; non-zero is the segment.
    source
        The CLEAN source header (:func:`inference.encode.source.clean_source`).
    identity
        UIDs, numbers and SeriesDescription of the SEG.
    spec
        The model: segment label and codes, algorithm identification, equipment name.
    tracking_id, tracking_uid
        Shared with the SR measurement group to link the two (TID 1500 rows 112039/112040).
    pixel_spacing_mm
        (row, column) pixel size in mm of the calibrated ultrasound region holding the mask.

    Raises
    ------
    EncodeError
        For a multi-frame source (highdicom 0.28 cannot build it: use the SR polygon), a spec
        without segments, an empty mask or a mask of the wrong shape.
    """
    if int(source.get("NumberOfFrames", 1) or 1) > 1:
        raise EncodeError("a SEG of a multi-frame ultrasound source is not built (highdicom #284)")
    if not spec.outputs.segments:
        raise EncodeError(f"model {spec.ref} declares no segment")
    binary = np.asarray(mask).astype(bool)
    if binary.shape != (int(source.Rows), int(source.Columns)):
        raise EncodeError(f"mask shape {binary.shape} differs from the source image")
    if not binary.any():
        raise EncodeError("an empty mask has no segment to encode")
    segment = spec.outputs.segments[0]
    algorithm = hd.AlgorithmIdentificationSequence(
        name=spec.key, family=ALGORITHM_FAMILY_AI, version=spec.version
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment.label[:64],
        segmented_property_category=from_spec(segment.category),
        segmented_property_type=from_spec(segment.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        tracking_uid=tracking_uid,
        tracking_id=tracking_id,
    )
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=binary[None].astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=identity.series_instance_uid,
        series_number=identity.series_number,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=identity.instance_number,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model_name(spec.key, spec.version),
        software_versions=spec.version[:64],
        device_serial_number=spec.key[:64],
        series_description=identity.series_description[:64],
    )
    seg.PatientOrientation = ""  # dicom.md: dciodvfy requires it on a US-derived SEG
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PixelMeasuresSequence" not in shared:
        shared.PixelMeasuresSequence = [pixel_measures_item(pixel_spacing_mm)]
    if "PlaneOrientationSequence" not in shared:
        orientation = Dataset()
        orientation.ImageOrientationPatient = list(IMAGE_PLANE_ORIENTATION)
        shared.PlaneOrientationSequence = [orientation]
    logger.debug("built SEG with %d foreground pixels", int(binary.sum()))
    return seg
