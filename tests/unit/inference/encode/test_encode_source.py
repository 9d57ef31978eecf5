"""Tests for inference.encode.source: a defective scanner header becomes a clean one."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from inference.encode.source import (
    DEIDENTIFICATION_UNKNOWN,
    UTF8,
    clean_date,
    clean_source,
    clean_time,
    laterality_code_string,
    output_character_set,
    references_frames,
    restore_source_class,
    source_anatomy,
    source_laterality,
)
from phantom.us_dicom import US_IMAGE_STORAGE

RETIRED_US = "1.2.840.10008.5.1.4.1.1.6"


def _defective() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = RETIRED_US
    ds.SOPInstanceUID = "1.2.3.4"
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = "1.2.3.5"
    ds.Modality = "US"
    ds.PatientName = "Doe^Jane"
    ds.StudyDate = "1994.11.05"
    ds.StudyTime = "11:20:00"
    ds.PatientSex = "X"
    ds.PatientIdentityRemoved = "YES"
    ds.Rows, ds.Columns = 120, 256
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PixelAspectRatio = [4, 3]
    return ds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19941105", "19941105"),
        ("1994.11.05", "19941105"),
        ("1994-11-05", "19941105"),
        ("5/11/94", ""),
        (None, ""),
    ],
)
def test_clean_date_formats_yyyymmdd_or_empty(value, expected):
    assert clean_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("11:20:00", "112000"), ("112000.123", "112000.123"), ("noon", "")]
)
def test_clean_time_formats_hhmmss_or_empty(value, expected):
    assert clean_time(value) == expected


def test_clean_source_defective_header_fixed():
    clean = clean_source(_defective())
    assert clean.StudyDate == "19941105"
    assert clean.StudyTime == "112000"
    assert clean.PatientSex == ""
    assert clean.DeidentificationMethod == DEIDENTIFICATION_UNKNOWN
    assert "PixelAspectRatio" not in clean


def test_clean_source_missing_type2_present_empty():
    clean = clean_source(_defective())
    for keyword in (
        "PatientID",
        "PatientBirthDate",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    ):
        assert keyword in clean and clean[keyword].value in ("", None)


def test_clean_source_uids_kept_retired_class_mapped():
    source = _defective()
    clean = clean_source(source)
    assert clean.StudyInstanceUID == source.StudyInstanceUID
    assert clean.SOPInstanceUID == source.SOPInstanceUID
    assert clean.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"


def test_clean_source_source_not_modified():
    source = _defective()
    clean_source(source)
    assert source.StudyDate == "1994.11.05"


def test_restore_source_class_reference_gets_retired_class():
    source = _defective()
    output = Dataset()
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    other = Dataset()
    other.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    other.ReferencedSOPInstanceUID = "9.9"
    output.ReferencedImageSequence = [item, other]
    restore_source_class(output, source)
    assert output.ReferencedImageSequence[0].ReferencedSOPClassUID == RETIRED_US
    assert output.ReferencedImageSequence[1].ReferencedSOPClassUID.endswith("6.1")


@pytest.mark.parametrize(("value", "expected"), [("R", "right"), ("L", "left"), ("", None)])
def test_source_laterality_code_to_word(value, expected):
    ds = Dataset()
    ds.ImageLaterality = value
    assert source_laterality(ds) == expected


@pytest.mark.parametrize(
    ("image", "series", "expected"),
    [("L", "R", "L"), (None, "R", "R"), ("B", "L", "L"), ("U", None, None), (None, None, None)],
)
def test_laterality_code_string_image_side_first_r_or_l_only(image, series, expected):
    ds = Dataset()
    if image is not None:
        ds.ImageLaterality = image
    if series is not None:
        ds.Laterality = series
    assert laterality_code_string(ds) == expected


def test_references_frames_multi_frame_class_only(phantom):
    cine, _ = phantom(seed=1, frames=3)
    two_frames_single_class, _ = phantom(seed=1, frames=2, sop_class_uid=US_IMAGE_STORAGE)
    single, _ = phantom(seed=1)
    assert references_frames(cine)
    assert not references_frames(two_frames_single_class)
    assert not references_frames(single)


def test_source_anatomy_first_coded_region_else_none(phantom):
    source, _ = phantom(seed=1)
    assert source_anatomy(source) is None
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "76752008", "SCT", "Breast"
    source.AnatomicRegionSequence = [region]
    assert source_anatomy(source) == Code("76752008", "SCT", "Breast")


@pytest.mark.parametrize(
    ("value", "texts", "expected"),
    [
        (None, ["Doe^Jane"], None),
        ("ISO_IR 100", ["Müller^Jürgen"], "ISO_IR 100"),
        ("ISO_IR 192", ["山田^太郎"], "ISO_IR 192"),
        # Japanese as scanners write it: an empty first value is the default repertoire
        (["", "ISO 2022 IR 87"], ["Yamada^Tarou=山田^太郎"], ["ISO 2022 IR 6", "ISO 2022 IR 87"]),
        (["ISO 2022 IR 6", "ISO 2022 IR 87"], ["Yamada"], ["ISO 2022 IR 6", "ISO 2022 IR 87"]),
        # a lone code-extension term is its plain form
        ("ISO 2022 IR 100", ["Müller"], "ISO_IR 100"),
        ("ISO 2022 IR 6", ["Doe"], None),
        ("ISO_IR 6", ["Doe"], None),
        # sets highdicom cannot write (Korean) or misspelt: UTF-8 if any text needs it
        (["", "ISO 2022 IR 149"], ["Hong^Gildong=洪^吉洞"], UTF8),
        ("ISO-IR 100", ["Müller"], UTF8),
        ("KLINGON", ["Doe"], None),
        # a text the source's set cannot hold (a mislabelled value pydicom decoded anyway)
        ("ISO_IR 100", ["山田"], UTF8),
    ],
)
def test_output_character_set_kept_repaired_or_utf8(value, texts, expected):
    assert output_character_set(value, texts) == expected


def test_clean_source_japanese_name_kept_with_repaired_character_set():
    source = _defective()
    source.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    source.PatientName = "Yamada^Tarou=山田^太郎"
    clean = clean_source(source)
    assert clean.SpecificCharacterSet == ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    assert str(clean.PatientName) == "Yamada^Tarou=山田^太郎"


def test_clean_source_multi_valued_description_values_joined_not_cut():
    source = _defective()
    source.StudyDescription = "BREAST\\LEFT US"
    assert clean_source(source).StudyDescription == "BREAST LEFT US"
