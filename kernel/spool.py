"""The spool folder: the only module that builds paths under the node's home.

Layout::

    HOME/spool/incoming/<study>/<series>/<sop>.dcm   received instances
    HOME/spool/quarantine/<id>.dcm + <id>.json       refused instances with the reason
    HOME/spool/work/<job>/                           predictions
    HOME/spool/outbox/<job>/<role>.dcm               results to deliver
    HOME/spool/tmp/                                  partial writes (same filesystem)

Every folder is created 0700 and every file 0600 (whatever the umask): the spool holds
patient data.

A crash can leave partial files in ``tmp/``; :meth:`Spool.remove_stale` deletes those not
written to for :data:`STALE_AFTER_SECONDS` (a write in progress touches its file all along).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

#: a file in tmp/ untouched this long belongs to no write in progress (received datasets are
#: flushed fragment by fragment; a stalled association ends at the network timeout)
STALE_AFTER_SECONDS = 3600.0

FILE_MODE = 0o600
DIR_MODE = 0o700

#: the spool's areas, as laid out above (``tmp/`` holds only partial writes)
AREAS = ("incoming", "quarantine", "work", "outbox", "tmp")

def walk(root: Path) -> Iterator[tuple[Path, os.DirEntry[str]]]:
    """(path relative to ``root``, its entry) of everything under ``root``, streamed, each folder
    before its contents (links are not followed); a folder removed meanwhile (retention) is
    skipped, a missing ``root`` gives nothing."""
    folders = [Path()]
    while folders:
        relative = folders.pop()
        try:
            with os.scandir(root / relative) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(relative / entry.name)
                    yield relative / entry.name, entry
        except FileNotFoundError:
            continue


_SAFE = re.compile(r"^[0-9A-Za-z.\-_]{1,128}$")


def _safe(component: str) -> str:
    """Refuse anything that is not a plain UID-like path component."""
    if not _SAFE.match(component) or component in {".", ".."}:
        raise ValueError(f"unsafe path component {component!r}")
    return component


def make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents, each 0700 (``parents=True`` alone would give
    the parents the umask's mode); the folders this call created, outermost first."""
    if path.is_dir():
        return []
    created = make_dirs(path.parent)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:  # another thread made it meanwhile, or it is a file
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(path)) from None
        return created
    return [*created, path]


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (after a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_file(path: Path, wait: bool = True) -> int:
    """An open descriptor of ``path`` (created 0600) holding an exclusive ``flock``; closing it,
    or the process ending, releases the lock. Without ``wait``, raises :class:`BlockingIOError`
    at once while another process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def replace_file(
    path: Path, write: Callable[[BinaryIO], None], temporary_dir: Path | None = None
) -> Path:
    """Write ``path`` whole or not at all; returns ``path``.

    ``write`` fills a temporary file (0600) in ``temporary_dir`` (beside ``path`` when None;
    the same filesystem either way), which is fsynced and renamed over ``path``; then the
    folder is fsynced. A reader of ``path`` meanwhile sees the old file or the new one, never a
    part (model folders are read by running workers on every job while ``scope fit-gate`` or
    packaging rewrites them); on an error ``path`` is left as it was.
    """
    temporary = (temporary_dir or path.parent) / f".{path.name}.{uuid.uuid4().hex}.part"
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


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantined instance: its record and (when kept) its bytes."""

    stem: str
    modified: float
    size_bytes: int


@dataclass(frozen=True)
class Spool:
    """Paths and durable writes under ``root``."""

    root: Path

    @classmethod
    def of(cls, home: Path) -> Spool:
        """The spool of the node home ``home``, as it is (nothing is created)."""
        return cls(Path(home) / "spool")

    @classmethod
    def under(cls, home: Path) -> Spool:
        """The spool of ``home``, its areas created."""
        spool = cls.of(home)
        for sub in AREAS:
            make_dirs(spool.root / sub)
        return spool

    def area(self, name: str) -> Path:
        """The folder of one of :data:`AREAS` (nothing is created)."""
        if name not in AREAS:
            raise ValueError(f"{name!r} is not an area of the spool")
        return self.root / name

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def incoming_path(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        return self.root / "incoming" / _safe(study_uid) / _safe(series_uid) / f"{_safe(sop_uid)}.dcm"

    def work_dir(self, job_id: int | str) -> Path:
        path = self.root / "work" / _safe(str(job_id))
        make_dirs(path)
        return path

    def outbox_dir(self, job_id: int | str) -> Path:
        path = self.root / "outbox" / _safe(str(job_id))
        make_dirs(path)
        return path

    def write_atomic(self, path: Path, write: Callable[[BinaryIO], None]) -> Path:
        """:func:`replace_file` with the temporary file in the spool's ``tmp/``."""
        make_dirs(path.parent)
        return replace_file(path, write, self.tmp_dir)

    def place(self, source: bytes | Path, path: Path, sync_folder: bool = True) -> bool:
        """Store ``source`` at ``path`` durably unless a file is there already; True when placed.

        Exclusive (a hard link, which fails on an existing name), so two writers of the same
        path never overwrite each other: the first one's bytes stay. A file in the spool's
        ``tmp/`` is linked into place (no copy) and its temporary name removed; bytes, or a
        file on another filesystem, are first written to ``tmp/``. Everything is fsynced
        (file, then folder) before this returns True; with ``sync_folder`` False the folder's
        fsync is left to the caller (the receive stage batches it within its group commit).
        A folder made for ``path`` (a new study or series) is made durable in its parent
        first.
        """
        for folder in make_dirs(path.parent):
            fsync_dir(folder.parent)
        if isinstance(source, Path):
            os.chmod(source, FILE_MODE)
            fd = os.open(source, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                return self._link(source, path, remove_source=True, sync_folder=sync_folder)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        staged = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            with os.fdopen(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb") as handle:
                if isinstance(source, Path):
                    with open(source, "rb") as original:
                        shutil.copyfileobj(original, handle, 1024 * 1024)
                else:
                    handle.write(source)
                handle.flush()
                os.fsync(handle.fileno())
            return self._link(staged, path, remove_source=False, sync_folder=sync_folder)
        finally:
            staged.unlink(missing_ok=True)

    @staticmethod
    def _link(source: Path, path: Path, remove_source: bool, sync_folder: bool) -> bool:
        try:
            os.link(source, path)
        except FileExistsError:
            return False
        if remove_source:
            source.unlink(missing_ok=True)
        if sync_folder:
            fsync_dir(path.parent)
        return True

    def remove_stale(self, older_than_seconds: float = STALE_AFTER_SECONDS) -> int:
        """Delete files in ``tmp/`` not modified for ``older_than_seconds``; how many."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:  # another process cleaned it first
                continue
        return removed

    def write_bytes_atomic(self, path: Path, data: bytes) -> Path:
        return self.write_atomic(path, lambda handle: handle.write(data))

    def quarantine(self, data: bytes | Path | None, reason: str, details: dict[str, object]) -> Path:
        """Keep a refused instance with its reason; returns the JSON record's path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")  # names sort oldest first
        name = f"{stamp}-{uuid.uuid4().hex[:12]}"
        record = {"reason": reason, "received_at": datetime.now(UTC).isoformat(), **details}
        if isinstance(data, Path):
            target = self.quarantine_dir / f"{name}.dcm"
            shutil.move(str(data), target)
            os.chmod(target, FILE_MODE)
            record["file"] = target.name
        elif data is not None:
            self.write_bytes_atomic(self.quarantine_dir / f"{name}.dcm", data)
            record["file"] = f"{name}.dcm"
        json_path = self.quarantine_dir / f"{name}.json"
        self.write_bytes_atomic(json_path, json.dumps(record, indent=2, default=str).encode())
        return json_path

    def quarantine_entries(self) -> list[QuarantineEntry]:
        """Every quarantine entry (record + bytes), oldest first; only names and sizes are read."""
        sizes: dict[str, int] = {}
        modified: dict[str, float] = {}
        with os.scandir(self.quarantine_dir) as entries:
            for entry in entries:
                stem, _, suffix = entry.name.rpartition(".")
                if suffix not in ("json", "dcm") or not stem:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                sizes[stem] = sizes.get(stem, 0) + info.st_size
                modified[stem] = max(modified.get(stem, 0.0), info.st_mtime)
        return [QuarantineEntry(stem, modified[stem], sizes[stem]) for stem in sorted(sizes)]

    def remove_quarantine_entry(self, entry: QuarantineEntry) -> None:
        """Delete a quarantine entry's record and bytes."""
        for suffix in (".dcm", ".json"):
            (self.quarantine_dir / _safe(entry.stem + suffix)).unlink(missing_ok=True)

    def remove_received(self, path: Path) -> int:
        """Delete one received instance under ``incoming/`` and its folders left empty; the
        bytes freed (0 when it was gone). A path outside ``incoming/`` is refused."""
        incoming = (self.root / "incoming").resolve()
        target = Path(path).resolve()
        if incoming not in target.parents:
            raise ValueError(f"{path} is not a received instance of this spool")
        try:
            size = target.stat().st_size
            target.unlink()
        except FileNotFoundError:
            return 0
        for folder in (target.parent, target.parent.parent):
            if folder == incoming:
                break
            try:
                folder.rmdir()
            except OSError:  # not empty: other instances of the series or study
                break
        return size

    def remove_job_files(self, job_id: int | str) -> None:
        """Delete a job's ``work/`` and ``outbox/`` folders."""
        for area in ("work", "outbox"):
            shutil.rmtree(self.root / area / _safe(str(job_id)), ignore_errors=True)

    def quarantine_count(self) -> int:
        """How many quarantine records there are (their names are listed, none is read)."""
        with os.scandir(self.quarantine_dir) as entries:
            return sum(entry.name.endswith(".json") for entry in entries)

    def quarantined(self, limit: int = 200) -> list[dict[str, object]]:
        """The newest ``limit`` quarantine records, newest first (only those are read)."""
        with os.scandir(self.quarantine_dir) as entries:
            names = sorted((e.name for e in entries if e.name.endswith(".json")), reverse=True)
        records = []
        for name in names[:limit]:
            try:
                records.append(json.loads((self.quarantine_dir / name).read_text()))
            except (OSError, ValueError):  # removed by retention meanwhile, or damaged
                continue
        return records
