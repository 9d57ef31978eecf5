"""Whole-file replacement: a reader of the path sees the old file or the new one, never a part.

Model folders are read by running workers on every job (the spec, then the gate reference it
names) while an admin command may rewrite them (``scope fit-gate``, packaging): each such file
is written here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from kernel.spool import FILE_MODE, fsync_dir


def replace_file(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Fill a temporary file beside ``path`` with ``write`` (0600), fsync it, rename it over
    ``path`` and fsync the folder; returns ``path``. On an error ``path`` is left as it was."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with os.fdopen(
            os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb"
        ) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path
