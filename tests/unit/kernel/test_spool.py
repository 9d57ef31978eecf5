import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from kernel.spool import Spool


def test_spool_write_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    spool = Spool.under(tmp_path)
    target = spool.incoming_path("1.2.3", "1.2.3.4", "1.2.3.4.5")

    def failing(handle) -> None:  # type: ignore[no-untyped-def]
        handle.write(b"half")
        raise OSError("disk gone")

    with pytest.raises(OSError):
        spool.write_atomic(target, failing)
    assert not target.exists()
    assert list(spool.tmp_dir.iterdir()) == []
    spool.write_bytes_atomic(target, b"whole")
    assert target.read_bytes() == b"whole"


def test_spool_path_component_traversal_is_refused(tmp_path: Path) -> None:
    spool = Spool.under(tmp_path)
    with pytest.raises(ValueError, match="unsafe"):
        spool.incoming_path("..", "1.2", "1.2.3")
    with pytest.raises(ValueError, match="unsafe"):
        spool.incoming_path("1.2/../../etc", "1.2", "1.2.3")


def test_spool_quarantine_keeps_bytes_and_reason(tmp_path: Path) -> None:
    spool = Spool.under(tmp_path)
    record_path = spool.quarantine(b"not dicom", "cannot parse", {"calling_ae_title": "US1"})
    record = json.loads(record_path.read_text())
    assert record["reason"] == "cannot parse" and record["calling_ae_title"] == "US1"
    assert (spool.quarantine_dir / record["file"]).read_bytes() == b"not dicom"
    assert spool.quarantined()[0]["reason"] == "cannot parse"


def test_spool_place_same_filesystem_links_the_file(tmp_path: Path) -> None:
    spool = Spool.under(tmp_path)
    source = spool.tmp_dir / "received.dcm"
    source.write_bytes(b"dataset")
    inode = source.stat().st_ino
    target = spool.incoming_path("1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert spool.place(source, target) is True
    assert target.read_bytes() == b"dataset"
    assert target.stat().st_ino == inode  # moved, not copied
    assert not source.exists()


def test_spool_place_existing_file_kept_source_left(tmp_path: Path) -> None:
    spool = Spool.under(tmp_path)
    target = spool.incoming_path("1.2.3", "1.2.3.4", "1.2.3.4.7")
    assert spool.place(b"first", target) is True
    second = spool.tmp_dir / "second.dcm"
    second.write_bytes(b"second")
    assert spool.place(second, target) is False
    assert spool.place(b"third", target) is False
    assert target.read_bytes() == b"first"  # never overwritten
    assert second.exists()  # the caller decides what becomes of it
    assert [path.name for path in spool.tmp_dir.iterdir()] == ["second.dcm"]


def test_spool_place_other_filesystem_copies_and_leaves_the_source(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem (/dev/shm) on this machine")
    spool = Spool.under(tmp_path)
    with tempfile.NamedTemporaryFile(dir=shm, suffix=".dcm") as handle:
        handle.write(b"dataset")
        handle.flush()
        target = spool.incoming_path("1.2.3", "1.2.3.4", "1.2.3.4.6")
        assert spool.place(Path(handle.name), target) is True
        assert target.read_bytes() == b"dataset"
        assert Path(handle.name).exists()  # its owner (pynetdicom) deletes it
    assert list(spool.tmp_dir.iterdir()) == []


def test_spool_remove_stale_deletes_only_old_partial_files(tmp_path: Path) -> None:
    spool = Spool.under(tmp_path)
    old, fresh = spool.tmp_dir / "old.part", spool.tmp_dir / "tmpabc.dcm"
    old.write_bytes(b"left by a crash")
    fresh.write_bytes(b"being written")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert spool.remove_stale() == 1
    assert not old.exists() and fresh.exists()
    assert spool.remove_stale(older_than_seconds=0) == 1
    assert list(spool.tmp_dir.iterdir()) == []


def test_quarantine_count_and_newest_records_without_reading_all(tmp_path: Path) -> None:
    spool = Spool.under(tmp_path)
    for n in range(5):
        spool.quarantine(b"x", f"reason {n}", {})
    min(spool.quarantine_dir.glob("*.json")).write_text("{damaged")
    assert spool.quarantine_count() == 5
    newest = spool.quarantined(limit=2)
    assert [r["reason"] for r in newest] == ["reason 4", "reason 3"]


def test_spool_files_0600_and_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    from kernel.settings import load_settings

    previous = os.umask(0o022)
    try:
        settings = load_settings(home=tmp_path / "home")
        from db.session import make_sessionmaker

        make_sessionmaker(settings.database_url).kw["bind"].dispose()
        spool = Spool.under(settings.home)
        written = spool.write_bytes_atomic(spool.incoming_path("1.2", "1.2.3", "1.2.3.4"), b"x")
        record = spool.quarantine(b"bytes", "reason", {})
        loose = tmp_path / "received.part"
        loose.write_bytes(b"y")
        moved = spool.quarantine(loose, "reason", {})
        adopted = spool.outbox_dir(7) / "seg.dcm"
        spool.place(_loose(tmp_path), adopted)
        placed_bytes = spool.incoming_path("1.2", "1.2.3", "1.2.3.5")
        spool.place(b"z", placed_bytes)
    finally:
        os.umask(previous)
    files = [written, record, record.with_suffix(".dcm"), moved, moved.with_suffix(".dcm"), adopted, placed_bytes,
             settings.home / "lnm.sqlite3"]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o600" for f in files}
    folders = [settings.home, written.parent, written.parent.parent, spool.quarantine_dir,
               spool.tmp_dir, adopted.parent, spool.work_dir(7)]
    assert {str(d): oct(d.stat().st_mode & 0o777) for d in folders} == {str(d): "0o700" for d in folders}


def _loose(folder: Path) -> Path:
    path = folder / "seg.part"
    path.write_bytes(b"z")
    return path


def test_spool_place_new_study_folders_synced_in_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kernel.spool

    synced: list[Path] = []
    real_fsync_dir = kernel.spool.fsync_dir

    def counting_fsync_dir(folder: Path) -> None:
        synced.append(folder)
        real_fsync_dir(folder)  # the real fsync still runs; this only counts it

    monkeypatch.setattr(kernel.spool, "fsync_dir", counting_fsync_dir)
    spool = Spool.under(tmp_path)
    incoming = spool.root / "incoming"
    first = spool.incoming_path("1.2.3", "1.2.3.4", "1.2.3.4.1")
    assert spool.place(b"one", first, sync_folder=False) is True
    # the new study folder's entry in incoming/, the new series folder's in the study folder
    assert synced == [incoming, incoming / "1.2.3"]
    synced.clear()
    assert spool.place(b"two", spool.incoming_path("1.2.3", "1.2.3.4", "1.2.3.4.2")) is True
    assert synced == [first.parent]  # a known series: only the file's own folder
