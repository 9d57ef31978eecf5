"""The hostile-input corpus through a real association: every input gets a status (never
0xC211, never a hang), every refusal is quarantined with its reason, the node keeps answering
C-ECHO, and the instances stored before stay intact."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from db.views import instance_rows
from dicom_node import statuses
from dicom_node.scu import echo, send_instances
from inference.frames import read_frame
from kernel.errors import InvalidInput
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.corpus import CorpusCase, build_corpus, write_corpus
from tests.support.raw_store import send_raw

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pydicom warns about every bad input
]

#: small enough that the corpus's deflate bombs (64 and 256 MiB inflated) are refused
MAX_INSTANCE_BYTES = 32 * 1024**2
GOOD = ("explicit_le", "jpeg_baseline_colour", "cine_explicit_le", "rle")


@pytest.fixture(scope="module")
def corpus() -> list[CorpusCase]:
    return build_corpus()


def _stored(node: Node) -> dict[Path, str]:
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in node.spool.root.glob("incoming/*/*/*.dcm")
    }


def _violations(cases: list[CorpusCase], answers: list[int | None]) -> list[str]:
    problems = []
    for case, status in zip(cases, answers, strict=True):
        if status is None:
            problems.append(f"{case.name}: no answer")
        elif status == statuses.HANDLER_RAISED:
            problems.append(f"{case.name}: 0xC211, the handler raised")
        elif case.refused and not statuses.is_failure(status):
            problems.append(f"{case.name}: must be refused, answered 0x{status:04X}")
    return problems


def _run_corpus(
    make_node: Callable[..., Node],
    phantom_files: dict[str, Path],
    cases: list[CorpusCase],
    folder: Path,
    chunked: bool,
) -> None:
    node = make_node(chunked=chunked, max_instance_bytes=MAX_INSTANCE_BYTES)
    good = [phantom_files[name] for name in GOOD]
    assert set(send_instances(node.destination, good, CALLING_AE).values()) == {statuses.SUCCESS}
    before = _stored(node)

    answers = send_raw(node.destination, write_corpus(folder, cases), CALLING_AE)

    assert _violations(cases, answers) == []
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS
    after = _stored(node)
    assert {path: after.get(path) for path in before} == before  # the good ones, byte for byte
    with node.sessions() as session:
        rows = {row["sop_instance_uid"] for row in instance_rows(session)}
    assert {path.stem for path in after} == rows  # every file has its row and vice versa
    for path in set(after) - set(before):  # corpus inputs accepted: their first frame decodes
        try:
            read_frame(path, 0)
        except InvalidInput as exc:
            pytest.fail(f"accepted {path.name} but its first frame does not decode: {exc}")
    records = node.spool.quarantined(limit=100_000)
    refused = [f"0x{status:04X}" for status in answers if status and statuses.is_failure(status)]
    assert sorted(record["status"] for record in records) == sorted(refused)
    assert all(str(record["reason"]).strip() for record in records)
    assert not any("SYN" in str(record) or "PHANTOM" in str(record) for record in records)


def test_scp_hostile_corpus_chunked_answered_quarantined_node_intact(
    make_node: Callable[..., Node],
    phantom_files: dict[str, Path],
    corpus: list[CorpusCase],
    tmp_path: Path,
) -> None:
    assert len(corpus) >= 200
    assert sum(case.refused for case in corpus) >= 200
    _run_corpus(make_node, phantom_files, corpus, tmp_path / "corpus", chunked=True)


def test_scp_hostile_corpus_in_memory_answered_quarantined_node_intact(
    make_node: Callable[..., Node],
    phantom_files: dict[str, Path],
    corpus: list[CorpusCase],
    tmp_path: Path,
) -> None:
    every_third = corpus[::3]
    _run_corpus(make_node, phantom_files, every_third, tmp_path / "corpus", chunked=False)


def test_scp_pixel_samples_beyond_limit_refused_c210_before_decoding(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    node = make_node(max_pixel_samples=96 * 128 - 1)  # the phantom files are 96 x 128
    answers = send_raw(node.destination, [phantom_files["explicit_le"]], CALLING_AE)
    assert answers == [statuses.CANNOT_UNDERSTAND]
    [record] = node.spool.quarantined()
    assert "max_pixel_samples" in str(record["reason"])
    assert list(node.spool.root.glob("incoming/*/*/*.dcm")) == []
