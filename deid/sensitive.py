"""The two files a site keeps beside an export and never sends with it: the key and the UID map.

The key (``--key-file``) makes the remapping repeatable: the same key gives a patient the same
pseudonym and an instance the same UID in every batch, so exports made at different times
group. The UID map (``--uid-map``) links each new UID back to the original, so a result that
comes back later (pathology) can be traced to its source. Either one, with the export,
re-identifies it: both are written readable by their owner only (0600), and a key file that
others can read is refused, as ssh refuses such a private key.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

#: the header of a UID map
UID_MAP_COLUMNS = ("original_uid", "deidentified_uid")
_KEY_BYTES = 32


class SensitiveFileError(ValueError):
    """A key or UID map file that cannot be used as asked; the message names the file and why."""


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (which must not exist) readable by its owner only, whole or
    not at all."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    partial = Path(name)  # mkstemp: a new name, created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.link(partial, path)  # fails if path appeared meanwhile: nothing is overwritten
    finally:
        partial.unlink(missing_ok=True)


def load_or_create_key(path: Path) -> tuple[str, bool]:
    """The key in ``path`` (its first line), or a new random one written there (0600) when the
    file does not exist; with whether it was created. :class:`SensitiveFileError` when the file
    is empty, or group or others may read or write it."""
    if not path.exists():
        key = secrets.token_hex(_KEY_BYTES)
        try:
            _write_private(path, key + "\n")
        except FileExistsError:
            pass  # another run created it first: use that one
        else:
            return key, True
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise SensitiveFileError(f"{path} is not a regular file")
    if mode & 0o077:
        raise SensitiveFileError(
            f"{path} can be read or written by others (mode {stat.S_IMODE(mode):04o}): "
            f"chmod 600 {path}"
        )
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    key = lines[0].strip() if lines else ""
    if not key:
        raise SensitiveFileError(f"{path} holds no key")
    return key, False


def write_uid_map(path: Path, mapping: Mapping[str, str]) -> None:
    """Write ``mapping`` (original UID -> de-identified UID) to ``path`` as CSV, sorted, 0600;
    :class:`SensitiveFileError` when ``path`` exists (a map is never overwritten)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(UID_MAP_COLUMNS)
    writer.writerows(sorted(mapping.items()))
    try:
        _write_private(path, text.getvalue())
    except FileExistsError as exc:
        raise SensitiveFileError(f"{path} exists: a UID map is never overwritten") from exc
