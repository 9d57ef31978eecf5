from pathlib import Path

import pytest
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from dicom_node import contexts
from kernel.errors import InvalidInput
from phantom.us_dicom import make_us_dataset


def test_storage_contexts_every_class_offers_every_syntax() -> None:
    built = contexts.storage_contexts()
    assert [c.abstract_syntax for c in built] == list(contexts.ACCEPTED_SOP_CLASSES)
    for context in built:
        assert context.transfer_syntax == list(contexts.ACCEPTED_TRANSFER_SYNTAXES)
    assert len(contexts.ACCEPTED_TRANSFER_SYNTAXES) == 13
    assert ExplicitVRBigEndian in contexts.ACCEPTED_TRANSFER_SYNTAXES


def test_is_processable_us_and_secondary_capture_true_others_false() -> None:
    for uid in (
        UltrasoundImageStorage,
        UltrasoundMultiFrameImageStorage,
        "1.2.840.10008.5.1.4.1.1.6",
        "1.2.840.10008.5.1.4.1.1.3",
        SecondaryCaptureImageStorage,
    ):
        assert contexts.is_processable(uid)
    assert not contexts.is_processable("1.2.840.10008.5.1.4.1.1.88.33")  # Comprehensive SR
    assert not contexts.is_processable(CTImageStorage)
    assert CTImageStorage not in contexts.ACCEPTED_SOP_CLASSES
    assert not set(contexts.PROCESSABLE_SOP_CLASSES) & set(contexts.STORED_ONLY_SOP_CLASSES)


def test_processable_classes_are_the_classes_input_selection_takes() -> None:
    """One set of image classes: those whose instances reopen an assembled study when they
    arrive late are those a model's input may be chosen from."""
    from inference.selection import SECONDARY_CAPTURE_CLASSES, ULTRASOUND_IMAGE_CLASSES

    assert set(contexts.PROCESSABLE_SOP_CLASSES) == ULTRASOUND_IMAGE_CLASSES | SECONDARY_CAPTURE_CLASSES


def test_scu_contexts_uncompressed_pair_offers_both_little_endians() -> None:
    built = contexts.scu_contexts(
        [
            (UltrasoundImageStorage, ImplicitVRLittleEndian),
            (UltrasoundImageStorage, ImplicitVRLittleEndian),
            (UltrasoundImageStorage, JPEGBaseline8Bit),
        ]
    )
    assert len(built) == 2
    assert built[0].transfer_syntax == [ImplicitVRLittleEndian, ExplicitVRLittleEndian]
    assert built[1].transfer_syntax == [JPEGBaseline8Bit]


def test_scu_contexts_more_than_128_pairs_raises() -> None:
    pairs = [(f"1.2.3.{n}", ExplicitVRLittleEndian) for n in range(129)]
    with pytest.raises(ValueError, match="128"):
        contexts.scu_contexts(pairs)


def test_read_file_uids_phantom_file_returns_uids(tmp_path: Path) -> None:
    ds, _, _ = make_us_dataset(seed=1, rows=32, cols=32, transfer_syntax=JPEGBaseline8Bit)
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    assert contexts.read_file_uids(tmp_path / "a.dcm") == (
        UltrasoundImageStorage,
        ds.SOPInstanceUID,
        JPEGBaseline8Bit,
    )


def test_read_file_uids_not_dicom_raises_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a DICOM file")
    with pytest.raises(InvalidInput, match="not a DICOM file"):
        contexts.read_file_uids(tmp_path / "notes.txt")


def test_has_checked_pixels_processable_and_stored_image_classes_not_documents() -> None:
    assert contexts.has_checked_pixels(contexts.PROCESSABLE_SOP_CLASSES[0])
    assert contexts.has_checked_pixels("1.2.840.10008.5.1.4.1.1.6.2")  # Enhanced US Volume
    assert not contexts.is_processable("1.2.840.10008.5.1.4.1.1.6.2")
    assert not contexts.has_checked_pixels("1.2.840.10008.5.1.4.1.1.88.33")  # Comprehensive SR
    assert set(contexts.PIXEL_CHECKED_STORED_SOP_CLASSES) <= set(contexts.STORED_ONLY_SOP_CLASSES)
