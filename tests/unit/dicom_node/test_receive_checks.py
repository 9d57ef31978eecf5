"""The receive stage's checks on received bytes (no sockets: the bytes a C-STORE carries)."""

from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ComprehensiveSRStorage,
    EnhancedUSVolumeStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
)

from dicom_node.receive import InstanceRefused, check_instance, is_valid_uid
from dicom_node.statuses import CANNOT_UNDERSTAND, DATASET_DOES_NOT_MATCH_SOP_CLASS
from kernel.provenance import NODE_MANUFACTURER
from phantom.us_dicom import make_us_dataset

SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEG2000Lossless,
]


def _bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _phantom(**kwargs: object) -> Dataset:
    ds, _, _ = make_us_dataset(seed=7, rows=64, cols=80, **kwargs)  # type: ignore[arg-type]
    return ds


def _check(ds: Dataset, data: bytes | None = None) -> object:
    return check_instance(
        data if data is not None else _bytes(ds), ds.SOPClassUID, ds.SOPInstanceUID
    )


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda uid: uid.name)
def test_check_instance_phantom_each_syntax_returns_header(syntax: str) -> None:
    ds = _phantom(transfer_syntax=syntax, frames=2)
    header = _check(ds)
    assert header.study_instance_uid == ds.StudyInstanceUID
    assert header.series_instance_uid == ds.SeriesInstanceUID
    assert header.transfer_syntax_uid == syntax
    assert header.number_of_frames == 2
    assert header.modality == "US"


def test_check_instance_path_source_same_as_bytes(tmp_path: Path) -> None:
    ds = _phantom(transfer_syntax=RLELossless)
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    assert check_instance(tmp_path / "a.dcm", ds.SOPClassUID, ds.SOPInstanceUID) == _check(ds)


def test_check_instance_missing_study_uid_refused_a900() -> None:
    ds = _phantom()
    del ds.StudyInstanceUID
    with pytest.raises(InstanceRefused, match="StudyInstanceUID is missing") as caught:
        _check(ds)
    assert caught.value.status == DATASET_DOES_NOT_MATCH_SOP_CLASS


def test_check_instance_invalid_series_uid_refused_a900() -> None:
    ds = _phantom()
    ds.SeriesInstanceUID = "1.2.abc"
    with pytest.raises(InstanceRefused, match="SeriesInstanceUID is not a valid UID") as caught:
        _check(ds)
    assert caught.value.status == DATASET_DOES_NOT_MATCH_SOP_CLASS


def test_check_instance_class_differs_from_context_refused_a900() -> None:
    ds = _phantom()
    with pytest.raises(InstanceRefused, match="presentation context") as caught:
        check_instance(_bytes(ds), UltrasoundMultiFrameImageStorage, ds.SOPInstanceUID)
    assert caught.value.status == DATASET_DOES_NOT_MATCH_SOP_CLASS


def test_check_instance_instance_uid_differs_from_command_refused_a900() -> None:
    ds = _phantom()
    with pytest.raises(InstanceRefused, match="C-STORE request") as caught:
        check_instance(_bytes(ds), ds.SOPClassUID, "1.2.3.4")
    assert caught.value.status == DATASET_DOES_NOT_MATCH_SOP_CLASS


def test_check_instance_garbage_jpeg_fragment_refused_c210() -> None:
    ds = _phantom(transfer_syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([b"\xff\xd8" + b"garbage!" * 64])
    with pytest.raises(InstanceRefused, match="does not decode") as caught:
        _check(ds)
    assert caught.value.status == CANNOT_UNDERSTAND


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless], ids=lambda uid: uid.name
)
def test_check_instance_truncated_stream_refused_c210(syntax: str) -> None:
    ds = _phantom(transfer_syntax=syntax, frames=3)
    data = _bytes(ds)
    with pytest.raises(InstanceRefused) as caught:
        _check(ds, data[: len(data) - 300])
    assert caught.value.status == CANNOT_UNDERSTAND


def test_check_instance_native_length_short_refused_c210() -> None:
    ds = _phantom()
    ds.PixelData = ds.PixelData[:-64]
    with pytest.raises(InstanceRefused, match="less than expected"):
        _check(ds)


def test_check_instance_not_dicom_refused_c210() -> None:
    with pytest.raises(InstanceRefused, match="header does not parse") as caught:
        check_instance(b"\x00" * 128 + b"DICM" + b"\x02\x00garbage", "1.2.3", "1.2.3.4")
    assert caught.value.status == CANNOT_UNDERSTAND


def test_check_instance_stored_only_class_without_pixels_accepted() -> None:
    ds = _phantom()
    for keyword in ("PixelData", "Rows", "Columns"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    assert _check(ds).sop_class_uid == ComprehensiveSRStorage


def test_check_instance_image_class_without_pixels_refused_c210() -> None:
    ds = _phantom()
    del ds.PixelData
    with pytest.raises(InstanceRefused, match="no pixel data") as caught:
        _check(ds)
    assert caught.value.status == CANNOT_UNDERSTAND


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1.2.840.10008.5.1.4.1.1.6.1", True),
        ("1.2.840.113619.2.01.5", True),  # leading zero: seen in the wild, tolerated
        ("1.2.abc", False),
        ("", False),
        ("1." + "2" * 63, False),
        ("1..2", False),
        (None, False),
    ],
)
def test_is_valid_uid_cases_expected(value: object, valid: bool) -> None:
    assert is_valid_uid(value) is valid


def test_check_instance_enhanced_us_volume_pixels_checked_though_stored_only() -> None:
    ds = _phantom(frames=3)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedUSVolumeStorage
    assert _check(ds).number_of_frames == 3
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    with pytest.raises(InstanceRefused) as refused:
        _check(ds)
    assert refused.value.status == 0xC210 and "less than expected" in refused.value.reason


def test_check_instance_native_short_pixels_refused_without_decoding() -> None:
    ds = _phantom(frames=2)
    ds.PixelData = ds.PixelData[:-100]
    with pytest.raises(InstanceRefused) as refused:
        _check(ds)
    assert refused.value.status == 0xC210 and "less than expected" in refused.value.reason


def test_check_instance_stored_only_document_not_pixel_checked() -> None:
    ds = _phantom()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    ds.PixelData = b"\x00" * 10  # nonsense pixels in a document class are stored as they are
    assert _check(ds).sop_class_uid == ComprehensiveSRStorage


def test_check_instance_may_be_input_image_yes_document_and_node_result_no() -> None:
    """Only an image a model may read reopens an assembled study: not a report, not one of the
    node's own results forwarded back by a PACS (Manufacturer "lnm-node")."""
    image = _phantom()
    report = _phantom()
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    del report.PixelData
    result = _phantom()
    result.Manufacturer = NODE_MANUFACTURER
    assert _check(image).may_be_input is True
    assert _check(report).may_be_input is False
    assert _check(result).may_be_input is False
