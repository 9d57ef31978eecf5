"""A clean header of the source image for the encoders: valid values only, no pixels.

highdicom copies the Patient and Study modules from the source into every object it builds, so
one defective scanner header (dates with dots, missing Type 2 attributes, identity removed
without a method...) would make every output fail dciodvfy. The encoders build from the header
returned here instead: an allow-list of attributes, each checked against its VR (PS3.5 6.2),
Type 2 attributes present (empty when unknown). UIDs are kept as they are: they link the
outputs to the source study.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from highdicom.valuerep import _check_specific_character_set
from pydicom.charset import python_encoding
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.coding import Code
from pydicom.uid import UID

logger = logging.getLogger(__name__)

RETIRED_CLASS_MAP: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.6": "1.2.840.10008.5.1.4.1.1.6.1",  # US Image (retired)
    "1.2.840.10008.5.1.4.1.1.3": "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame (retired)
}
"""Retired US storage classes and their current equivalents (PS3.4 B.5, PS3.3 A.6/A.7)."""

MULTI_FRAME_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
"""Storage classes whose instances are multi-frame (PS3.3): only their frames are referenced
by number (ReferencedFrameNumber "shall not be present" for any other class)."""

DEIDENTIFICATION_UNKNOWN = "Not stated by the source instance"

_PATIENT_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
_STUDY_TYPE2 = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_OPTIONAL_UIDS = ("FrameOfReferenceUID",)
_STRINGS = {
    # keyword: maximum length (LO 64, SH 16, CS 16)
    "IssuerOfPatientID": 64,
    "StudyDescription": 64,
    "Manufacturer": 64,
    "ManufacturerModelName": 64,
    "DeviceSerialNumber": 64,
    "InstitutionName": 64,
    "StationName": 16,
    "Modality": 16,
}
PATIENT_AND_STUDY = (
    *_PATIENT_TYPE2,
    "PatientAge",
    "IssuerOfPatientID",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    *_STUDY_TYPE2,
    "StudyDescription",
)
"""The Patient (C.7.1.1) and General Study (C.7.2.1) attributes of a clean header that every
output carries as the source has them."""
_IMAGE_INTEGERS = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
)
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_AGE = re.compile(r"^\d{3}[DWMY]$")
_CONTROL = re.compile(r"[\x00-\x1f\\]")
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})
UTF8 = "ISO_IR 192"
"""The character set of outputs whose source's set cannot be kept (PS3.3 C.12.1.1.2)."""


def clean_date(value: object) -> str:
    """A DA value (YYYYMMDD), converting ``YYYY.MM.DD``/``YYYY-MM-DD``; "" when unusable."""
    text = str(value or "").strip()
    candidate = text.replace(".", "").replace("-", "") if len(text) == 10 else text
    return candidate if _DATE.match(candidate) else ""


def clean_time(value: object) -> str:
    """A TM value (HHMMSS.FFFFFF), removing ``:`` separators; "" when unusable."""
    text = str(value or "").strip().replace(":", "")
    return text if _TIME.match(text) else ""


def clean_string(value: object, max_length: int) -> str:
    """A single-valued string without control characters or backslash, cut to ``max_length``;
    several values (``BREAST\\LEFT US`` in a single-valued attribute) are joined by a space."""
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        value = " ".join(str(v).strip() for v in value if str(v).strip())
    return _CONTROL.sub(" ", str(value)).strip()[:max_length]


def clean_person_name(value: object) -> str:
    """A PN value: control characters removed, each component group cut to 64 characters."""
    text = _CONTROL.sub("", str(value or "")).strip()
    return "=".join(group[:64] for group in text.split("="))


def clean_sex(value: object) -> str:
    """PatientSex: M, F or O (PS3.3 C.7.1.1); "" otherwise."""
    text = str(value or "").strip().upper()
    return text if text in {"M", "F", "O"} else ""


def _integer(value: object) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def current_sop_class(sop_class_uid: str) -> UID:
    """The current SOP class for a retired US storage class (the class itself otherwise)."""
    return UID(RETIRED_CLASS_MAP.get(str(sop_class_uid), str(sop_class_uid)))


