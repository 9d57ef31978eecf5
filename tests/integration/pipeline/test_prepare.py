"""pipeline.serve.prepare: what every entry point does first."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from kernel.settings import load_settings
from kernel.spool import STALE_AFTER_SECONDS, Spool
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.serve import prepare
from pipeline.sweeper import run_sweeper


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


def test_sweeper_removes_stale_partial_files_while_running(node_context: NodeContext) -> None:
    spool = node_context.spool
    stale = spool.tmp_dir / "tmp-crashed.dcm"
    stale.write_bytes(b"half a dataset")
    old = time.time() - 2 * STALE_AFTER_SECONDS
    os.utime(stale, (old, old))
    stop = threading.Event()
    sweeper = threading.Thread(
        target=run_sweeper, args=(node_context, make_celery(node_context.settings), stop)
    )
    sweeper.start()
    try:
        deadline = time.monotonic() + 30
        while stale.exists():
            assert time.monotonic() < deadline, "the sweeper left the stale file"
            time.sleep(0.05)
    finally:
        stop.set()
        sweeper.join(timeout=30)
