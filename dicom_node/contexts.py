"""Presentation contexts: which storage SOP classes and transfer syntaxes the node speaks.

The SCP accepts the ultrasound image classes it can process and, so that a modality's send of
a whole study does not fail, the other classes such a study may carry (SR, KOS, SEG, PDF, ...);
those are stored only. pynetdicom's defaults offer uncompressed transfer syntaxes only, so the
compressed ones are listed here explicitly (PS3.5 A, PS3.4 B.5).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import (
    JPEG2000,
    UID,
    BasicTextSRStorage,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    DeflatedExplicitVRLittleEndian,
    EncapsulatedPDFStorage,
    EnhancedSRStorage,
    EnhancedUSVolumeStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ExtensibleSRStorage,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    KeyObjectSelectionDocumentStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    RawDataStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    SimplifiedAdultEchoSRStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)
from pynetdicom import register_uid
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.service_class import StorageServiceClass

from kernel.errors import InvalidInput

#: retired classes still sent by older scanners (PS3.6 A, retired in 2008)
US_IMAGE_STORAGE_RETIRED = UID("1.2.840.10008.5.1.4.1.1.6")
US_MULTIFRAME_IMAGE_STORAGE_RETIRED = UID("1.2.840.10008.5.1.4.1.1.3")

#: image classes whose pixels a model may use (the classes :mod:`inference.selection` takes;
#: secondary captures only of modality US): their pixel data is checked on receipt
PROCESSABLE_SOP_CLASSES: tuple[UID, ...] = (
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    US_IMAGE_STORAGE_RETIRED,
    US_MULTIFRAME_IMAGE_STORAGE_RETIRED,
    SecondaryCaptureImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
)

#: stored-only image classes whose pixel data is still checked on receipt (bounded, every
#: frame's codestream, the first frame decoded): no model reads them, but nothing stored is
#: a decompression bomb for whoever opens it later (a PACS, a viewer)
PIXEL_CHECKED_STORED_SOP_CLASSES: tuple[UID, ...] = (EnhancedUSVolumeStorage,)

#: classes a modality may send within an ultrasound study: accepted and stored, not processed
STORED_ONLY_SOP_CLASSES: tuple[UID, ...] = (
    EnhancedUSVolumeStorage,
    BasicTextSRStorage,
    EnhancedSRStorage,
    ComprehensiveSRStorage,
    Comprehensive3DSRStorage,
    ExtensibleSRStorage,
    SimplifiedAdultEchoSRStorage,
    KeyObjectSelectionDocumentStorage,
    SegmentationStorage,
    EncapsulatedPDFStorage,
    RawDataStorage,
)

ACCEPTED_SOP_CLASSES: tuple[UID, ...] = PROCESSABLE_SOP_CLASSES + STORED_ONLY_SOP_CLASSES

_LITTLE_ENDIAN: tuple[UID, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

#: everything the SCP accepts. pynetdicom accepts, per context, the first syntax of this list
#: that the requestor proposed, so compressed syntaxes come first: a sender offering its file's
#: own compressed syntax sends it as it is (no decompression, no conversion failure in the
#: sender, e.g. DCMTK storescu cannot decompress RLE); uncompressed only when nothing else is
#: offered.
ACCEPTED_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)

#: an association can carry at most 128 presentation contexts (PS3.8 9.3.2.2: odd ids 1-255)
MAX_CONTEXTS = 128


def has_checked_pixels(sop_class_uid: str) -> bool:
    """True for the image classes whose pixel data is checked on receipt."""
    return is_processable(sop_class_uid) or sop_class_uid in PIXEL_CHECKED_STORED_SOP_CLASSES


def is_processable(sop_class_uid: str) -> bool:
    """True for the image classes whose pixels a model may use."""
    return sop_class_uid in PROCESSABLE_SOP_CLASSES


def register_retired_storage_classes() -> None:
    """Tell pynetdicom the retired US classes are storage (it aborts on unknown classes).

    pynetdicom keeps this registry process-wide; registering again is harmless.
    """
    register_uid(US_IMAGE_STORAGE_RETIRED, "UltrasoundImageStorageRetired", StorageServiceClass)
    register_uid(
        US_MULTIFRAME_IMAGE_STORAGE_RETIRED,
        "UltrasoundMultiFrameImageStorageRetired",
        StorageServiceClass,
    )


def storage_contexts() -> list[PresentationContext]:
    """The storage presentation contexts the SCP supports (one per accepted SOP class)."""
    return [build_context(uid, list(ACCEPTED_TRANSFER_SYNTAXES)) for uid in ACCEPTED_SOP_CLASSES]


def scu_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Contexts to propose for ``(sop_class_uid, transfer_syntax_uid)`` pairs, one per pair.

    pynetdicom can re-encode between implicit and explicit VR little endian, so a file in one
    of them offers both; anything else (big endian, compressed) is sent as it is.
    Raises ``ValueError`` when more than :data:`MAX_CONTEXTS` contexts would be needed.
    """
    contexts: list[PresentationContext] = []
    for sop_class_uid, transfer_syntax in dict.fromkeys(pairs):
        syntaxes = [UID(transfer_syntax)]
        if transfer_syntax in _LITTLE_ENDIAN:
            syntaxes += [ts for ts in _LITTLE_ENDIAN if ts != transfer_syntax]
        contexts.append(build_context(sop_class_uid, syntaxes))
    if len(contexts) > MAX_CONTEXTS:
        raise ValueError(
            f"{len(contexts)} SOP class/transfer syntax pairs need more than {MAX_CONTEXTS} "
            "presentation contexts; send them in smaller batches"
        )
    return contexts


def read_file_uids(path: Path) -> tuple[str, str, str]:
    """``(sop_class_uid, sop_instance_uid, transfer_syntax_uid)`` of a DICOM file, header only.

    Raises :class:`~kernel.errors.InvalidInput` when ``path`` is not a DICOM Part 10 file
    with those three UIDs.
    """
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID)
    except Exception as exc:  # pydicom raises many exception types for non-DICOM files
        raise InvalidInput(f"{path.name} is not a DICOM file: {type(exc).__name__}: {exc}") from exc
