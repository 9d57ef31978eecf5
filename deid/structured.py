"""PS3.15 E.3.3 Clean Structured Content: SR content items keep their codes and numbers; every
free text, name, date and UID they hold is replaced.

A content item names its kind in ValueType (PS3.3 C.17.3). TEXT and PNAME values are
replaced by a fixed dummy; DATE, TIME and DATETIME by the profile's dummy dates. UIDREF values
(UID, action U) were remapped by the profile already, consistently with the instances they
name. CODE, NUM, CONTAINER, IMAGE, COMPOSITE, SCOORD and the like carry no free
text and are kept, so a measurement report still reads as one.
"""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom import Dataset

CLEAN_STRUCTURED_CONTENT = CodedConcept("113104", "DCM", "Clean Structured Content Option")
#: what a TEXT or PNAME content item holds after cleaning (type 1: it cannot be empty)
REMOVED_TEXT = "REMOVED"
_DUMMY = {"DATE": ("Date", "19000101"), "TIME": ("Time", "000000"),
          "DATETIME": ("DateTime", "19000101000000")}


def has_structured_content(ds: Dataset) -> bool:
    """True when ``ds`` holds SR content items (a ContentSequence at any depth)."""
    found = False

    def look(_: Dataset, element: object) -> None:
        nonlocal found
        found = found or getattr(element, "keyword", "") == "ContentSequence"

    ds.walk(look)
    return found


def _clean_item(item: Dataset) -> None:
    value_type = str(item.get("ValueType", ""))
    if "TextValue" in item:
        item.TextValue = REMOVED_TEXT
    if "PersonName" in item:
        item.PersonName = REMOVED_TEXT
    if value_type in _DUMMY:
        keyword, dummy = _DUMMY[value_type]
        if keyword in item:
            setattr(item, keyword, dummy)
    for child in item.get("ContentSequence", []):
        _clean_item(child)


def clean_structured_content(ds: Dataset) -> None:
    """Clean every content item of ``ds`` (at any depth) in place."""
    def visit(dataset: Dataset) -> None:
        for element in list(dataset):
            if element.VR != "SQ":
                continue
            for item in element.value:
                if element.keyword == "ContentSequence":
                    _clean_item(item)
                visit(item)

    visit(ds)
