"""Captured Python warnings are logged without their text: libraries quote data values."""

from __future__ import annotations

import logging
import warnings

from kernel.logging_setup import JsonFormatter, WarningTextFilter


def _warning_record(message: str) -> logging.LogRecord:
    text = warnings.formatwarning(message, UserWarning, "/lib/highdicom/valuerep.py", 56)
    return logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, "%s", (text,), None)


def test_warning_text_filter_quoted_patient_name_withheld_origin_kept() -> None:
    record = _warning_record('The string "Quaxleton" is unlikely to represent the intended name')
    assert WarningTextFilter().filter(record) is True
    line = JsonFormatter().format(record)
    assert "Quaxleton" not in line
    assert "UserWarning at /lib/highdicom/valuerep.py:56" in line


def test_warning_text_filter_other_loggers_untouched() -> None:
    record = logging.LogRecord(
        "dicom_node.receive", logging.INFO, __file__, 1, "received %s", ("1.2.3",), None
    )
    assert WarningTextFilter().filter(record) is True
    assert record.getMessage() == "received 1.2.3"
