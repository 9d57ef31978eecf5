"""Attributes the standard requires to hold a value (Type 1 or 1C), by the sequence holding them.

Read from highdicom's transcription of the PS3.3 module tables (its ``_standard`` data, pinned
with highdicom). An attribute counts as required in a place (the keyword of the sequence whose
item holds it, ``""`` at the top level) when some module of some IOD makes it Type 1 or 1C
there: a dummy value where an empty one was allowed stays valid, an empty value where one is
required does not (PS3.5 7.4).
"""

from __future__ import annotations

from functools import lru_cache

from highdicom._standard_utils import get_module_attribute_map

_REQUIRED_TYPES = frozenset({"1", "1C"})


@lru_cache(maxsize=1)
def _required() -> frozenset[tuple[str, str]]:
    return frozenset(
        (row["path"][-1] if row["path"] else "", row["keyword"])
        for rows in get_module_attribute_map().values()
        for row in rows
        if row["type"] in _REQUIRED_TYPES
    )


def is_required(parent: str, keyword: str) -> bool:
    """Whether ``keyword``, in an item of the sequence ``parent`` (``""``: the top level), must
    hold a value (Type 1 or 1C) in some IOD."""
    return bool(keyword) and (parent, keyword) in _required()
