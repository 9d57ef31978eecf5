"""pipeline.serve.prepare: what every entry point does first."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kernel.settings import load_settings
from kernel.spool import STALE_AFTER_SECONDS, Spool
from pipeline.serve import prepare


def test_prepare_removes_partial_files_a_crash_left(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", port=0)
    spool = Spool.under(settings.home)
    stale, fresh = spool.tmp_dir / "tmp1234.dcm", spool.tmp_dir / "abcd.part"
    stale.write_bytes(b"half a dataset")
    fresh.write_bytes(b"a write in progress")
    old = time.time() - 2 * STALE_AFTER_SECONDS
    os.utime(stale, (old, old))
    prepare(settings)
    assert not stale.exists() and fresh.exists()
