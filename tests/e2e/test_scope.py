"""Scope through the node process: the default model's rule keeps non-breast studies away from
it (no job, no SR, the reason in `status --json`, the rule in the audit), and its gate alone
declines non-breast real files once the rule is opened (SKIPPED, a "not run" SR delivered)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from phantom.us_dicom import write_us_study
from phantom.wrap import wrap_image
from tests.support.network import wait_until
from tests.support.node import NodeProcess, start_node
from tests.support.orthanc import start_orthanc
from tests.support.paths import shared_data
from tests.support.storescu import run_storescu, shared_us_files

pytestmark = [pytest.mark.e2e, pytest.mark.shared_data]

SR_3D = "1.2.840.10008.5.1.4.1.1.88.34"
BREAST_IMAGES = ("benign/benign (1).png", "malignant/malignant (1).png")
"""busi-dev hold-out images (holdout.json's groups) the gate accepts."""


@pytest.fixture
def pacs(tmp_path: Path):  # type: ignore[no-untyped-def]
    orthanc = start_orthanc(tmp_path / "orthanc")
    yield orthanc
    orthanc.stop()


def _send(node: NodeProcess, files: list[Path]) -> set[str]:
    outcomes = run_storescu(node.port, files, calling_ae="US_MODALITY")
    assert all(o.startswith("Success") for o in outcomes.values()), outcomes
    return {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in files}


def _status(node: NodeProcess) -> dict:  # type: ignore[type-arg]
    return node.cli_json("status")  # type: ignore[return-value]


def _audit(node: NodeProcess, out: Path) -> list[dict]:  # type: ignore[type-arg]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "audit",
            "export",
            "--out",
            str(out),
            "--home",
            str(node.home),
        ],
        env=node.env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def _assembled(node: NodeProcess, studies: set[str]) -> bool:
    rows = {row["study_instance_uid"]: row for row in _status(node)["studies"]}
    return all(uid in rows and rows[uid]["state"] == "READY" for uid in studies)


def test_rule_breast_studies_get_results_gynaecological_and_real_non_breast_get_no_job(
    tmp_path: Path,
    pacs,  # type: ignore[no-untyped-def]
) -> None:
    busi = shared_data("busi-dev")
    real = shared_us_files()
    breast = [
        wrap_image(busi / "images" / name, tmp_path / "breast", "BREAST", f"b{i}")
        for i, name in enumerate(BREAST_IMAGES)
    ]
    gyn = write_us_study(tmp_path / "gyn", seed=31, count=1, body_part="PELVIS")
    for path in gyn:
        ds = pydicom.dcmread(path)
        ds.StudyDescription = "US PELVIS GYNAECOLOGY TRANSVAGINAL"
        ds.save_as(path)
    node = start_node(tmp_path / "node", "--pacs", pacs.destination, "--quiet-seconds", "1")
    try:
        breast_studies = _send(node, breast)
        other_studies = _send(node, gyn + real)

        def finished() -> bool:
            counts = _status(node)["counts"]["jobs"]
            return _assembled(node, breast_studies | other_studies) and counts.get(
                "DELIVERED", 0
            ) == len(breast_studies)

        wait_until(
            finished, timeout=300, interval=1, what="breast jobs delivered, others assembled"
        )
        status = _status(node)
        audit = _audit(node, tmp_path / "audit.jsonl")
    finally:
        assert node.stop() == 0, node.log()[-4000:]

    by_study: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for job in status["jobs"]:
        by_study.setdefault(job["study_instance_uid"], []).append(job)
    assert set(by_study) == breast_studies  # no job, no probability, for any other study
    assert all(
        job["state"] == "DELIVERED" and job["probability"] is not None
        for jobs in by_study.values()
        for job in jobs
    )
    scope = {row["study_instance_uid"]: row["scope"] for row in status["studies"]}
    for uid in other_studies:
        (verdict,) = scope[uid]
        assert verdict["model"].startswith("ynet-busi@") and verdict["run"] is False
        assert verdict["source"] == "spec" and "BREAST" in verdict["rule"]
        assert "no series matches" in verdict["reason"]
    (gyn_study,) = _study_uids(gyn)
    assert "PELVIS" in scope[gyn_study][0]["reason"]
    refused = [e for e in audit if e["action"] == "out_of_scope"]
    assert {e["entity_id"] for e in refused} and all(
        "BREAST" in e["details"]["rule"] for e in refused
    )
    # one row per study and assembled generation (a late instance re-assembles its study)
    assert len({e["entity_id"] for e in refused}) == len(other_studies)
    srs = [
        i
        for i in pacs.instance_ids()
        if pacs.get_json(f"/instances/{i}/tags?simplify")["SOPClassUID"] == SR_3D
    ]
    assert len(srs) == len(breast_studies)


def _study_uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in files}


def _relabelled_as_breast(files: list[Path], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.BodyPartExamined = "BREAST"
        ds.StudyDescription = "US BREAST"
        target = out / f"{index}.dcm"
        ds.save_as(target)
        written.append(target)
    return written


def test_gate_rule_opened_real_non_breast_files_skipped_with_not_run_sr_delivered(
    tmp_path: Path,
    pacs,  # type: ignore[no-untyped-def]
) -> None:
    shared_data("us-dicom")
    with (shared_data("us-dicom") / "manifest.csv").open(newline="") as handle:
        decodable = [row["file"] for row in csv.DictReader(handle) if row["decode"] == "ok"]
    files = _relabelled_as_breast(
        [shared_data("us-dicom", name) for name in decodable], tmp_path / "relabelled"
    )
    home = tmp_path / "node"
    home.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "scope",
            "set",
            "ynet-busi",
            "--rule",
            "all",
            "--home",
            str(home),
            "--actor",
            "test",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    node = start_node(home, "--pacs", pacs.destination, "--quiet-seconds", "1")
    try:
        studies = _send(node, files)

        def skipped() -> bool:
            counts = _status(node)["counts"]["jobs"]
            assert not any(k.startswith("FAILED") or k == "DELIVERED" for k in counts), counts
            return counts.get("SKIPPED", 0) == len(studies)

        wait_until(skipped, timeout=300, interval=1, what="every study's job SKIPPED")
        status = _status(node)
    finally:
        assert node.stop() == 0, node.log()[-4000:]

    jobs = status["jobs"]
    assert {job["study_instance_uid"] for job in jobs} == studies
    for job in jobs:
        assert "input outside the model's training domain" in job["reason"], job
        assert job["probability"] is None
        assert [d["state"] for d in job["deliveries"]] == ["SENT"]
    srs = []
    for instance in pacs.instance_ids():
        ds = pydicom.dcmread(io.BytesIO(pacs.get_bytes(f"/instances/{instance}/file")))
        if ds.SOPClassUID == SR_3D:
            srs.append(ds)
    assert {str(ds.StudyInstanceUID) for ds in srs} == studies
    for ds in srs:
        text = " ".join(
            str(e.value) for e in ds.iterall() if e.keyword in ("TextValue", "CodeMeaning")
        )
        assert "was not run" in text and "training domain" in text and "ynet-busi" in text
        assert "threshold" in text
