"""`lnm-node serve` opens its DICOM port only after every worker warmed its live models."""

from __future__ import annotations

from pathlib import Path

from phantom.us_dicom import write_us_study
from tests.support.models import package_model
from tests.support.network import wait_until
from tests.support.node import NodeProcess, start_node
from tests.support.storescu import run_storescu


def _tiny_model_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A node's environment on a tiny packaged model and one worker process."""
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    return {
        "LNM_MODELS_DIR": str(tmp_path / "models"),
        "LNM_DEFAULT_MODEL": "tiny-ynet",
        "LNM_WORKER_CONCURRENCY": "1",
        **extra,
    }


def test_serve_accepts_associations_only_after_its_workers_warmed_their_models(
    tmp_path: Path,
) -> None:
    node = start_node(tmp_path / "node", env=_tiny_model_env(tmp_path))  # returns once the port answers
    try:
        # the SCP logs "node serving" just after its port opens: the port can answer first
        wait_until(lambda: "node serving" in node.log(), timeout=30, what="the serving log line")
        log = node.log()
        warmed = [i for i, line in enumerate(log.splitlines()) if "model warmed" in line]
        ready = [i for i, line in enumerate(log.splitlines()) if "worker ready" in line]
        serving = next(i for i, line in enumerate(log.splitlines()) if "node serving" in line)
        assert len(warmed) == 1 and len(ready) == 1
        assert all("tiny-ynet@0.1.0" in log.splitlines()[i] for i in warmed)
        assert max(warmed) < max(ready) < serving
        markers = sorted((tmp_path / "node" / "run").glob("worker-*.ready"))
        assert len(markers) == 1
        assert all(m.read_text().split() == ["tiny-ynet@0.1.0"] for m in markers)
    finally:
        assert node.stop() == 0
    assert not list((tmp_path / "node" / "run").glob("worker-*.ready"))


def test_a_batching_node_runs_jobs_in_worker_threads_and_batches_their_passes(
    tmp_path: Path,
) -> None:
    env = _tiny_model_env(tmp_path, LNM_BATCH_WAIT_MS="1000", LNM_BATCH_MAX="3")
    studies = [p for seed in range(3)
               for p in write_us_study(tmp_path / f"study{seed}", seed=70 + seed, count=1)]
    node = start_node(tmp_path / "node", "--quiet-seconds", "1", env=env, scope_open=True)
    try:
        outcomes = run_storescu(node.port, studies)  # one association, three studies
        assert set(outcomes.values()) == {"Success"}, outcomes
        wait_until(lambda: len(_delivered(node)) == 3, timeout=240, what="three delivered jobs")
        assert "forward pass of a batch of" in node.log()
    finally:
        assert node.stop() == 0


def _delivered(node: NodeProcess) -> list[dict]:
    status = node.cli_json("status")
    return [job for job in status["jobs"] if job["state"] == "DELIVERED"]  # type: ignore[index]
