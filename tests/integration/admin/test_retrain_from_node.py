"""A site retrains the dual and video families from the studies its node received: C-STORE,
labels import, dataset build --from-node, train --package, models shadow and promote; the next
study runs on the new versions and their SRs name them."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from cli.phantom import write_pathology_csv
from db.models import Job, Study
from db.session import make_sessionmaker
from kernel.settings import load_settings
from phantom.node import is_ambiguous
from phantom.study import write_phantom_study
from tests.support.network import free_port, wait_until
from tests.support.node import start_node
from tests.support.storescu import run_storescu

pytestmark = pytest.mark.integration
runner = CliRunner()
KEYS = ("dual-crossattn-phantom", "video-tin-phantom")
NEW_VERSION = "9.0.0"


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _send(port: int, folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.dcm"))
    outcomes = run_storescu(port, files, calling_ae="US_MODALITY")
    assert all(o.startswith("Success") for o in outcomes.values()), outcomes
    return files


def _write_studies(folder: Path, seeds: range, labels: Path | None = None) -> None:
    """Small phantom studies (B-mode, Doppler, cine, CEUS; half ambiguous in B-mode) and, when
    ``labels`` is given, their pathology in the `labels import` format (as `lnm-node phantom
    --pathology-csv` writes it)."""
    rows = []
    for seed in seeds:
        _, truth = write_phantom_study(folder / f"study-{seed}", seed, malignant=seed % 2 == 1,
                                       rows=128, cols=160, cine_frames=8, ceus_frames=6,
                                       ambiguous=is_ambiguous(seed, 0.5))  # fmt: skip
        rows.append({"study_instance_uid": truth.study_instance_uid, "malignant": truth.malignant})
    if labels is not None:
        write_pathology_csv(labels, rows)


def _strings(dataset: pydicom.Dataset) -> set[str]:
    found: set[str] = set()
    dataset.walk(lambda _ds, element: found.add(element.value) if isinstance(element.value, str)
                 else None)  # fmt: skip
    return found


def test_dual_and_video_retrained_from_node_studies_promoted_next_study_names_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    env = {"LNM_DEFAULT_MODEL": "none-yet"}  # no live model: the node only stores until promoted
    monkeypatch.setenv("LNM_DEFAULT_MODEL", "none-yet")
    node = start_node(home, "--pacs", f"PACS@127.0.0.1:{free_port()}", "--quiet-seconds", "1",
                      env=env)  # fmt: skip
    sessions = make_sessionmaker(load_settings(home=home).database_url)
    try:
        labels = tmp_path / "pathology.csv"
        _write_studies(tmp_path / "site", range(300, 308), labels)
        sent = _send(node.port, tmp_path / "site")

        def all_received() -> bool:
            return len(node.cli_json("instances")) == len(sent)  # type: ignore[arg-type]

        wait_until(all_received, timeout=60, interval=0.5, what="every instance in the database")
        assert "8 labels imported: 8 matched" in _cli("labels", "import", str(labels),
                                                      "--home", str(home))  # fmt: skip
        for key in KEYS:
            dataset, run = tmp_path / f"ds-{key}", tmp_path / f"run-{key}"
            built = _cli("dataset", "build", "--from-node", "--model", key, "--out", str(dataset),
                         "--folds", "2", "--home", str(home))  # fmt: skip
            assert "8 kept" in " ".join(built.split())
            manifest = json.loads((dataset / "manifest.json").read_text())
            assert {r["fold"] for r in manifest["rows"]} == {0, 1}
            trained = _cli("train", key, str(dataset), "--out", str(run), "--epochs", "1",
                           "--batch-size", "4", "--package", NEW_VERSION, "--home", str(home))  # fmt: skip
            assert f"packaged {key}@{NEW_VERSION}" in trained
            assert (home / "models" / f"{key}-{NEW_VERSION}" / "spec.json").is_file()
            _cli("models", "shadow", f"{key}@{NEW_VERSION}", "--home", str(home))
            _cli("models", "promote", f"{key}@{NEW_VERSION}", "--home", str(home))

        _write_studies(tmp_path / "next", range(400, 401))
        (first,) = _send(node.port, tmp_path / "next")[:1]
        study_uid = str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)

        jobs: list[Job] = []

        def new_jobs_encoded() -> bool:
            with sessions() as session:
                found = list(session.scalars(select(Job).join(Study).where(
                    Study.study_instance_uid == study_uid)))  # fmt: skip
            failed = [j for j in found if j.state.startswith("FAILED")]
            assert not failed, [(j.model_key, j.model_version, j.state, j.reason) for j in failed]
            jobs[:] = [j for j in found if (j.outputs or {}).get("files", {}).get("sr")]
            return len(jobs) == len(KEYS)

        wait_until(new_jobs_encoded, timeout=90, interval=0.5, what="the next study's SRs")
    finally:
        assert node.stop() == 0, node.log()[-4000:]
    assert {(j.model_key, j.model_version, j.shadow) for j in jobs} == {
        (key, NEW_VERSION, False) for key in KEYS
    }
    for job in jobs:
        strings = _strings(pydicom.dcmread(job.outputs["files"]["sr"]))
        assert NEW_VERSION in strings and any(job.model_key in s for s in strings)
