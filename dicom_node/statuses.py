"""Named DIMSE status codes the node answers with or meets as an SCU (PS3.4 B.2.3, PS3.7 C).

Each constant's comment says what it means for the peer. Categories come from pynetdicom
(:func:`status_category`), so there is one source of truth for "success / warning / failure".
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset
from pynetdicom.status import code_to_category

#: the instance is stored and committed
SUCCESS = 0x0000
#: warning: some data elements were coerced
COERCION_OF_DATA_ELEMENTS = 0xB000
#: warning: some data elements were discarded
ELEMENTS_DISCARDED = 0xB006
#: warning: a SOP Instance UID re-used under another study, series or patient: the first
#: copy is kept, this one quarantined, not stored (PS3.4 B.2.3 "Elements Discarded")
DUPLICATE_SOP_INSTANCE = ELEMENTS_DISCARDED
#: warning: the dataset does not match the SOP class, stored anyway
DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007
#: refused, out of resources (disk full, database down): the sender should retry later
OUT_OF_RESOURCES = 0xA700
#: the dataset does not match the SOP class (a required UID missing or invalid, class mismatch)
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
#: generic "cannot understand" failure (start of the 0xC000-0xCFFF range)
CANNOT_UNDERSTAND_GENERIC = 0xC000
#: cannot understand: the instance is larger than this node accepts (permanent)
INSTANCE_TOO_LARGE = 0xC001
#: cannot understand: the dataset does not parse or its pixel data does not decode
CANNOT_UNDERSTAND = 0xC210
#: what pynetdicom answers when a C-STORE handler raises (our handler never should)
HANDLER_RAISED = 0xC211
#: the SOP class is not supported on this association
SOP_CLASS_NOT_SUPPORTED = 0x0122
#: the SCP is unable to process the request (general failure)
PROCESSING_FAILURE = 0x0110

SUCCESS_CATEGORY = "Success"
WARNING_CATEGORY = "Warning"
FAILURE_CATEGORY = "Failure"


def status_category(code: int) -> str:
    """``"Success"``, ``"Warning"``, ``"Failure"``, ``"Cancel"``, ``"Pending"`` or ``"Unknown"``."""
    return code_to_category(code)


def is_failure(code: int) -> bool:
    """True when ``code`` means the peer did not store the instance."""
    return status_category(code) not in (SUCCESS_CATEGORY, WARNING_CATEGORY)


def is_permanent_failure(code: int) -> bool:
    """True for a failure that sending the same instance again cannot cure: the peer cannot
    understand it (0xCxxx), finds it does not match its class (0xA9xx), or does not accept its
    SOP class at all (0x0122, no presentation context): a configuration to fix, not to wait for.
    Out of resources (0xA7xx) and processing failures are retried."""
    return (
        code >= CANNOT_UNDERSTAND_GENERIC
        or 0xA900 <= code <= 0xA9FF
        or code == SOP_CLASS_NOT_SUPPORTED
    )


ERROR_COMMENT_LENGTH = 64
"""Error Comment (0000,0902) is an LO in the command set (default repertoire, ASCII): at most 64
characters, no backslash or control characters (PS3.5 6.2, PS3.7 C.4.2.1.4)."""


def error_comment(reason: str) -> str:
    """``reason`` as a valid Error Comment: control characters and backslashes replaced by spaces,
    other non-ASCII characters by ``?``, runs of white space made one space, cut to
    :data:`ERROR_COMMENT_LENGTH` characters."""
    text = re.sub(r"[\x00-\x1f\x7f\\]", " ", reason).encode("ascii", "replace").decode()
    text = " ".join(text.split())
    if len(text) > ERROR_COMMENT_LENGTH:
        text = text[: ERROR_COMMENT_LENGTH - 3].rstrip() + "..."
    return text


def status_with_comment(status: int, reason: str) -> Dataset:
    """A DIMSE status answer: ``status`` and ``reason`` as its Error Comment, so the sender's
    log says why (DCMTK's ``storescu -d`` shows it, ``lnm-node send`` prints it)."""
    answer = Dataset()
    answer.Status = status
    comment = error_comment(reason)
    if comment:
        answer.ErrorComment = comment
    return answer
