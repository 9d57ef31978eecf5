"""Captured Python warnings are logged without their text: libraries quote data values."""

from __future__ import annotations

import logging
import warnings

from kernel.logging_setup import JsonFormatter, WarningTextFilter, configure_logging


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


def test_library_chatter_held_to_warnings(capsys) -> None:  # type: ignore[no-untyped-def]
    """highdicom logged about 8 INFO lines per object it wrote (every copied module), 25 per
    job; pynetdicom one per association event."""
    configure_logging()
    for library in ("highdicom.base", "pynetdicom.assoc"):
        logging.getLogger(library).info("copy attributes of module %s", "Patient")
        logging.getLogger(library).warning("a real problem")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all("a real problem" in line for line in lines)


def test_celery_root_warning_logged_whole_on_one_line() -> None:
    """It was logged as 'SecurityWarning at .../celery/platforms.py:905 (text withheld)':
    an engineer could not tell the worker runs as root. Its text is a template with no data."""
    from celery.exceptions import SecurityWarning
    from celery.platforms import ROOT_DISCOURAGED

    text = ROOT_DISCOURAGED.format(uid=0, euid=0, gid=0, egid=0)
    source = "    warnings.warn(SecurityWarning(ROOT_DISCOURAGED.format("
    formatted = warnings.formatwarning(text, SecurityWarning, "/lib/celery/platforms.py", 905, source)
    record = logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, "%s", (formatted,), None)
    WarningTextFilter().filter(record)
    assert record.getMessage() == (
        "SecurityWarning at /lib/celery/platforms.py:905: You're running the worker with "
        "superuser privileges: this is absolutely not recommended! Please specify a different "
        "user using the --uid option. User information: uid=0 euid=0 gid=0 egid=0"
    )


def test_security_warning_elsewhere_still_withheld() -> None:
    formatted = warnings.formatwarning('name "Quaxleton"', UserWarning, "/lib/celery/x.py", 3)
    other = warnings.formatwarning('name "Quaxleton"', UserWarning, "/lib/other/x.py", 3)
    for text in (formatted, other.replace("UserWarning", "SecurityWarning")):
        record = logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, "%s", (text,), None)
        WarningTextFilter().filter(record)
        assert "Quaxleton" not in record.getMessage() and "withheld" in record.getMessage()
