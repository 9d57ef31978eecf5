"""Parse a pathology-outcome CSV (one row per study, series or instance) with errors naming the row.

Columns: exactly one of ``study_instance_uid``, ``series_instance_uid``, ``sop_instance_uid``
filled per row; ``outcome`` (metastatic, benign or unknown; also 1/0); optional
``node_station`` and ``date`` (YYYY-MM-DD).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from db.labels import LabelRecord
from db.models import LabelLevel, PathologyOutcome
from training.csv_files import read_csv

UID_COLUMNS = {
    "study_instance_uid": LabelLevel.STUDY,
    "series_instance_uid": LabelLevel.SERIES,
    "sop_instance_uid": LabelLevel.INSTANCE,
}
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_OUTCOMES = {"metastatic": "metastatic", "1": "metastatic", "benign": "benign", "0": "benign",
             "unknown": "unknown", "": "unknown"}  # fmt: skip


class LabelFileError(ValueError):
    """A labels file that cannot be imported; the message names the row and the fix."""


def _parse_row(record: dict[str, str], line: int, path: Path) -> LabelRecord:
    filled = [
        (c, (record.get(c) or "").strip()) for c in UID_COLUMNS if (record.get(c) or "").strip()
    ]
    if len(filled) != 1:
        raise LabelFileError(
            f"{path} row {line}: fill exactly one of {', '.join(UID_COLUMNS)} (found {len(filled)})"
        )
    column, uid = filled[0]
    if len(uid) > 64 or not _UID.match(uid):
        raise LabelFileError(f"{path} row {line}: {column} {uid!r} is not a DICOM UID")
    outcome_text = (record.get("outcome") or "").strip().lower()
    if outcome_text not in _OUTCOMES:
        raise LabelFileError(
            f"{path} row {line}: outcome {outcome_text!r} must be metastatic, benign or unknown"
        )
    date_text = (record.get("date") or "").strip()
    try:
        outcome_date = date.fromisoformat(date_text) if date_text else None
    except ValueError as error:
        raise LabelFileError(f"{path} row {line}: date {date_text!r} is not YYYY-MM-DD") from error
    station = (record.get("node_station") or "").strip() or None
    if station is not None and len(station) > 32:
        raise LabelFileError(f"{path} row {line}: node_station longer than 32 characters")
    return LabelRecord(
        level=UID_COLUMNS[column],
        uid=uid,
        outcome=PathologyOutcome(_OUTCOMES[outcome_text]),
        node_station=station,
        outcome_date=outcome_date,
    )


def read_label_file(path: Path) -> list[LabelRecord]:
    """Every row of ``path``, validated; raises ``LabelFileError`` at the first bad row."""
    path = Path(path)
    try:
        names, rows = read_csv(path)
    except ValueError as error:
        raise LabelFileError(str(error)) from error
    header = set(names)
    if not header & set(UID_COLUMNS) or "outcome" not in header:
        raise LabelFileError(
            f"{path}: needs an 'outcome' column and one of {', '.join(UID_COLUMNS)}"
        )
    records = [_parse_row(record, line, path) for line, record in rows]
    seen: dict[tuple[LabelLevel, str], tuple[int, LabelRecord]] = {}
    for (line, _), record in zip(rows, records, strict=True):
        key = (record.level, record.uid)
        if key in seen:
            first_line, first = seen[key]
            other = "" if first.outcome == record.outcome else (
                f" with another outcome ({record.outcome.value}, not {first.outcome.value})"
            )
            raise LabelFileError(f"{path} row {line}: {record.uid} repeats row {first_line}{other}")
        seen[key] = (line, record)
    return records
