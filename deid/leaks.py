"""The last net: identifying values of the source looked for in every element of the output.

Before the profile runs, :func:`identifying_terms` collects what the source's identifying
attributes hold (names split into their parts, IDs, dates in the usual spellings) and
:func:`source_uids` the instance UIDs it holds. After it, :func:`scrub_leaks` remaps any UID
element still holding an old UID, and replaces any text element holding a term or an old UID
anywhere in its value (a UID quoted in a comment, an ID in a URL's query): emptied, or, where
the standard requires a value (Type 1 or 1C, :mod:`deid.required`), each value that holds one
becomes a dummy (:data:`~deid.structured.REMOVED_TEXT` for text), so the output stays valid.
Values that attributes the profile keeps also hold (a station named after its model) are not
identifying and are left alone.

A term is found only as a whole token: not next to a letter or a digit, nor to a dot and a
digit (``123456`` is not found in ``0.123456``, ``1.2.3`` not in ``1.2.3.4``). Terms shorter
than 3 characters, and numbers shorter than 5 digits, are not looked for: they would match
everywhere. A UID is found as a whole dotted number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable

from dicomanonymizer import simpledicomanonymizer as actions
from pydicom import DataElement, Dataset
from pydicom.multival import MultiValue

from deid.profile import DUMMY_TIME, ProfileTable, UidMap, registered
from deid.required import is_required
from deid.structured import REMOVED_TEXT

_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}
)
#: the dummy of a required value that held a leak, by VR; any other text VR: REMOVED_TEXT
_DUMMY = {**DUMMY_TIME, "AS": "000Y", "DS": "0", "IS": "0", "UR": "http://anonymized.invalid"}
_MIN_TERM = 3
_MIN_DIGITS = 5
_UID_TOKEN = re.compile(r"\d+(?:\.\d+)+")


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
    return {term for term in changed - kept if not term.isdigit() or len(term) >= _MIN_DIGITS}


def source_uids(ds: Dataset) -> set[str]:
    """Every UID ``ds`` holds (private elements included) that the standard does not define."""
    found: set[str] = set()

    def collect(_: Dataset, element: DataElement) -> None:
        if element.VR == "UI":
            found.update(v for v in _values(element) if not registered(v))

    ds.walk(collect)
    return found


def _pattern(terms: set[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    words = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(
        rf"(?<![0-9A-Za-z])(?<!\d\.)(?:{words})(?![0-9A-Za-z])(?!\.\d)", re.IGNORECASE
    )


def _walk(ds: Dataset, parent: str, visit: Callable[[DataElement, str], None]) -> None:
    """Call ``visit(element, keyword of the sequence holding it)`` for every element at any depth."""
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _walk(item, element.keyword, visit)
        else:
            visit(element, parent)


def _replace(element: DataElement, parent: str, leaks: Callable[[str], bool]) -> None:
    """Empty ``element``, or, where a value is required, make each value that leaks a dummy."""
    if not is_required(parent, element.keyword):
        actions.empty_element(element)
        return
    dummy = _DUMMY.get(element.VR, REMOVED_TEXT)
    value = element.value
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    new = [dummy if v is not None and leaks(str(v)) else v for v in items]  # empty ones kept
    element.value = new if len(new) > 1 else new[0]


def scrub_leaks(
    ds: Dataset, terms: set[str], uids: UidMap, old_uids: Collection[str] = frozenset()
) -> int:
    """Replace every text element of ``ds`` that still holds one of ``terms``, or a UID of
    ``old_uids`` or of ``uids``' map, anywhere in its value; remap old UIDs left in UID elements.

    Returns how many elements were changed.
    """
    pattern = _pattern(terms)
    changed = 0

    def leaks(value: str) -> bool:
        if pattern is not None and pattern.search(value):
            return True
        return any(t in old_uids or t in uids.mapping for t in _UID_TOKEN.findall(value))

    def scrub(element: DataElement, parent: str) -> None:
        nonlocal changed
        if element.VR == "UI":
            values = _values(element)
            if any(v in uids.mapping for v in values):
                new = [uids(v) if v in uids.mapping else v for v in values]
                element.value = new if len(new) > 1 else new[0]
                changed += 1
            return
        if element.VR not in _TEXT_VRS:
            return
        if any(leaks(v) for v in _values(element)):
            _replace(element, parent, leaks)
            changed += 1

    _walk(ds, "", scrub)
    return changed
