"""`lnm-node serve` opens its DICOM port only after every worker warmed its live models."""

from __future__ import annotations

from pathlib import Path

from tests.support.models import package_model
from tests.support.node import start_node


def test_serve_accepts_associations_only_after_its_workers_warmed_their_models(
    tmp_path: Path,
) -> None:
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    env = {
        "LNM_MODELS_DIR": str(tmp_path / "models"),
        "LNM_DEFAULT_MODEL": "tiny-ynet",
        "LNM_WORKER_CONCURRENCY": "1",
    }
    node = start_node(tmp_path / "node", env=env)  # returns once the port answers
    try:
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
