"""The embedded profile's backup: the SQLite database, then the spool, into a folder laid out
like a home.

Order matters. The receive stage places an instance's file before it commits its row, so a
database copied first names only files that are already in the spool when the spool is copied
after it: every row of the copy has its file. Files that arrive meanwhile are copied without a
row (orphans, which ``lnm-node check`` lists and a re-send of their study records again).

The database is copied with SQLite's online backup API (``sqlite3.Connection.backup``): a
consistent snapshot taken while the node writes (WAL: the node's writers are not blocked). The
spool's files are hard-linked where the backup folder is on the same filesystem (the node
never changes a spool file in place: it writes a new one and renames it), else copied; ``tmp/``
(partial writes) is left out. Then the site's models (``HOME/models``), which the database's
model versions name. ``backup.json`` says what was copied, when, at which schema revision, with
counts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from sqlalchemy.engine import make_url

from db import consistency
from db.session import read_only_sessionmaker
from inference.registry import site_models_dir
from kernel.settings import Settings
from kernel.spool import AREAS, DIR_MODE, FILE_MODE, Spool, make_dirs, walk

MANIFEST = "backup.json"
DATABASE_FILE = "lnm.sqlite3"
#: the spool areas a backup holds (``tmp/`` holds only partial writes)
BACKED_UP_AREAS = tuple(area for area in AREAS if area != "tmp")
FORMAT = 1


class BackupRefused(Exception):
    """The backup cannot be made as asked (a PostgreSQL node, an unusable target folder)."""


@dataclass
class TreeCopy:
    """What copying one folder did."""

    files: int = 0
    bytes: int = 0
    linked: int = 0
    copied: int = 0
    #: removed while the backup ran (retention, a rolled-back receive)
    vanished: int = 0


@dataclass
class BackupManifest:
    """``backup.json``: what a backup holds."""

    format: int
    started_at: str
    database_copied_at: str
    finished_at: str
    home: str
    database_source: str
    database_file: str
    schema_revision: str | None
    rows: dict[str, int]
    spool: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of the node; raises :class:`BackupRefused` for another database."""
    parsed = make_url(settings.database_url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        raise BackupRefused(
            "lnm-node backup copies the embedded profile's SQLite database; this node uses "
            f"{parsed.get_backend_name()}: back it up with pg_dump, then copy the spool (README, "
            "'Backup and restore')"
        )
    return Path(str(parsed.database))


def check_target(out: Path, home: Path) -> None:
    """``out`` is an empty or new folder outside ``home``; else :class:`BackupRefused`."""
    target, home = out.absolute(), home.absolute()
    if target == home or home in target.parents or target in home.parents:
        raise BackupRefused(f"the backup folder {out} must lie outside the home {home}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupRefused(f"the backup folder {out} exists and is not empty")


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite database ``source`` at ``target`` (0600), taken with the
    online backup API while the node may write; the copy is checked (``quick_check``)."""
    if not source.is_file():
        raise BackupRefused(f"no database at {source}")
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            reader.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            copy.close()
    finally:
        reader.close()
    if verdict != "ok":
        raise OSError(f"the database copy {target} fails its check: {verdict}")


def copy_tree(
    source: Path, target: Path, progress: Progress, label: str, expected: int | None = None
) -> TreeCopy:
    """Hard-link (else copy, keeping times) every file under ``source`` into ``target``;
    folders are made 0700. A file removed meanwhile is counted, not an error."""
    result = TreeCopy()
    make_dirs(target)
    task = progress.add_task(label, total=expected)
    for relative, entry in walk(source):
        destination = target / relative
        if entry.is_dir(follow_symlinks=False):
            destination.mkdir(mode=DIR_MODE, exist_ok=True)
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            size = (source / relative).stat().st_size
            try:
                os.link(source / relative, destination)
                result.linked += 1
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(source / relative, destination)
                os.chmod(destination, FILE_MODE)
                result.copied += 1
        except FileNotFoundError:
            result.vanished += 1
            continue
        result.files += 1
        result.bytes += size
        progress.advance(task)
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat()


def back_up(settings: Settings, out: Path) -> BackupManifest:
    """Back up the embedded node of ``settings`` into ``out``: database, then spool, then the
    site's models, then ``backup.json``; a rich progress bar on standard error when it is a
    terminal. Raises :class:`BackupRefused` for a PostgreSQL node or a target that is not an
    empty folder outside the home."""
    database = sqlite_path(settings)
    check_target(out, settings.home)
    started = _now()
    make_dirs(out)
    copy_database(database, out / DATABASE_FILE)
    copied_at = _now()
    sessions = read_only_sessionmaker(f"sqlite:///{out / DATABASE_FILE}")
    with sessions() as session:
        revision = consistency.schema_revision(session)
        rows = {"studies": consistency.study_count(session),
                "instances": consistency.instance_count(session),
                "jobs": consistency.job_count(session)}  # fmt: skip
    sessions.kw["bind"].dispose()
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        spool = {area: asdict(copy_tree(
                     Spool.of(settings.home).area(area), Spool.of(out).area(area), progress,
                     f"spool/{area}", rows["instances"] if area == "incoming" else None))
                 for area in BACKED_UP_AREAS}  # fmt: skip
        models = asdict(copy_tree(site_models_dir(settings), out / site_models_dir(settings).name,
                                  progress, "models"))
    manifest = BackupManifest(
        format=FORMAT, started_at=started, database_copied_at=copied_at, finished_at=_now(),
        home=str(settings.home), database_source=str(database), database_file=DATABASE_FILE,
        schema_revision=revision, rows=rows, spool=spool, models=models,
    )
    path = out / MANIFEST
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "w") as handle:
        json.dump(asdict(manifest), handle, indent=2)
        handle.write("\n")
    return manifest
