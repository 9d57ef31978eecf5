"""The last net: identifying values of the source looked for in every element of the output.

Before the profile runs, :func:`identifying_terms` collects what the source's identifying
attributes hold (names split into their parts, IDs, dates in the usual spellings, UIDs).
After it, :func:`scrub_leaks` empties any text element still holding one of them (an SR
text item becomes :data:`~deid.structured.REMOVED_TEXT`, as it is type 1) and remaps any UID
element still holding an old UID. Values that attributes the profile keeps also hold (a
station named after its model) are not identifying and are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dicomanonymizer import simpledicomanonymizer as actions
from pydicom import DataElement, Dataset
from pydicom.multival import MultiValue

from deid.profile import ProfileTable, UidMap
from deid.structured import REMOVED_TEXT

_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                       "TM", "UC", "UR", "UT"})
_MIN_TERM = 3


def _values(element: DataElement) -> list[str]:
    value = element.value
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def _spellings(value: str, vr: str) -> Iterable[str]:
    yield value
    if vr == "PN":
        yield from (part for part in re.split(r"[\^=\s,]+", value) if len(part) >= _MIN_TERM)
    if vr == "DA" and re.fullmatch(r"\d{8}", value):
        y, m, d = value[:4], value[4:6], value[6:8]
        yield from (f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}")


def identifying_terms(ds: Dataset, table: ProfileTable) -> set[str]:
    """What the identifying (profile-changed) attributes of ``ds`` hold, UIDs excepted."""
    changed: set[str] = set()
    kept: set[str] = set()

    def collect(_: Dataset, element: DataElement) -> None:
        if element.VR not in _TEXT_VRS or element.tag.is_private:
            return
        target = kept if table.action(int(element.tag)) is None else changed
        for value in _values(element):
            target.update(s for s in _spellings(value, element.VR) if len(s) >= _MIN_TERM)

    ds.walk(collect)
    return {term for term in changed - kept if not term.isdigit() or len(term) >= 6}


def _pattern(terms: set[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    words = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z])(?:{words})(?![0-9A-Za-z])", re.IGNORECASE)


def scrub_leaks(ds: Dataset, terms: set[str], uids: UidMap) -> int:
    """Empty every element of ``ds`` that still holds one of ``terms``; remap old UIDs left.

    Returns how many elements were changed.
    """
    pattern = _pattern(terms)
    changed = 0

    def scrub(_: Dataset, element: DataElement) -> None:
        nonlocal changed
        if element.VR == "UI":
            values = _values(element)
            if any(v in uids.mapping for v in values):
                new = [uids(v) if v in uids.mapping else v for v in values]
                element.value = new if len(new) > 1 else new[0]
                changed += 1
            return
        if pattern is None or element.VR not in _TEXT_VRS:
            return
        if any(pattern.search(v) for v in _values(element)):
            if element.keyword in ("TextValue", "PersonName"):
                element.value = REMOVED_TEXT
            else:
                actions.empty_element(element)
            changed += 1

    ds.walk(scrub)
    return changed
