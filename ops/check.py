"""The consistency check: does the node's database agree with its spool?

Read-only and safe on a live node: the database is opened read-only
(:func:`db.session.read_only_sessionmaker`) and read in chunks of :data:`CHUNK` rows, each in a
short transaction of its own (no snapshot or lock is held through the walk); the spool is
walked folder by folder (``os.scandir``, streamed), and nothing in it is written or removed.

What it looks for (:class:`Kind`): instance rows whose file is missing, or whose file's size
differs from the row's (the row records no digest), or whose path lies outside this home's
spool; files under ``incoming/`` with no row (orphans: a database restored from a backup older
than the spool, a commit lost in a crash); quarantine files without their record and records
without their file; ``work/`` and ``outbox/`` folders of jobs that do not exist; jobs waiting for
delivery whose output files are gone; partial files left in ``tmp/``.

What is not a problem: the files of an expired study (retention deleted them and audited
``expire``: rows received before that event keep their path, their file gone); a file younger
than the settle time (:func:`settle_seconds`) with no row yet, which a receive in progress
places before it commits its row (counted as ``in_flight``). Candidates are looked at again at
the end of the walk, so a retention pass or a commit that lands meanwhile is not reported.
Examples name UIDs and paths only, never a patient.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from db import consistency
from db.session import alembic_config
from kernel.settings import Settings
from kernel.spool import Spool, walk

#: rows read per transaction, and files looked up per query
CHUNK = 1000
#: examples kept per kind of problem
EXAMPLES = 10


class Kind(StrEnum):
    """The kinds of disagreement, in the order they are reported."""

    MISSING_FILE = "missing_file"
    SIZE_MISMATCH = "size_mismatch"
    OUTSIDE_SPOOL = "outside_spool"
    ORPHAN_FILE = "orphan_file"
    QUARANTINE_UNPAIRED = "quarantine_unpaired"
    FOLDER_WITHOUT_JOB = "folder_without_job"
    PENDING_OUTPUT_MISSING = "pending_output_missing"
    TMP_LEFTOVER = "tmp_leftover"


DESCRIPTIONS = {
    Kind.MISSING_FILE: "instance rows whose file is missing (not by retention)",
    Kind.SIZE_MISMATCH: "instance files whose size differs from their row's",
    Kind.OUTSIDE_SPOOL: "instance rows whose path lies outside this home's spool",
    Kind.ORPHAN_FILE: "files in incoming/ with no instance row",
    Kind.QUARANTINE_UNPAIRED: "quarantine files without their record, or records without their file",
    Kind.FOLDER_WITHOUT_JOB: "work/ or outbox/ folders of jobs that do not exist",
    Kind.PENDING_OUTPUT_MISSING: "output files of jobs waiting for delivery that are gone",
    Kind.TMP_LEFTOVER: "partial files left in tmp/",
}


@dataclass
class Finding:
    """How many of one kind of problem, with the first :data:`EXAMPLES` of them."""

    kind: Kind
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


@dataclass
class CheckReport:
    """The check's outcome: problems by kind, and what was looked at."""

    revision: str | None
    head: str | None
    findings: dict[Kind, Finding] = field(default_factory=lambda: {k: Finding(k) for k in Kind})
    #: instance rows, files walked, expired rows, files in flight
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        return sum(finding.count for finding in self.findings.values())

    @property
    def consistent(self) -> bool:
        return self.problems == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "schema_revision": self.revision,
            "schema_head": self.head,
            "counts": self.counts,
            "problems": {
                kind.value: {"what": DESCRIPTIONS[kind], "count": f.count, "examples": f.examples}
                for kind, f in self.findings.items()
            },
        }


class UnreadableDatabase(Exception):
    """The database has no schema revision (not a node's), or one whose tables the check cannot
    read (older than revision 0002)."""


