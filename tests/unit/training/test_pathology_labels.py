"""Parsing pathology-outcome CSVs: levels, outcomes and errors that name the row."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from db.models import LabelLevel, PathologyOutcome
from training.pathology_labels import LabelFileError, read_label_file

HEADER = "study_instance_uid,series_instance_uid,sop_instance_uid,outcome,node_station,date\n"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + body)
    return path


def test_read_label_file_three_levels_parsed(tmp_path: Path) -> None:
    records = read_label_file(
        _write(tmp_path, "1.2.3,,,metastatic,IV,2026-01-02\n,1.2.4,,0,,\n,,1.2.5,unknown,,\n")
    )
    assert [r.level for r in records] == [LabelLevel.STUDY, LabelLevel.SERIES, LabelLevel.INSTANCE]
    assert records[0].outcome is PathologyOutcome.METASTATIC and records[0].node_station == "IV"
    assert records[0].outcome_date == date(2026, 1, 2)
    assert records[1].outcome is PathologyOutcome.BENIGN


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1.2.3,,,maybe,,\n", "row 2: outcome 'maybe'"),
        ("1.2.3,1.2.4,,benign,,\n", "row 2: fill exactly one"),
        ("1.2.3,,,benign,,\n1.2.x,,,benign,,\n", "row 3: study_instance_uid '1.2.x' is not"),
        ("1.2.3,,,benign,,02/01/2026\n", "row 2: date '02/01/2026'"),
        ("1.2.3,,,benign,,\n1.2.3,,,metastatic,,\n",
         "row 3: 1.2.3 repeats row 2 with another outcome (metastatic, not benign)"),
        # the file's own line numbers, blank lines counted (they were counted out: "row 4 ... 2")
        ("\n1.2.3,,,benign,,\n\n1.2.3,,,benign,,\n", "row 5: 1.2.3 repeats row 3"),
    ],
)
def test_read_label_file_bad_row_error_names_row(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(LabelFileError, match=re.escape(message)):
        read_label_file(_write(tmp_path, body))


def test_read_label_file_without_uid_column_raises(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("patient,outcome\nx,benign\n")
    with pytest.raises(LabelFileError, match="needs an 'outcome' column"):
        read_label_file(path)


def test_read_label_file_as_a_spreadsheet_saves_it_bom_crlf_and_header_case(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8": a byte-order mark, CRLF line ends, the site's own header case.
    Before, the BOM made the first column unknown: "needs an 'outcome' column"."""
    path = tmp_path / "labels.csv"
    text = "Study_Instance_UID,Outcome\r\n1.2.3,Metastatic\r\n1.2.4,benign\r\n,\r\n"
    path.write_bytes(text.encode("utf-8-sig"))
    records = read_label_file(path)
    assert [(r.uid, r.outcome) for r in records] == [
        ("1.2.3", PathologyOutcome.METASTATIC),
        ("1.2.4", PathologyOutcome.BENIGN),
    ]


def test_read_label_file_not_utf8_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes((HEADER + "1.2.3,,,benign,Zürich,\n").encode("latin-1"))
    with pytest.raises(LabelFileError, match="is not UTF-8 text .*save it as 'CSV UTF-8'"):
        read_label_file(path)
