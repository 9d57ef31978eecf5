"""The node segmentation as a DICOM Segmentation (BINARY), PS3.3 A.51, built by highdicom."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from inference.encode.codes import ALGORITHM_FAMILY_AI, LYMPH_NODE, SEGMENT_CATEGORY
from inference.encode.equipment import MANUFACTURER
from kernel.errors import EncodeError

logger = logging.getLogger(__name__)

SEGMENT_LABEL = "Lymph node"


@dataclass(frozen=True)
class OutputIdentity:
    """Identity of one output instance: UIDs, numbers and description."""

    series_instance_uid: str
    sop_instance_uid: str
    series_number: int
    instance_number: int
    series_description: str


def build_seg(
    mask: np.ndarray,
    source: Dataset,
    identity: OutputIdentity,
    *,
    model_key: str,
    model_version: str,
    tracking_id: str,
    tracking_uid: str,
) -> hd.seg.Segmentation:
    """A BINARY Segmentation of one node on a single-frame source image.

    Parameters
    ----------
    mask
        (Rows, Columns) mask on the source grid; non-zero is the node.
    source
        The CLEAN source header (:func:`inference.encode.source.clean_source`).
    identity
        UIDs, numbers and SeriesDescription of the SEG.
    model_key, model_version
        Algorithm name and version of the segment's Algorithm Identification (C.8.20.2).
    tracking_id, tracking_uid
        Shared with the SR measurement group to link the two (TID 1500 rows 112039/112040).

    Raises
    ------
    EncodeError
        For a multi-frame source (highdicom 0.28 cannot build it: use the SR polygon), an
        empty mask or a mask of the wrong shape.
    """
    if int(source.get("NumberOfFrames", 1) or 1) > 1:
        raise EncodeError("a SEG of a multi-frame ultrasound source is not built (highdicom #284)")
    binary = np.asarray(mask).astype(bool)
    if binary.shape != (int(source.Rows), int(source.Columns)):
        raise EncodeError(f"mask shape {binary.shape} differs from the source image")
    if not binary.any():
        raise EncodeError("an empty mask has no segment to encode")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_key, family=ALGORITHM_FAMILY_AI, version=model_version
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=SEGMENT_CATEGORY,
        segmented_property_type=LYMPH_NODE,
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
        manufacturer_model_name=model_key[:64],
        software_versions=model_version[:64],
        device_serial_number=model_key[:64],
        series_description=identity.series_description[:64],
    )
    seg.PatientOrientation = ""  # dicom.md: dciodvfy requires it on a US-derived SEG
    logger.debug("built SEG with %d foreground pixels", int(binary.sum()))
    return seg
