"""Soak test (not in CI): push thousands of instances through a real node and count losses.

Run from the project root::

    python benchmarks/soak.py --instances 1000            # about 100 studies of 10
    python benchmarks/soak.py --instances 3000 --per-study 20 --models-dir DIR

A real `lnm-node serve` process (embedded profile: SQLite, a folder queue, one worker process)
receives phantom ultrasound studies by C-STORE from several sender threads, assembles them,
runs the model and delivers SEG/SR/heatmap to a real Orthanc. At the end it checks that every
instance sent was acknowledged and stored (an Instance row each), that every study became
a job (a late instance adds a generation: one more job), that every job was DELIVERED, and that
Orthanc holds exactly the job outputs.
Prints the figures as JSON; exits 1 when anything was lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select

from db.models import Instance, Job, JobState
from db.session import make_sessionmaker
from dicom_node.scu import store_files
from kernel.errors import TransientError
from kernel.settings import Destination
from phantom.us_dicom import write_us_study
from tests.support.node import start_node
from tests.support.orthanc import start_orthanc


def _send_study(destination: Destination, paths: list[Path]) -> tuple[int, int]:
    """(acknowledged, refused or unsent) for one study over one association, retried once."""
    for attempt in range(2):
        try:
            results = store_files(destination, paths, "SOAKSCU", timeout=60)
        except TransientError:  # a lost association: try the whole study again once
            if attempt == 1:
                return 0, len(paths)
            time.sleep(1)
            continue
        ok = sum(result.ok for result in results)
        return ok, len(paths) - ok
    return 0, len(paths)


def soak(instances: int, per_study: int, senders: int, folder: Path, models_dir: Path | None,
         timeout: float) -> dict[str, object]:
    studies = max(1, instances // per_study)
    files = [write_us_study(folder / "studies" / f"{s:05d}", seed=10_000 + s, count=per_study)
             for s in range(studies)]
    pacs = start_orthanc(folder / "orthanc")
    extra = ["--pacs", pacs.destination, "--quiet-seconds", "3"]
    env = {"LNM_MODELS_DIR": str(models_dir)} if models_dir else {}
    if models_dir:
        env["LNM_DEFAULT_MODEL"] = min(p.name for p in models_dir.iterdir() if p.is_dir())
    node = start_node(folder / "home", *extra, env=env)
    try:
        target = Destination(ae_title=node.ae_title, host="127.0.0.1", port=node.port)
        started = time.monotonic()
        with ThreadPoolExecutor(senders) as pool:
            outcomes = list(pool.map(lambda paths: _send_study(target, paths), files))
        send_seconds = time.monotonic() - started
        sessions = make_sessionmaker(f"sqlite:///{folder / 'home' / 'lnm.sqlite3'}", migrate=False)
        deadline = time.monotonic() + timeout
        while True:
            with sessions() as session:
                states = list(session.scalars(select(Job.state)))
            finished = [s for s in states if s in (JobState.DELIVERED, JobState.FAILED,
                                                   JobState.FAILED_INPUT, JobState.SKIPPED)]
            if len(states) >= studies and len(finished) == len(states):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        total_seconds = time.monotonic() - started
        with sessions() as session:
            received = len(list(session.scalars(select(Instance.id))))
            jobs = list(session.scalars(select(Job)))
            outputs = sum(len(job.outputs.get("sop_instance_uids", {})) for job in jobs)
            delivered = sum(job.state == JobState.DELIVERED for job in jobs)
            per_study_jobs = {job.study_id for job in jobs}
        stored_at_pacs = len(pacs.instance_ids())
        acknowledged = sum(ok for ok, _ in outcomes)
        report = {
            "instances_sent": studies * per_study, "acknowledged": acknowledged,
            "refused_or_unsent": sum(bad for _, bad in outcomes), "instance_rows": received,
            "studies": studies, "jobs": len(jobs), "studies_with_a_job": len(per_study_jobs),
            "jobs_delivered": delivered, "outputs": outputs, "pacs_instances": stored_at_pacs,
            "send_seconds": round(send_seconds, 1), "instances_per_second_received": round(acknowledged / send_seconds, 1),
            "total_seconds": round(total_seconds, 1),
            "jobs_per_minute": round(60 * delivered / max(total_seconds - send_seconds, 1e-9), 1),
        }
        # a study whose last instance came after the quiet time is assembled again (a new
        # generation, one more job): that is not a loss, every job must still be delivered
        report["reassembled_generations"] = len(jobs) - len(per_study_jobs)
        report["lost"] = (
            acknowledged != studies * per_study or received != acknowledged
            or len(per_study_jobs) != studies or delivered != len(jobs) or stored_at_pacs != outputs
        )
        return report
    finally:
        node.stop(timeout=120)
        pacs.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--per-study", type=int, default=10)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--models-dir", type=Path, default=None, help="default: the shipped models")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: a temp one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lnm-soak-") as temp:
        folder = args.folder or Path(temp)
        report = soak(args.instances, args.per_study, args.senders, folder, args.models_dir, args.timeout)
    print(json.dumps(report, indent=2))
    sys.exit(1 if report["lost"] else 0)


if __name__ == "__main__":
    main()
