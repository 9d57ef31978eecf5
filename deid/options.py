"""The choices of a de-identification run (light to import: the CLI builds its options from it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StructuredContent(StrEnum):
    """What becomes of SR content items: cleaned (PS3.15 Clean Structured Content Option) or
    the whole file withheld."""

    CLEAN = "clean"
    WITHHOLD = "withhold"


@dataclass(frozen=True)
class DeidOptions:
    """The choices of a run; the defaults let no identifier through."""

    structured_content: StructuredContent = StructuredContent.CLEAN
    #: also write images without a tissue region (their burned-in text is NOT blanked)
    keep_unmasked: bool = False


DEFAULT_OPTIONS = DeidOptions()
