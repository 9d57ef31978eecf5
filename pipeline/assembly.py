"""Study completeness: a pure rule, the clock passed in.

DICOM has no "study complete" message. A study is complete when no instance arrived for
``quiet`` (MONAI's gateway uses 5 s, mercure and Orthanc 60 s), or is forced complete when it
has been receiving for longer than ``max_wait`` (a modality that never stops trickling). A study
whose modality announced it by MPPS waits for the step's end instead of the quiet time
(:mod:`db.mpps`), up to ``max_wait``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from db.jobs import StudyTiming


@dataclass(frozen=True)
class AssemblyDecision:
    study_id: int
    forced: bool


def decide_assembly(
    studies: list[StudyTiming],
    now: datetime,
    quiet: timedelta,
    max_wait: timedelta,
    held: Collection[int] = (),
    abandoned: Collection[int] = (),
) -> list[AssemblyDecision]:
    """Which receiving studies are complete at ``now``.

    ``held``: studies a modality's Modality Performed Procedure Step still reports IN PROGRESS;
    their quiet time does not count (the step's end does), only ``max_wait`` forces them.
    ``abandoned``: studies named only by steps IN PROGRESS but not updated within ``max_wait``;
    the quiet time counts again, and the study is recorded forced (its step never ended).
    """
    decisions = []
    for study in studies:
        if study.study_id not in held and now - study.last_received_at >= quiet:
            decisions.append(AssemblyDecision(study.study_id, forced=study.study_id in abandoned))
        elif now - study.first_received_at >= max_wait:
            decisions.append(AssemblyDecision(study.study_id, forced=True))
    return decisions


def next_deadline(
    studies: list[StudyTiming], quiet: timedelta, max_wait: timedelta, held: Collection[int] = ()
) -> datetime | None:
    """The earliest moment a receiving study becomes complete (quiet, or forced), or None."""
    moments = [
        s.first_received_at + max_wait if s.study_id in held
        else min(s.last_received_at + quiet, s.first_received_at + max_wait)
        for s in studies
    ]
    return min(moments, default=None)
