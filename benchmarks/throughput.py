"""Studies per hour per worker: warm worker processes running jobs to a real PACS (Orthanc).

A node (embedded profile, temporary home, the packaged default model) receives ``--studies``
single-frame studies (480 x 640, BodyPartExamined BREAST) through its real SCP and assembles
them; then ``--workers`` processes, each warmed first (:func:`pipeline.warmup.warm_models`, torch
threads = cores / workers, as `serve` sets them), run the jobs (infer, encode, deliver to Orthanc
over C-STORE) from a shared list. Printed: studies/hour in all and per worker, seconds per job.

    python benchmarks/throughput.py [--studies 20] [--workers 1 2] [--device cpu]
        [--batch-wait-ms 0 50] [--batch-max 8]

``--batch-wait-ms`` above 0 runs each worker process as a batching worker does: ``--batch-max``
jobs at once in threads, their forward passes batched (``inference.batching``); the table gives
the mean batch size.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from pydicom.uid import generate_uid

# the project root first: this folder's inference.py would shadow the inference package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import scope as scope_db
from dicom_node.scp import start_scp
from dicom_node.scu import send_instances
from kernel.settings import Destination, Settings
from phantom.us_dicom import make_us_dataset
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from pipeline.warmup import warm_models
from pipeline.worker import cpu_threads
from tests.support.orthanc import start_orthanc


def make_studies(folder: Path, count: int) -> list[Path]:
    """``count`` one-instance studies."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        ds, _, _ = make_us_dataset(
            seed=seed,
            rows=480,
            cols=640,
            study_instance_uid=generate_uid(),
            series_instance_uid=generate_uid(),
            sop_instance_uid=generate_uid(),
        )
        ds.BodyPartExamined = "BREAST"
        path = folder / f"{seed}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def gate_off(ctx: NodeContext) -> None:
    """Switch the default model's out-of-domain gate off, as `scope set --gate off` does: it
    rightly declines these synthetic images (a declined job sends a "not run" SR only)."""
    with ctx.sessions.begin() as session:
        scope_db.set_override(session, ctx.settings.default_model, "benchmark", gate=False)


def receive_and_assemble(ctx: NodeContext, paths: list[Path]) -> list[int]:
    """Send the studies to the node's SCP, assemble them; the ids of their jobs."""
    server = start_scp(ctx.settings, ctx.spool, ctx.sessions)
    try:
        destination = Destination(
            ae_title=ctx.settings.ae_title, host="127.0.0.1", port=server.server_address[1]
        )
        send_instances(destination, paths, "BENCH")
    finally:
        server.shutdown()
    sweep(ctx, make_celery(ctx.settings))
    from sqlalchemy import select

    from db.models import Job

    with ctx.sessions() as session:
        return list(session.scalars(select(Job.id).order_by(Job.id)))


def _worker(  # type: ignore[no-untyped-def]
    settings_json: str, processes: int, queue, barrier, results
) -> None:
    import torch

    settings = Settings.model_validate_json(settings_json)
    ctx = NodeContext.build(settings, migrate=False)
    if settings.device == "cpu":
        torch.set_num_threads(cpu_threads(processes))
    warm_models(ctx)
    ctx.passes.sizes.clear()  # the warm-up's passes are not jobs'
    # a batching worker runs batch_max jobs at once in threads of one process, as Celery's
    # thread pool does (pipeline.worker.worker_argv); otherwise one job at a time
    slots = settings.batch_max if settings.batching() else 1
    done: list[int] = []
    failures: list[str] = []

    def take() -> None:
        while True:
            job_id = queue.get()
            if job_id is None:
                return
            if process_job(ctx, job_id) != Outcome.DELIVERED:
                failures.append(f"job {job_id} not delivered")
            done.append(job_id)

    barrier.wait()
    started = time.time()
    threads = [threading.Thread(target=take) for _ in range(slots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError("; ".join(failures))
    sizes = list(ctx.passes.sizes)
    results.put((started, time.time(), len(done), sum(sizes) / max(1, len(sizes))))


def run(ctx: NodeContext, job_ids: list[int], workers: int) -> tuple[float, float]:
    """Run the jobs on ``workers`` warm processes; (seconds from the start line, mean size of
    the forward passes' batches)."""
    spawn = mp.get_context("spawn")
    queue, results, barrier = spawn.Queue(), spawn.Queue(), spawn.Barrier(workers)
    for job_id in job_ids:
        queue.put(job_id)
    settings = ctx.settings
    for _ in range(workers * (settings.batch_max if settings.batching() else 1)):
        queue.put(None)
    processes = [
        spawn.Process(
            target=_worker, args=(ctx.settings.model_dump_json(), workers, queue, barrier, results)
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    spans = [results.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join()
    return max(s[1] for s in spans) - min(s[0] for s in spans), sum(s[3] for s in spans) / workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-wait-ms", type=float, nargs="+", default=[None],
                        help="forward-pass batching waits to compare (default: the setting's)")
    parser.add_argument("--batch-max", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lnm-throughput-") as tmp:
        folder = Path(tmp)
        pacs = start_orthanc(folder / "orthanc")
        try:
            print(
                f"{os.cpu_count()} CPUs, device {args.device}, load average "
                f"{os.getloadavg()[0]:.1f}; {args.studies} single-frame studies, ynet-busi"
            )
            print("| workers | batch wait ms | mean batch | seconds | studies/hour "
                  "| studies/hour/worker | s/job/worker |")
            print("|---|---|---|---|---|---|---|")
            for workers, wait in itertools.product(args.workers, args.batch_wait_ms):
                name = f"{workers}-{wait}"
                settings = Settings(
                    home=folder / f"home{name}",
                    port=0,
                    quiet_seconds=0,
                    device=args.device,
                    destinations=pacs.destination,
                    batch_wait_ms=wait,
                    batch_max=args.batch_max,
                )
                ctx = prepare(settings)
                gate_off(ctx)
                job_ids = receive_and_assemble(ctx, make_studies(folder / f"s{name}", args.studies))
                seconds, batch = run(ctx, job_ids, workers)
                per_hour = len(job_ids) * 3600 / seconds
                print(
                    f"| {workers} | {settings.effective_batch_wait_seconds() * 1000:.0f} "
                    f"| {batch:.1f} | {seconds:.1f} | {per_hour:.0f} | {per_hour / workers:.0f} "
                    f"| {seconds * workers / len(job_ids):.2f} |",
                    flush=True,
                )
        finally:
            pacs.stop()


if __name__ == "__main__":
    main()
