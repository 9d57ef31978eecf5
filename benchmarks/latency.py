"""Time to result: from the end of a modality's send (or its MPPS N-SET COMPLETED) to the SR in a
real PACS (Orthanc), per stage, cold and warm.

Runs `lnm-node serve` (embedded profile, the packaged default model, LNM_WORKER_CONCURRENCY
unset: one worker per core) twice on loopback, each time a fresh node:

- **without MPPS**, quiet time 3 s: the first study sent as soon as the node accepts
  associations (cold), then ``--warm`` single-frame studies one after another, one 87-frame JPEG
  cine, and a burst of ``--burst`` single-frame studies sent at once by 4 senders;
- **with MPPS**, quiet time left at 30 s: the same, each study announced by N-CREATE (IN
  PROGRESS) before its send and closed by N-SET COMPLETED listing its instances after it.

The clock starts when the send ends (no MPPS) or when the N-SET is sent (MPPS) and
stops at the node's audit record of the job's delivery (every output stored by the PACS:
an upper bound on the SR's arrival); each SR is then looked up in Orthanc. Stages come from the
node's audit trail: receive (the send, client side), assemble (trigger to the study's assemble
record: the quiet time, or the MPPS hand-over), queue wait (to the worker's claim), infer,
encode, deliver. Studies carry BodyPartExamined BREAST (the default model's scope). The
model's out-of-domain gate is switched off (`scope set --gate off`, as an admin would): it
rightly declines these synthetic images, and a declined study gets a "not run" SR instead of
the three outputs. On an in-domain image the gate costs a feature tap on the same pass.

    python benchmarks/latency.py [--warm 5] [--burst 20] [--json out.json]
        [--profile embedded|production|both]

``--profile production`` runs the production profile instead: `lnm-node scp` (which assembles
a study itself on its MPPS N-SET and hands the job to Redis), `lnm-node beat` (the quiet timer)
and `lnm-node worker` (Celery prefork on Redis), state in a fresh PostgreSQL database on this
host's server (loopback).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import redis
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep
from sqlalchemy import select

# the project root first: this folder's inference.py would shadow the inference package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.models import AuditEvent, Job, JobState, Study
from db.session import make_sessionmaker
from dicom_node.scu import send_instances
from kernel.settings import Destination
from phantom.us_dicom import make_us_dataset
from tests.support.databases import postgres_database
from tests.support.network import wait_until
from tests.support.node import NodeProcess, start_node
from tests.support.orthanc import Orthanc, start_orthanc

STAGES = ("receive", "assemble", "queue_wait", "infer", "encode", "deliver", "total")
SENDER = "US_MODALITY"
#: the Redis database index the production profile's broker uses (emptied before and after)
REDIS_INDEX = 12


@dataclass
class StudyFiles:
    study_uid: str
    paths: list[Path]


@dataclass
class Timing:
    """One study's figures in seconds; ``total`` runs from the trigger to the delivery."""

    scenario: str
    stages: dict[str, float] = field(default_factory=dict)


def make_study(folder: Path, seed: int, frames: int = 1) -> StudyFiles:
    """One synthetic study: a 480 x 640 grey single frame, or a JPEG cine of ``frames``."""
    study_uid = generate_uid()
    syntax = JPEGBaseline8Bit if frames > 1 else ExplicitVRLittleEndian
    ds, _, _ = make_us_dataset(
        seed=seed,
        rows=480,
        cols=640,
        frames=frames,
        transfer_syntax=syntax,
        study_instance_uid=study_uid,
        series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(),
    )
    ds.BodyPartExamined = "BREAST"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{seed}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return StudyFiles(study_uid, [path])


