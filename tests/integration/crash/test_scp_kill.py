"""`kill -9` of the SCP process (`lnm-node scp`) during a burst of C-STOREs from 4 concurrent
senders, then a restart: every instance answered Success is on disk (its dataset re-read
equal to what was sent) and in the database, none twice; the senders resend the rest."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE

from dicom_node import statuses
from dicom_node.contexts import read_file_uids, scu_contexts
from dicom_node.scu import store_files
from kernel.settings import Destination
from phantom.us_dicom import write_us_study
from tests.support.network import wait_until
from tests.support.node import NodeProcess, start_node

pytestmark = pytest.mark.integration

SENDERS = 4
PER_SENDER = 75
#: answers received before the SCP is killed (of SENDERS * PER_SENDER)
KILL_AFTER = 60


class Sender(threading.Thread):
    """One modality: one association, C-STORE each file in turn, remember every answer."""

    def __init__(self, port: int, files: list[Path], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.port, self.files = port, files
        self.answers: dict[str, int] = {}
        self.lock = threading.Lock()

    def run(self) -> None:
        ae = AE(ae_title=self.name)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        pairs = [(uids[0], uids[2]) for uids in map(read_file_uids, self.files)]
        assoc = ae.associate(
            "127.0.0.1", self.port, contexts=scu_contexts(pairs), ae_title="LNMNODE"
        )
        if not assoc.is_established:
            return
        for path in self.files:
            dataset = dcmread(path)
            try:
                answer = assoc.send_c_store(dataset)
            except RuntimeError:  # the association is gone: the SCP died
                break
            if "Status" not in answer:
                break
            with self.lock:
                self.answers[str(dataset.SOPInstanceUID)] = int(answer.Status)
        if assoc.is_established:
            assoc.release()

    def count(self) -> int:
        with self.lock:
            return len(self.answers)


def _stored_files(node: NodeProcess) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in (node.home / "spool" / "incoming").glob("*/*/*.dcm"):
        found.setdefault(path.stem, []).append(path)
    return found


def _check_durable(node: NodeProcess, successes: set[str], originals: dict[str, Path]) -> None:
    rows = [row["sop_instance_uid"] for row in node.cli_json("instances")]  # type: ignore[union-attr]
    assert len(rows) == len(set(rows)), "an instance is recorded twice"
    assert successes <= set(rows), f"answered Success but not recorded: {successes - set(rows)}"
    files = _stored_files(node)
    assert all(len(paths) == 1 for paths in files.values()), "an instance is stored twice"
    assert set(rows) <= set(files), "a recorded instance has no file"
    for uid in rows:
        assert dcmread(files[uid][0]) == dcmread(originals[uid]), uid


def test_scp_kill9_during_burst_every_success_durable_once(tmp_path: Path) -> None:
    studies = [
        write_us_study(tmp_path / f"study{i}", seed=60 + i, count=PER_SENDER, rows=48, cols=64)
        for i in range(SENDERS)
    ]
    originals = {read_file_uids(p)[1]: p for files in studies for p in files}
    home = tmp_path / "node"
    node = start_node(home, command="scp")
    senders = [Sender(node.port, files, f"US{i}") for i, files in enumerate(studies)]
    for sender in senders:
        sender.start()
    try:
        wait_until(
            lambda: sum(s.count() for s in senders) >= KILL_AFTER,
            timeout=120,
            interval=0.01,
            what=f"{KILL_AFTER} answered C-STOREs",
        )
    finally:
        os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=30)
    for sender in senders:
        sender.join(timeout=60)
        assert not sender.is_alive()

    answers = {uid: status for s in senders for uid, status in s.answers.items()}
    successes = {uid for uid, status in answers.items() if status == statuses.SUCCESS}
    assert len(successes) >= KILL_AFTER * 0.9
    assert len(answers) < len(originals), "the kill came after the burst, not during it"

    node = start_node(home, command="scp")
    try:
        _check_durable(node, successes, originals)
        # the senders resend everything: already stored ones answer Success again, no duplicates
        destination = Destination(ae_title="LNMNODE", host="127.0.0.1", port=node.port)
        for files in studies:
            results = store_files(destination, files, "US0")
            assert {r.status for r in results} == {statuses.SUCCESS}
        _check_durable(node, set(originals), originals)
    finally:
        assert node.stop() == 0, node.log()[-3000:]