def clean_source(source: Dataset) -> Dataset:
    """A new header-only dataset holding the valid parts of ``source`` that outputs copy.

    Parameters
    ----------
    source
        The source image as received (tolerated as it is; never modified).

    Returns
    -------
    pydicom.dataset.Dataset
        Patient (PS3.3 C.7.1.1) and General Study (C.7.2.1) attributes with valid values and
        every Type 2 attribute present; the UIDs, General Equipment and Image Pixel
        description needed to reference the source. A retired US SOP class is replaced by
        its current equivalent (highdicom only knows current IODs); use
        :func:`restore_source` on each output to reference the true class.
    """
    clean = Dataset()
    for keyword in _UIDS:
        clean.add_new(keyword, "UI", str(source.get(keyword, "")))
    clean.SOPClassUID = current_sop_class(clean.SOPClassUID)
    for keyword in _OPTIONAL_UIDS:
        if source.get(keyword):
            clean.add_new(keyword, "UI", str(source.get(keyword)))

    clean.PatientName = clean_person_name(source.get("PatientName"))
    clean.PatientID = clean_string(source.get("PatientID"), 64)
    clean.PatientBirthDate = clean_date(source.get("PatientBirthDate"))
    clean.PatientSex = clean_sex(source.get("PatientSex"))
    age = str(source.get("PatientAge", "") or "")
    if _AGE.match(age):
        clean.PatientAge = age
    if str(source.get("PatientIdentityRemoved", "")).upper() == "YES":
        clean.PatientIdentityRemoved = "YES"
        method = clean_string(source.get("DeidentificationMethod"), 64)
        clean.DeidentificationMethod = method or DEIDENTIFICATION_UNKNOWN

    clean.StudyDate = clean_date(source.get("StudyDate"))
    clean.StudyTime = clean_time(source.get("StudyTime"))
    clean.ReferringPhysicianName = clean_person_name(source.get("ReferringPhysicianName"))
    clean.StudyID = clean_string(source.get("StudyID"), 16)
    clean.AccessionNumber = clean_string(source.get("AccessionNumber"), 16)

    for keyword, length in _STRINGS.items():
        value = clean_string(source.get(keyword), length)
        if value:
            setattr(clean, keyword, value)
    versions = source.get("SoftwareVersions")
    if versions:
        values = [
            clean_string(v, 64) for v in (versions if isinstance(versions, list) else [versions])
        ]
        values = [v for v in values if v]
        if values:
            clean.SoftwareVersions = values if len(values) > 1 else values[0]
    if not clean.get("Modality"):
        clean.Modality = "US"

    for keyword in _IMAGE_INTEGERS:
        value = _integer(source.get(keyword))
        if value is not None:
            setattr(clean, keyword, value)
    clean.NumberOfFrames = max(1, _integer(source.get("NumberOfFrames")) or 1)
    clean.PhotometricInterpretation = clean_string(
        source.get("PhotometricInterpretation", "MONOCHROME2"), 16
    )
    for keyword in ("Laterality", "ImageLaterality"):
        value = str(source.get(keyword, "") or "").strip().upper()
        if value in {"R", "L"}:
            setattr(clean, keyword, value)
    if "SequenceOfUltrasoundRegions" in source:
        clean.SequenceOfUltrasoundRegions = source.SequenceOfUltrasoundRegions
    charset = output_character_set(source.get("SpecificCharacterSet"), _texts(clean))
    if charset is not None:
        clean.SpecificCharacterSet = charset
    logger.debug("cleaned source header (%d attributes)", len(clean))
    return clean


def _texts(dataset: Dataset) -> list[str]:
    return [
        str(element.value)
        for element in dataset
        if element.VR in _TEXT_VRS and element.value is not None
    ]


def _as_terms(value: object) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    return [str(term or "").strip() for term in values]


#: the term an empty first value of a multi-valued Specific Character Set stands for
_DEFAULT_REPERTOIRE = "ISO 2022 IR 6"


def _repaired(terms: list[str]) -> str | list[str] | None:
    """``terms`` as highdicom takes them: an empty first value of a multi-valued set is the
    default repertoire "ISO 2022 IR 6"; a lone code-extension term is its plain form."""
    if len(terms) > 1:
        return [terms[0] or _DEFAULT_REPERTOIRE, *terms[1:]]
    term = terms[0] if terms else ""
    if term in {"", "ISO_IR 6", "ISO 2022 IR 6"}:
        return None
    if term.startswith("ISO 2022 IR "):
        return "ISO_IR " + term.removeprefix("ISO 2022 IR ")
    return term