class Mpps:
    """A modality's MPPS SCU: N-CREATE before the send, N-SET COMPLETED after it."""

    def __init__(self, port: int) -> None:
        self._port = port

    def _request(self, name: str, dataset: Dataset, uid: str) -> float:
        """Send N-CREATE or N-SET (``name``) on its own association; the time it was sent."""
        ae = AE(ae_title=SENDER)
        ae.add_requested_context(ModalityPerformedProcedureStep)
        assoc = ae.associate("127.0.0.1", self._port, ae_title="LNMNODE")
        if not assoc.is_established:
            raise RuntimeError("MPPS association refused")
        send = assoc.send_n_create if name == "N-CREATE" else assoc.send_n_set
        sent = time.time()
        status, _ = send(dataset, ModalityPerformedProcedureStep, uid)
        assoc.release()
        if int(status.Status) != 0:
            raise RuntimeError(f"{name} answered 0x{int(status.Status):04X}")
        return sent

    def create(self, study: StudyFiles) -> str:
        """N-CREATE IN PROGRESS naming the study; returns the step's UID."""
        uid = generate_uid()
        ds = Dataset()
        ds.PerformedProcedureStepStatus = "IN PROGRESS"
        ds.Modality = "US"
        item = Dataset()
        item.StudyInstanceUID = study.study_uid
        ds.ScheduledStepAttributesSequence = Sequence([item])
        self._request("N-CREATE", ds, uid)
        return uid

    def complete(self, uid: str, study: StudyFiles) -> float:
        """N-SET COMPLETED listing the study's instances; returns the time it was sent."""
        ds = Dataset()
        ds.PerformedProcedureStepStatus = "COMPLETED"
        series = Dataset()
        series.ReferencedImageSequence = Sequence()
        for path in study.paths:
            header = pydicom.dcmread(path, stop_before_pixels=True)
            series.SeriesInstanceUID = header.SeriesInstanceUID
            item = Dataset()
            item.ReferencedSOPClassUID = header.SOPClassUID
            item.ReferencedSOPInstanceUID = header.SOPInstanceUID
            series.ReferencedImageSequence.append(item)
        ds.PerformedSeriesSequence = Sequence([series])
        return self._request("N-SET", ds, uid)


