import json
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
