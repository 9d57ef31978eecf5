"""The spool folder: the only module that builds paths under the node's home.

Layout::

    HOME/spool/incoming/<study>/<series>/<sop>.dcm   received instances
    HOME/spool/quarantine/<id>.dcm + <id>.json       refused instances with the reason
    HOME/spool/work/<job>/                           predictions
    HOME/spool/outbox/<job>/<role>.dcm               results to deliver
    HOME/spool/tmp/                                  partial writes (same filesystem)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

_SAFE = re.compile(r"^[0-9A-Za-z.\-_]{1,128}$")


def _safe(component: str) -> str:
    """Refuse anything that is not a plain UID-like path component."""
    if not _SAFE.match(component) or component in {".", ".."}:
        raise ValueError(f"unsafe path component {component!r}")
    return component


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (after a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Spool:
    """Paths and durable writes under ``root``."""

    root: Path

    @classmethod
    def under(cls, home: Path) -> Spool:
        spool = cls(Path(home) / "spool")
        for sub in ("incoming", "quarantine", "work", "outbox", "tmp"):
            (spool.root / sub).mkdir(parents=True, exist_ok=True)
        return spool

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
        path.mkdir(parents=True, exist_ok=True)
        return path

    def outbox_dir(self, job_id: int | str) -> Path:
        path = self.root / "outbox" / _safe(str(job_id))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_atomic(self, path: Path, write: Callable[[BinaryIO], None]) -> Path:
        """Write via a temp file in the spool, fsync it, rename into place, fsync the folder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        fsync_dir(path.parent)
        return path

    def write_bytes_atomic(self, path: Path, data: bytes) -> Path:
        return self.write_atomic(path, lambda handle: handle.write(data))

    def quarantine(self, data: bytes | Path | None, reason: str, details: dict[str, object]) -> Path:
        """Keep a refused instance with its reason; returns the JSON record's path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{uuid.uuid4().hex[:12]}"
        record = {"reason": reason, "received_at": datetime.now(UTC).isoformat(), **details}
        if isinstance(data, Path):
            target = self.quarantine_dir / f"{name}.dcm"
            shutil.move(str(data), target)
            record["file"] = target.name
        elif data is not None:
            self.write_bytes_atomic(self.quarantine_dir / f"{name}.dcm", data)
            record["file"] = f"{name}.dcm"
        json_path = self.quarantine_dir / f"{name}.json"
        self.write_bytes_atomic(json_path, json.dumps(record, indent=2, default=str).encode())
        return json_path

    def quarantined(self) -> list[dict[str, object]]:
        """All quarantine records, oldest first."""
        return [json.loads(p.read_text()) for p in sorted(self.quarantine_dir.glob("*.json"))]
