"""CSV files as sites write them: spreadsheets save UTF-8 with a byte-order mark, Windows line
ends, and headers in their own case ("Study_Instance_UID", "Outcome")."""

from __future__ import annotations

import csv
from pathlib import Path


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header (names stripped and lower-cased) and the rows of ``path`` as (line number,
    row keyed by those names). UTF-8 with or without a byte-order mark; raises ValueError
    naming the file when it is not UTF-8 text."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            rows = [
                (line, dict(zip(header, values, strict=False)))
                for line, values in enumerate(reader, start=2)
                if any(value.strip() for value in values)
            ]
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {error.start}): save it as 'CSV UTF-8'"
        ) from error
    return header, rows
