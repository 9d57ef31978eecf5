"""The DICOM header of a synthetic ultrasound instance: identity, calibration, pixels.

Everything written here says it is synthetic: PatientName ``SYNTHETIC^PHANTOM`` and an
ImageComments line. Pixels are stored uncompressed (Explicit VR Little Endian).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

US_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")
SYNTHETIC_PATIENT_NAME = "SYNTHETIC^PHANTOM"
SYNTHETIC_COMMENT = "SYNTHETIC PHANTOM - NOT A PATIENT"
SYNTHETIC_BODY_PART = "NECK"
"""BodyPartExamined of every phantom instance: cervical lymph nodes, in the demo models' scope."""
MODE_2D = "0001"
MODE_2D_COLOUR = "0011"
TISSUE_DATA_TYPE = 1
COLOUR_FLOW_DATA_TYPE = 2
_STUDY_TIME = datetime(2026, 1, 1, 12, 0, 0)


@dataclass(frozen=True)
class InstanceIdentity:
    """Who and what one synthetic instance is: UIDs, numbers, descriptions."""

    patient_id: str
    accession_number: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    series_number: int
    series_description: str
    instance_number: int = 1


def calibrated_region(
    box: tuple[int, int, int, int], mm_per_pixel: float, data_type: int = TISSUE_DATA_TYPE
) -> Dataset:
    """One SequenceOfUltrasoundRegions item: 2D, cm units, ``box`` = (x0, y0, x1, y1) inclusive."""
    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionDataType = data_type
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = int(box[0]), int(box[1])
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = int(box[2]), int(box[3])
    item.PhysicalUnitsXDirection = 3
    item.PhysicalUnitsYDirection = 3
    item.PhysicalDeltaX = mm_per_pixel / 10.0
    item.PhysicalDeltaY = mm_per_pixel / 10.0
    item.ReferencePixelX0 = 0
    item.ReferencePixelY0 = 0
    return item


def us_dataset(
    pixels: np.ndarray,
    identity: InstanceIdentity,
    regions: list[Dataset],
    *,
    multi_frame: bool,
    frame_time_ms: float = 40.0,
    modes: str = MODE_2D,
    sop_class: UID | None = None,
) -> Dataset:
    """A US Image (or US Multi-frame Image when ``multi_frame``) dataset holding ``pixels``.

    ``pixels``: uint8 grey (H,W), RGB (H,W,3), or with a leading frame axis when
    ``multi_frame``. ``modes`` is the ultrasound mode bitmap of ImageType value 4
    (PS3.3 C.8.5.6.1.1): :data:`MODE_2D`, or :data:`MODE_2D_COLOUR` for colour Doppler.
    ``sop_class`` overrides the SOP class (a scanner variant, e.g. Secondary Capture); no
    ``regions`` leaves out SequenceOfUltrasoundRegions (an uncalibrated image).
    """
    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    frame_ndim = array.ndim - (1 if multi_frame else 0)
    rgb = frame_ndim == 3
    if sop_class is None:
        sop_class = US_MULTIFRAME_STORAGE if multi_frame else US_IMAGE_STORAGE

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = identity.sop_instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = identity.sop_instance_uid
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.SeriesInstanceUID = identity.series_instance_uid
    ds.PatientName = SYNTHETIC_PATIENT_NAME
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _STUDY_TIME.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _STUDY_TIME.strftime("%H%M%S")
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.StudyDescription = "SYNTHETIC LYMPH NODE PHANTOM"
    ds.SeriesDescription = identity.series_description
    ds.BodyPartExamined = SYNTHETIC_BODY_PART
    ds.Modality = "US"
    ds.Manufacturer = "lnm-node phantom"
    ds.SeriesNumber = identity.series_number
    ds.InstanceNumber = identity.instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SMALL PARTS", modes]
    ds.ImageComments = SYNTHETIC_COMMENT
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    if regions:
        ds.SequenceOfUltrasoundRegions = regions
    if rgb:
        ds.PlanarConfiguration = 0
    if multi_frame:
        ds.NumberOfFrames = int(array.shape[0])
        ds.FrameTime = float(frame_time_ms)
        ds.FrameIncrementPointer = (0x0018, 0x1063)
        ds.CineRate = max(1, round(1000.0 / frame_time_ms))
    ds.set_pixel_data(array, "RGB" if rgb else "MONOCHROME2", 8, generate_instance_uid=False)
    return ds


#: body parts of a pair: General Series' Laterality is then required (Type 2C; empty: unknown)
PAIRED_BODY_PARTS = frozenset(
    {"AXILLA", "BREAST", "ARM", "LEG", "HAND", "FOOT", "HIP", "KNEE", "SHOULDER", "ELBOW",
     "WRIST", "ANKLE", "EYE", "EAR", "KIDNEY", "OVARY", "TESTIS", "LUNG", "CLAVICLE", "THIGH"}
)


def body_part_name(body_part: str) -> str:
    """``body_part`` as a BodyPartExamined value (upper case, no spaces, e.g. "neck" -> NECK);
    ``ValueError`` unless that is 1 to 16 characters."""
    name = body_part.strip().upper().replace(" ", "")
    if not name or len(name) > 16:
        raise ValueError(f"body part {body_part!r} must be 1 to 16 characters (a CS value)")
    return name


def label_body_part(ds: Dataset, body_part: str) -> Dataset:
    """Set BodyPartExamined and a StudyDescription that names it, e.g. NECK ->
    "SYNTHETIC PHANTOM - NECK", so a routing rule (``inference.scope``) sees that anatomy."""
    name = body_part_name(body_part)
    ds.BodyPartExamined = name
    ds.StudyDescription = f"SYNTHETIC PHANTOM - {name}"
    if name in PAIRED_BODY_PARTS:
        ds.Laterality = ""
    elif "Laterality" in ds:
        del ds.Laterality
    return ds