def settle_seconds(settings: Settings) -> float:
    """How young a file may be and still belong to a write in progress: a received file is
    placed before its row commits (within ``commit_wait_seconds``), and a partial file is
    written to while its association lives (``network_timeout_seconds`` between reads)."""
    return max(settings.commit_wait_seconds, settings.network_timeout_seconds)


def _files(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The entries of ``folder``, streamed; none when it does not exist."""
    try:
        with os.scandir(folder) as entries:
            yield from entries
    except FileNotFoundError:
        return


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


class _Check:
    """One run of the check (the state of its walk)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], progress: Progress,
                 clock: Callable[[], float]) -> None:
        self.spool = Spool.of(settings.home)
        self.sessions = sessions
        self.progress = progress
        self.clock = clock
        self.settle = settle_seconds(settings)
        with sessions() as session:
            revision = consistency.schema_revision(session)
            if revision is None:
                raise UnreadableDatabase("the database has no schema revision: not a node database")
            self.rows = consistency.instance_count(session)
        head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
        self.report = CheckReport(revision, head)
        self.counts = self.report.counts
        self.counts.update(instance_rows=self.rows, expired=0, incoming_files=0, in_flight=0)

    def _young(self, mtime: float | None) -> bool:
        return mtime is not None and self.clock() - mtime < self.settle

    def add(self, kind: Kind, example: str) -> None:
        self.report.findings[kind].add(example)

    def instance_rows(self) -> None:
        """Every row: its file there, with its size; rows whose file is missing are read again
        at the end (a retention pass may have expired their study meanwhile)."""
        incoming = str(self.spool.area("incoming")) + os.sep
        task = self.progress.add_task("instance rows", total=self.rows)
        missing: list[int] = []
        last = 0
        while True:
            with self.sessions() as session:
                chunk = consistency.instance_files(session, last, CHUNK)
            if not chunk:
                break
            last = chunk[-1].id
            for row in chunk:
                if not row.path.startswith(incoming):
                    self.add(Kind.OUTSIDE_SPOOL, f"{row.sop_instance_uid}: {row.path}")
                    continue
                try:
                    size = os.stat(row.path).st_size
                except FileNotFoundError:
                    if row.expired:
                        self.counts["expired"] += 1
                    else:
                        missing.append(row.id)
                    continue
                if size != row.size_bytes:
                    self.add(Kind.SIZE_MISMATCH, f"{row.sop_instance_uid}: {row.path} is {size} "
                                                 f"bytes, its row says {row.size_bytes}")
            self.progress.advance(task, len(chunk))
        with self.sessions() as session:
            again = consistency.instance_files_of(session, missing)
        for row in again:
            if row.expired:
                self.counts["expired"] += 1
            elif not os.path.exists(row.path):
                self.add(Kind.MISSING_FILE, f"{row.sop_instance_uid}: {row.path}")

    def _incoming_files(self) -> Iterator[str]:
        """Every file under ``incoming/`` (any depth), streamed."""
        for _, entry in walk(self.spool.area("incoming")):
            if not entry.is_dir(follow_symlinks=False):
                yield entry.path

    def incoming_files(self) -> None:
        """Every file under ``incoming/`` has a row that names it; those without one are read
        again at the end, and those still without one but young are in flight."""
        task = self.progress.add_task("spool files", total=self.rows)
        candidates: list[str] = []
        batch: list[str] = []

        def look_up(paths: list[str]) -> list[str]:
            """Those of ``paths`` that no row names."""
            sops = {Path(p).name.removesuffix(".dcm"): p for p in paths if p.endswith(".dcm")}
            with self.sessions() as session:
                recorded = consistency.paths_of(session, sops) if sops else {}
            named = set(recorded.values())
            return [p for p in paths if p not in named]

        for path in self._incoming_files():
            self.counts["incoming_files"] += 1
            batch.append(path)
            if len(batch) >= CHUNK:
                candidates += look_up(batch)
                self.progress.advance(task, len(batch))
                batch = []
        candidates += look_up(batch)
        self.progress.advance(task, len(batch))
        for start in range(0, len(candidates), CHUNK):
            for path in look_up(candidates[start : start + CHUNK]):
                mtime = _mtime(path)
                if mtime is None:  # removed meanwhile (retention, a rolled-back receive)
                    continue
                if self._young(mtime):
                    self.counts["in_flight"] += 1
                else:
                    self.add(Kind.ORPHAN_FILE, path)

    def quarantine(self) -> None:
        """Each quarantined instance's bytes have their record; a record that names its file
        has it (a record without bytes is a refusal of nothing kept)."""
        folder = self.spool.area("quarantine")
        stems: dict[str, set[str]] = {}
        for entry in _files(folder):
            stem, _, suffix = entry.name.rpartition(".")
            if suffix in ("dcm", "json") and stem:
                stems.setdefault(stem, set()).add(suffix)
        for stem, suffixes in sorted(stems.items()):
            if suffixes == {"dcm"}:  # its record is written right after the bytes
                path = folder / f"{stem}.dcm"
                if not self._young(_mtime(str(path))):
                    self.add(Kind.QUARANTINE_UNPAIRED, f"{path} has no record")
            elif suffixes == {"json"}:
                try:
                    named = json.loads((folder / f"{stem}.json").read_text()).get("file")
                except (OSError, ValueError, AttributeError):
                    continue  # removed by retention meanwhile, or not a record
                if named and not (folder / named).exists():
                    self.add(Kind.QUARANTINE_UNPAIRED, f"{folder / stem}.json names {named}, gone")

    def job_folders(self) -> None:
        """Each ``work/<job>`` and ``outbox/<job>`` folder is of a job that exists."""
        for area in ("work", "outbox"):
            names = [entry.name for entry in _files(self.spool.area(area))]
            ids = {int(name) for name in names if name.isdigit()}
            found: set[int] = set()
            ordered = sorted(ids)
            for start in range(0, len(ordered), CHUNK):
                with self.sessions() as session:
                    found |= consistency.existing_jobs(session, ordered[start : start + CHUNK])
            for name in sorted(names):
                if not name.isdigit() or int(name) not in found:
                    self.add(Kind.FOLDER_WITHOUT_JOB, str(self.spool.area(area) / name))

    def pending_outputs(self) -> None:
        """The output files of jobs waiting for delivery are there (an expired study's are
        not expected)."""
        with self.sessions() as session:
            pending = consistency.pending_outputs(session)
        for job in pending:
            if job.expired:
                continue
            for role, path in sorted(job.files.items()):
                if not os.path.exists(path):
                    self.add(Kind.PENDING_OUTPUT_MISSING, f"job {job.job_id} {role}: {path}")

    def tmp(self) -> None:
        """Files in ``tmp/`` untouched for the settle time belong to no write in progress."""
        for entry in _files(self.spool.area("tmp")):
            mtime = _mtime(entry.path)
            if mtime is not None and not self._young(mtime):
                self.add(Kind.TMP_LEFTOVER, entry.path)


def check_node(
    settings: Settings, sessions: sessionmaker[Session], clock: Callable[[], float] = time.time
) -> CheckReport:
    """Compare the database (``sessions``: read-only) with the spool of ``settings.home``;
    a rich progress bar on standard error when it is a terminal. Raises
    :class:`UnreadableDatabase` when the database has no schema revision or its tables cannot
    be read."""
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        check = _Check(settings, sessions, progress, clock)
        try:
            check.instance_rows()
            check.incoming_files()
            check.quarantine()
            check.job_folders()
            check.pending_outputs()
            check.tmp()
        except (ProgrammingError, OperationalError) as error:  # a column or table it lacks
            reason = str(error.orig or error).strip().splitlines()[0]
            raise UnreadableDatabase(
                f"cannot read it at schema revision {check.report.revision} (this node's: "
                f"{check.report.head}): {reason}"
            ) from error
    return check.report
