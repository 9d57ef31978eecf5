"""Per-step cost of the node's own receive work on one 0.9 MB single frame.

Run from the project root::

    python benchmarks/receive_steps.py            # 80 instances
    python benchmarks/receive_steps.py --count 200

In one process, on the spool's real disk and a real SQLite database (WAL, ``synchronous=FULL``,
as ``lnm-node scp`` runs it), each generated instance goes through the steps the C-STORE
handler runs after pynetdicom has written the dataset to a temporary file in the spool
(:mod:`dicom_node.receive`): the memory-budget peek, the checks, placing the file (fsync and
link), then the group commit (statements, one fsync of the folder, the commit). Every other
instance runs the group commit as the node does (a hand-over to the writer thread); the others
run the same work step by step in this thread, so each step has its own figure. Prints the
median and the 90th percentile per step, in milliseconds. What ``benchmarks/ingest.py``
measures beyond the sum is pynetdicom's own work (its no-op row) and the scheduling of the
node's threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydicom.uid import generate_uid

from db.group_commit import GroupCommit
from db.instances import ReceivedInstance, record_or_find
from db.session import make_sessionmaker
from dicom_node.memory_budget import check_cost
from dicom_node.receive import DEFAULT_MAX_FRAME_SAMPLES, check_instance
from kernel.spool import Spool, fsync_dir
from phantom.us_dicom import make_us_dataset

T = TypeVar("T")


def measure(count: int, folder: Path) -> dict[str, list[float]]:
    """Milliseconds per step for ``count`` instances received into a spool under ``folder``."""
    spool = Spool.under(folder)
    sessions = make_sessionmaker(f"sqlite:///{folder}/node.sqlite")
    commits = GroupCommit(sessions)
    ds, _, _ = make_us_dataset(seed=1, rows=480, cols=640, rgb=True)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    sop_class, syntax = str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)
    steps: dict[str, list[float]] = {}

    def timed(step: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        begin = time.perf_counter()
        result = call(*args, **kwargs)
        steps.setdefault(step, []).append((time.perf_counter() - begin) * 1000)
        return result

    for index in range(count):
        uid = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        source = spool.tmp_dir / f"received-{index}.dcm"  # where pynetdicom writes it
        ds.save_as(source, enforce_file_format=True)
        size = source.stat().st_size
        timed("1 memory-budget peek", check_cost, source, size, True, DEFAULT_MAX_FRAME_SAMPLES)
        header = timed(
            "2 checks", check_instance, source, sop_class, uid, transfer_syntax_uid=syntax
        )
        target = spool.incoming_path(header.study_instance_uid, header.series_instance_uid, uid)
        timed("3 file fsync + link", spool.place, source, target, sync_folder=False)
        item = ReceivedInstance(
            header.study_instance_uid,
            header.series_instance_uid,
            uid,
            sop_class,
            syntax,
            str(target),
            size,
            patient_key=header.patient_key,
        )
        work = partial(record_or_find, item=item)
        if index % 2:
            timed("4 group commit (5-7 and the hand-over)", commits.run, work, [target.parent])
            continue
        with sessions() as session:
            session.begin()
            timed("5 statements", work, session)
            timed("6 folder fsync", fsync_dir, target.parent)
            timed("7 commit (WAL fsync)", session.commit)
    sessions.kw["bind"].dispose()
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=80, help="instances (the first 4 warm up)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lnm-steps-") as folder:
        steps = measure(args.count, Path(folder))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; milliseconds")
    print("| step | median | p90 |")
    print("|---|---|---|")
    for step in sorted(steps):
        values = sorted(steps[step][2:])
        print(
            f"| {step} | {statistics.median(values):.2f} | "
            f"{values[int(0.9 * (len(values) - 1))]:.2f} |"
        )


if __name__ == "__main__":
    main()
