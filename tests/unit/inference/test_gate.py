"""The out-of-domain gate: fitted on a model's own kind of image, it declines others, the same
way in the node's runner and in ``evaluate``."""

from __future__ import annotations

import csv
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from inference.gate import GateReference, OutOfDomain, load_reference
from inference.loading import load_network
from inference.registry import ModelSpec, RegistryError
from inference.runner import run_model
from phantom.us_dicom import bmode_image
from phantom.wrap import wrap_image
from training.evaluate import evaluate
from training.gate_fit import gate_features, grey_inputs, measure_gate, write_gate


def test_reference_scores_are_mahalanobis_distances() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 3)) * np.array([1.0, 2.0, 4.0])
    reference = GateReference.fit(features)
    scores = reference.scores(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 8.0], [3.0, 0.0, 0.0]]))
    assert scores[0] < 0.2
    assert scores[1] == pytest.approx(2.0, rel=0.15)  # 8 along the axis whose SD is 4
    assert scores[2] == pytest.approx(3.0, rel=0.15)


def _phantom(seed: int) -> np.ndarray:
    return bmode_image(96, 96, seed, malignant=seed % 2 == 1)[0].astype(np.float32) / 255.0


def _checkerboard() -> np.ndarray:
    return (np.indices((96, 96)).sum(axis=0) // 8 % 2).astype(np.float32)


@pytest.fixture
def gated(tiny_spec: ModelSpec, tmp_path: Path) -> ModelSpec:
    """A copy of tiny-ynet whose gate accepts its phantom features and declines a checkerboard.

    Random weights separate little, so the reference is built by hand around the phantoms'
    features (mean, per-feature variance) with the threshold midway to the checkerboard's
    score: the test is of the gate's mechanics, the same in runner and evaluate.
    """
    folder = tmp_path / "gated"
    shutil.copytree(tiny_spec.folder, folder)
    spec = ModelSpec.load(folder)
    network = load_network(spec, "cpu")
    layers = [spec.outputs.heatmap.layer]
    inside = gate_features(network, layers, (grey_inputs(spec, _phantom(s)) for s in range(6)))
    outside = gate_features(network, layers, [grey_inputs(spec, _checkerboard())])
    variance = inside.var(axis=0) + 1e-6
    reference = GateReference(mean=inside.mean(axis=0), precision=np.diag(1.0 / variance))
    high_inside, low_outside = reference.scores(inside).max(), reference.scores(outside).min()
    assert low_outside > 1.2 * high_inside  # the checkerboard lies beyond every phantom
    return write_gate(
        spec, layers, reference, float(np.sqrt(high_inside * low_outside)), "hand", {}
    )


def test_written_gate_is_validated_and_its_reference_checked(gated: ModelSpec) -> None:
    assert gated.scope.gate is not None and gated.gate_path is not None
    assert load_reference(gated) is not None
    gated.gate_path.write_bytes(b"changed")
    with pytest.raises(RegistryError, match="differs"):
        load_reference(gated)


def test_runner_declines_an_image_unlike_training_and_runs_a_like_one(
    gated: ModelSpec, tmp_path: Path
) -> None:
    network = load_network(gated, "cpu")
    reference = load_reference(gated)
    Image.fromarray((_phantom(1) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    Image.fromarray((_checkerboard() * 255).astype(np.uint8)).save(tmp_path / "out.png")
    inside = wrap_image(tmp_path / "in.png", tmp_path / "dicom", "NECK", "in")
    outside = wrap_image(tmp_path / "out.png", tmp_path / "dicom", "NECK", "out")
    prediction = run_model(gated, network, [inside], "cpu", gate=reference)
    assert any(note.startswith("in-domain check: score") for note in prediction.notes)
    with pytest.raises(OutOfDomain) as declined:
        run_model(gated, network, [outside], "cpu", gate=reference)
    assert declined.value.score > declined.value.threshold == gated.scope.gate.threshold  # type: ignore[union-attr]
    assert "input outside the model's training domain" in str(declined.value)
    assert run_model(gated, network, [outside], "cpu", gate=None).probability >= 0.0


def test_evaluate_declines_the_images_the_node_declines(gated: ModelSpec, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    images = {f"p{s}.png": _phantom(s) for s in range(4)} | {"check.png": _checkerboard()}
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "malignant"])
        for index, (name, image) in enumerate(images.items()):
            Image.fromarray((image * 255).astype(np.uint8)).save(folder / name)
            writer.writerow([name, index % 2])
    gated_metrics = evaluate(gated, folder, tmp_path / "out", sheet_cases=0)
    open_metrics = evaluate(gated, folder, tmp_path / "open", sheet_cases=0, gate=False)
    assert gated_metrics["n_declined_out_of_domain"] == 1 and gated_metrics["n"] == 4
    assert open_metrics["n_declined_out_of_domain"] == 0 and open_metrics["n"] == 5


def test_measure_gate_reports_false_declines_and_auroc() -> None:
    rng = np.random.default_rng(1)
    reference = GateReference.fit(rng.normal(size=(300, 2)))
    holdout = rng.normal(size=(100, 2))
    far = rng.normal(size=(50, 2)) + 6.0
    figures = measure_gate(reference, 2.5, holdout, {"far": far})
    assert figures["far_auroc"] > 0.99 and figures["far_declined"] > 0.95
    assert 0.0 <= figures["false_decline_rate"] < 0.1


def _read_like_a_worker(folder: str, stop: str, results: Any) -> None:
    """What every job does: load the spec, then the gate reference it names; says "ready" after
    the first read, then reads until ``stop`` exists and puts (reads, failures, distinct
    references seen)."""
    reads, failures, seen = 0, [], set()
    while not Path(stop).exists():
        try:
            spec = ModelSpec.load(Path(folder))
            load_reference(spec)
            seen.add(spec.scope.gate.reference_sha256 if spec.scope.gate else None)
            reads += 1
        except Exception as error:  # noqa: BLE001 - what a job would have failed with
            failures.append(f"{type(error).__name__}: {error}"[:200])
        if reads == 1 and not failures:
            results.put("ready")
    results.put((reads, failures[:3] + [f"{len(failures)} in all"] if failures else [], len(seen)))


def test_refitting_the_gate_of_a_live_model_never_shows_a_worker_half_of_it(
    gated: ModelSpec, tmp_path: Path
) -> None:
    """`scope fit-gate` on a running node: a worker process loading the spec and its reference
    throughout twenty refits sees one consistent pair every time."""
    spawn = multiprocessing.get_context("spawn")
    results, stop = spawn.Queue(), tmp_path / "stop"
    reader = spawn.Process(target=_read_like_a_worker, args=(str(gated.folder), str(stop), results))
    reader.start()
    gate = gated.scope.gate
    assert gate is not None
    rng = np.random.default_rng(0)
    dimension = len(np.asarray(GateReference.load(gated.gate_path).mean))
    assert results.get(timeout=120) == "ready"
    for _ in range(20):
        reference = GateReference(
            mean=rng.normal(size=dimension), precision=np.eye(dimension) * rng.uniform(1, 2)
        )
        write_gate(
            ModelSpec.load(gated.folder), gate.layers, reference, gate.threshold, "refit", {}
        )
        time.sleep(0.05)
    stop.touch()
    reads, failures, distinct = results.get(timeout=60)
    reader.join(timeout=30)

    assert failures == []
    assert reads > 20 and distinct > 2  # it read throughout, across several refits
    assert len(list(gated.folder.glob("gate*.npz"))) == 2  # the current and the one before