def _encodable(texts: list[str], charset: str | list[str]) -> bool:
    if not isinstance(charset, str):
        return True  # code extensions: pydicom switches repertoire per value
    codec = python_encoding.get(charset)
    if codec is None:
        return False
    try:
        for text in texts:
            text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def output_character_set(value: object, texts: list[str]) -> str | list[str] | None:
    """The Specific Character Set of outputs built from a source whose set is ``value``.

    The source's own set where highdicom accepts it, after the repairs of :func:`_repaired`
    (a Japanese ``\\ISO 2022 IR 87`` becomes ``ISO 2022 IR 6\\ISO 2022 IR 87``); otherwise
    (a set highdicom does not know, such as Korean ``ISO 2022 IR 149``, or a misspelt one)
    UTF-8 when a value of ``texts`` is not ASCII, else none (the default repertoire). The
    values themselves are kept as pydicom decoded them; only their encoding may change.
    """
    repaired = _repaired(_as_terms(value))
    if repaired is not None:
        try:
            checked = _check_specific_character_set(repaired)
        except ValueError:
            checked = None
        if checked is not None and _encodable(texts, checked):
            return list(checked) if not isinstance(checked, str) else checked
    if all(text.isascii() for text in texts):
        return None
    return UTF8


def laterality_code_string(source: Dataset) -> str | None:
    """``"R"``/``"L"``: the source's ImageLaterality, else its Laterality, when it is R or L;
    ``None`` otherwise (absent, empty, B or U: no side to copy to an output)."""
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(source.get(keyword, "") or "").strip().upper()
        if value in {"R", "L"}:
            return value
    return None


def source_laterality(source: Dataset) -> str | None:
    """``"right"``/``"left"`` from :func:`laterality_code_string`, else ``None``."""
    value = laterality_code_string(source)
    if value is None:
        return None
    return "right" if value == "R" else "left"


def references_frames(source: Dataset) -> bool:
    """Whether references to ``source`` name a frame: a multi-frame class with several frames.

    A single-frame class that carries several frames anyway (seen from real scanners) is
    referenced as a whole: ReferencedFrameNumber is not allowed for its class.
    """
    frames = _integer(source.get("NumberOfFrames")) or 1
    return frames > 1 and str(current_sop_class(source.SOPClassUID)) in MULTI_FRAME_CLASSES


def source_anatomy(source: Dataset) -> Code | None:
    """The coded anatomy of the source (first AnatomicRegionSequence item), else ``None``."""
    for item in source.get("AnatomicRegionSequence", None) or []:
        value = clean_string(item.get("CodeValue"), 16)
        scheme = clean_string(item.get("CodingSchemeDesignator"), 16)
        meaning = clean_string(item.get("CodeMeaning"), 64)
        if value and scheme and meaning:
            return Code(value, scheme, meaning)
    return None


def _walk(dataset: Dataset) -> Iterator[Dataset]:
    yield dataset
    for element in dataset:
        if element.VR == "SQ" and isinstance(element.value, Sequence):
            for item in element.value:
                yield from _walk(item)


def restore_source(output: Dataset, source: Dataset) -> None:
    """Give a built ``output`` back what :func:`clean_source` changed for highdicom's sake:
    the source's true SOP class in its references (:func:`restore_source_class`) and the
    source's own spelling of its character set (:func:`restore_character_set`)."""
    restore_source_class(output, source)
    restore_character_set(output, source)


def restore_character_set(output: Dataset, source: Dataset) -> None:
    """Write the source's Specific Character Set back where :func:`_repaired` filled an empty
    first value for highdicom (``\\ISO 2022 IR 87`` as Japanese scanners write it, which
    highdicom refuses, became ``ISO 2022 IR 6\\ISO 2022 IR 87``).

    Both spellings are valid and encode the values to the same bytes, but a reader that takes
    the repertoire from the first non-empty value (Orthanc 1.10) reads the repaired form as
    ASCII and shows Japanese names as escape sequences; with the source's spelling it reads
    the outputs as it reads the source.
    """
    terms = _as_terms(source.get("SpecificCharacterSet"))
    if len(terms) < 2 or terms[0]:
        return
    if _as_terms(output.get("SpecificCharacterSet")) == [_DEFAULT_REPERTOIRE, *terms[1:]]:
        output.SpecificCharacterSet = terms


def restore_source_class(output: Dataset, source: Dataset) -> None:
    """Make references in ``output`` to ``source`` carry the source's true SOP class.

    Needed only when :func:`clean_source` replaced a retired class; changes
    ReferencedSOPClassUID wherever ReferencedSOPInstanceUID is the source's.
    """
    true_class = str(source.SOPClassUID)
    if current_sop_class(true_class) == true_class:
        return
    instance = str(source.SOPInstanceUID)
    for item in _walk(output):
        if item.get("ReferencedSOPInstanceUID") == instance and "ReferencedSOPClassUID" in item:
            item.ReferencedSOPClassUID = true_class
