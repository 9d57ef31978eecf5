"""Logging for entry points: JSON lines or rich console. Libraries only use getLogger."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields (job_id, study_instance_uid...) are kept."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


_WARNING_ORIGIN = re.compile(r"^(?P<where>\S.*?:\d+): (?P<category>\w+):")
#: the source line ``warnings.formatwarning`` appends after the text
_SOURCE_LINE = re.compile(r"\n  \S[^\n]*\n?\s*\Z")

#: warnings whose text is a fixed template holding no data value, logged whole: (category,
#: the package folder that warns). Celery's SecurityWarning says the worker runs as root
#: (with uid and gid numbers), which an engineer must read to act on.
_TEXT_KEPT = {("SecurityWarning", "/celery/")}


class WarningTextFilter(logging.Filter):
    """Withhold the text of captured Python warnings (logger ``py.warnings``, which Celery
    turns on): libraries quote data values in them (highdicom quotes a one-component
    PatientName), so only the category and the place that warned are logged, except for the
    known templates of :data:`_TEXT_KEPT` (then on one line, without the warning source line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings":
            formatted = record.getMessage()
            match = _WARNING_ORIGIN.match(formatted)
            if match is None:
                message = "a Python warning (text withheld: it may quote data values)"
            elif any(match["category"] == category and folder in match["where"]
                     for category, folder in _TEXT_KEPT):
                text = " ".join(_SOURCE_LINE.sub("", formatted[match.end():]).split())
                message = f"{match['category']} at {match['where']}: {text}"
            else:
                message = (f"{match['category']} at {match['where']} "
                           "(text withheld: it may quote data values)")
            record.msg, record.args = message, ()
        return True


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Configure the root logger once, from an entry point."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WarningTextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings go through the filter above, not raw to stderr
    # library chatter: pynetdicom's per-association and highdicom's per-copied-module lines
    for library in ("pynetdicom", "highdicom"):
        logging.getLogger(library).setLevel(logging.WARNING)