class Bench:
    """A fresh node against one Orthanc, and the study timings it gives."""

    def __init__(self, node: NodeProcess, pacs: Orthanc, mpps: bool, database_url: str) -> None:
        self.node = node
        self.pacs = pacs
        self.mpps = Mpps(node.port) if mpps else None
        self.sessions = make_sessionmaker(database_url, migrate=False)
        self.destination = Destination(ae_title="LNMNODE", host="127.0.0.1", port=node.port)

    def send(self, study: StudyFiles) -> tuple[float, float, float]:
        """Send a study (with its MPPS when on); returns (send start, send end, trigger)."""
        step = self.mpps.create(study) if self.mpps else None
        started = time.time()
        send_instances(self.destination, study.paths, SENDER, timeout=120)
        ended = time.time()
        trigger = self.mpps.complete(step, study) if self.mpps and step else ended
        return started, ended, trigger

    def wait_delivered(self, study_uid: str, timeout: float = 600) -> None:
        def delivered() -> bool:
            with self.sessions() as session:
                states = list(
                    session.scalars(
                        select(Job.state).join(Study).where(Study.study_instance_uid == study_uid)
                    )
                )
            return bool(states) and all(s == JobState.DELIVERED for s in states)

        wait_until(delivered, timeout=timeout, what=f"delivery of {study_uid}")

    def timing(self, scenario: str, study_uid: str, marks: tuple[float, float, float]) -> Timing:
        """The stages of the study's (first) job from the audit trail."""
        started, ended, trigger = marks
        with self.sessions() as session:
            study_id, job_id = session.execute(
                select(Study.id, Job.id).join(Job).where(Study.study_instance_uid == study_uid)
            ).first()  # type: ignore[misc]
            events = session.execute(
                select(AuditEvent.action, AuditEvent.at)
                .where(
                    (
                        (AuditEvent.entity == "study")
                        & (AuditEvent.entity_id == str(study_id))
                        & (AuditEvent.action == "assemble")
                    )
                    | ((AuditEvent.entity == "job") & (AuditEvent.entity_id == str(job_id)))
                )
                .order_by(AuditEvent.id)
            ).all()
        at = {action: _epoch(moment) for action, moment in events}
        stages = {
            "receive": ended - started,
            "assemble": at["assemble"] - trigger,
            "queue_wait": at["claim"] - at["assemble"],
            "infer": at["inferred"] - at["claim"],
            "encode": at["encoded"] - at["inferred"],
            "deliver": at["delivered"] - at["encoded"],
            "total": at["delivered"] - trigger,
        }
        return Timing(scenario, {k: round(v, 3) for k, v in stages.items()})

    def one(self, scenario: str, study: StudyFiles) -> Timing:
        marks = self.send(study)
        self.wait_delivered(study.study_uid)
        self.check_sr(study.study_uid)
        return self.timing(scenario, study.study_uid, marks)

    def burst(self, scenario: str, studies: list[StudyFiles], senders: int = 4) -> list[Timing]:
        """Send every study at once from ``senders`` threads; each study's own clock."""
        marks: dict[str, tuple[float, float, float]] = {}
        errors: list[BaseException] = []

        def run(share: list[StudyFiles]) -> None:
            try:
                for study in share:
                    marks[study.study_uid] = self.send(study)
            except BaseException as error:  # noqa: BLE001  (reported after the join)
                errors.append(error)

        threads = [
            threading.Thread(target=run, args=(studies[i::senders],)) for i in range(senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        for study in studies:
            self.wait_delivered(study.study_uid)
        return [self.timing(scenario, s.study_uid, marks[s.study_uid]) for s in studies]

    def check_sr(self, study_uid: str) -> None:
        """The SR is in Orthanc."""
        query = {"Level": "Series", "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.pacs.http_port}/tools/find",
            data=json.dumps(query).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            found = json.loads(reply.read())
        if not found:
            raise RuntimeError(f"no SR for {study_uid} in the PACS")


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch of a database time (SQLite gives them back naive, in UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@contextmanager
def embedded_node(home: Path, pacs: Orthanc, quiet: str) -> Iterator[tuple[NodeProcess, str]]:
    """`lnm-node serve` (SQLite, folder queue); yields the node and its database URL."""
    node = start_node(
        home,
        "--pacs",
        pacs.destination,
        "--quiet-seconds",
        quiet,
        scope_open=True,  # the gate off: ynet-busi's gate declines these synthetic images
    )
    try:
        yield node, f"sqlite:///{home / 'lnm.sqlite3'}"
    finally:
        node.stop()


@contextmanager
def production_node(home: Path, pacs: Orthanc, quiet: str) -> Iterator[tuple[NodeProcess, str]]:
    """The production profile on this host's servers: `lnm-node scp` (receives; assembles on
    MPPS and hands over to Redis), `lnm-node beat` (the quiet timer), `lnm-node worker`
    (prefork, warmed), a fresh PostgreSQL database and a Redis database index of its own."""
    redis_url = f"redis://127.0.0.1:6379/{REDIS_INDEX}"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    with postgres_database() as database_url:
        env = {
            "LNM_PROFILE": "production",
            "LNM_DATABASE_URL": database_url,
            "LNM_BROKER_URL": redis_url,
            "LNM_DESTINATIONS": pacs.destination,
            "LNM_QUIET_SECONDS": quiet,
        }
        node = start_node(home, env=env, command="scp", scope_open=True)
        helpers: list[subprocess.Popen[bytes]] = []
        try:
            with open(home / "node.log", "ab") as out:
                for command in ("worker", "beat"):
                    helpers.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "cli.main", command, "--home", str(home)],
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            env=node.env,
                        )
                    )
            wait_until(
                lambda: any((home / "run").glob("worker-*.ready")),
                timeout=600,
                what="a warm worker",
            )
            yield node, database_url
        finally:
            for process in helpers:
                process.send_signal(signal.SIGTERM)
            for process in helpers:
                process.wait(timeout=120)
            node.stop()
            client.flushdb()


def run_profile(
    folder: Path,
    pacs: Orthanc,
    mpps: bool,
    warm: int,
    burst: int,
    cine_frames: int,
    log: Callable[[str], None],
    production: bool = False,
) -> list[Timing]:
    """One fresh node: cold, warm, cine, burst."""
    quiet = "30" if mpps else "3"
    label = ("production, " if production else "") + (
        "MPPS, quiet 30 s" if mpps else "no MPPS, quiet 3 s"
    )
    name = ("production-" if production else "") + ("mpps" if mpps else "quiet")
    studies = folder / name
    files = [make_study(studies / "single", seed) for seed in range(1 + warm + burst)]
    cine = make_study(studies / "cine", 1000, frames=cine_frames)
    started = time.time()
    start = production_node if production else embedded_node
    with start(folder / f"node-{name}", pacs, quiet) as (node, database_url):
        log(f"[{label}] node accepts associations after {time.time() - started:.1f} s")
        return _scenarios(Bench(node, pacs, mpps, database_url), label, files, cine, warm, burst,
                          cine_frames, log)


def _scenarios(
    bench: Bench,
    label: str,
    files: list[StudyFiles],
    cine: StudyFiles,
    warm: int,
    burst: int,
    cine_frames: int,
    log: Callable[[str], None],
) -> list[Timing]:
    timings = [bench.one(f"{label}: cold single frame", files[0])]
    log(f"  cold: {timings[-1].stages}")
    for study in files[1 : 1 + warm]:
        timings.append(bench.one(f"{label}: warm single frame", study))
        log(f"  warm: {timings[-1].stages}")
    timings.append(bench.one(f"{label}: {cine_frames}-frame JPEG cine", cine))
    log(f"  cine: {timings[-1].stages}")
    if burst:
        timings += bench.burst(f"{label}: burst of {burst}", files[1 + warm :])
        log(f"  burst: max total {max(t.stages['total'] for t in timings[-burst:]):.2f} s")
    return timings


def summarise(timings: list[Timing]) -> list[dict[str, object]]:
    """Median (and max, for several) of each stage per scenario."""
    rows = []
    for scenario in dict.fromkeys(t.scenario for t in timings):
        group = [t.stages for t in timings if t.scenario == scenario]
        row: dict[str, object] = {"scenario": scenario, "n": len(group)}
        for stage in STAGES:
            values = [g[stage] for g in group]
            row[stage] = round(statistics.median(values), 2)
        row["total_max"] = round(max(g["total"] for g in group), 2)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    head = "| scenario | n | " + " | ".join(STAGES) + " | total max |"
    lines = [head, "|" + "---|" * (len(STAGES) + 3)]
    for row in rows:
        cells = [
            str(row["scenario"]),
            str(row["n"]),
            *(f"{row[s]:.2f}" for s in STAGES),
            f"{row['total_max']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", type=int, default=5, help="warm single-frame studies per node")
    parser.add_argument("--burst", type=int, default=20, help="studies sent at once (0: none)")
    parser.add_argument("--cine-frames", type=int, default=87)
    parser.add_argument("--only", choices=("mpps", "quiet"), help="run one of the two nodes")
    parser.add_argument("--json", type=Path, help="write every timing here")
    parser.add_argument(
        "--profile",
        choices=("embedded", "production", "both"),
        default="embedded",
        help="embedded: `serve`; production: scp + beat + worker on PostgreSQL and Redis",
    )
    args = parser.parse_args()
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="lnm-latency-") as tmp:
        folder = Path(tmp)
        pacs = start_orthanc(folder / "orthanc")
        try:
            profiles = {"embedded": [False], "production": [True], "both": [False, True]}
            for production, mpps in itertools.product(profiles[args.profile], (False, True)):
                if args.only and args.only != ("mpps" if mpps else "quiet"):
                    continue
                timings += run_profile(
                    folder,
                    pacs,
                    mpps,
                    args.warm,
                    args.burst,
                    args.cine_frames,
                    lambda line: print(line, flush=True),
                    production,
                )
        finally:
            pacs.stop()
    rows = summarise(timings)
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; seconds, medians\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "timings": [asdict(t) for t in timings]}, indent=2)
        )


if __name__ == "__main__":
    main()
