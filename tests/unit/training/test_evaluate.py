"""Tests of training.evaluate: metrics.json with every key, the figures, subsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference.networks.ynet import YNet
from training.evaluate import evaluate

REQUIRED = (
    "n",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "lr_pos",
    "lr_neg",
    "f1",
    "kappa",
    "threshold",
    "dice_mean",
    "dice_median",
    "brier",
    "ece",
    "calibration",
    "decision_curve",
)
FIGURES = ("roc.png", "calibration.png", "decision_curve.png", "cases.png")


def _network() -> YNet:
    torch.manual_seed(0)
    return YNet()


def test_evaluate_tiny_folder_writes_metrics_and_figures(
    image_folder: Path, tmp_path: Path
) -> None:
    metrics = evaluate(_network(), image_folder, tmp_path / "eval", size=64, sheet_cases=4)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in REQUIRED:
        assert key in written, key
    assert written == json.loads(json.dumps(metrics))
    assert written["n"] == 12 and written["threshold"] == 0.5 and written["dice_n"] == 12
    for name in FIGURES:
        assert (tmp_path / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert len((tmp_path / "eval" / "cases.csv").read_text().splitlines()) == 13


def test_evaluate_image_without_a_mask_file_has_no_dice(image_folder: Path, tmp_path: Path) -> None:
    """A lesion image whose labels.csv row names no mask was scored Dice 0 against an empty
    reference; it has no reference, so no Dice (an empty mask file still means "no lesion")."""
    import csv
    import shutil

    image_folder = Path(shutil.copytree(image_folder, tmp_path / "images"))  # the fixture is shared
    labels = image_folder / "labels.csv"
    rows = list(csv.reader(labels.open()))
    rows[1][1] = ""  # case00: no mask
    with labels.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    metrics = evaluate(_network(), image_folder, tmp_path / "eval", size=64)
    cases = list(csv.DictReader((tmp_path / "eval" / "cases.csv").open()))
    unmasked = next(c for c in cases if c["image"].endswith("case00.png"))
    assert unmasked["dice"] == "nan" and unmasked["reference_empty"] == ""
    assert metrics["n"] == 12 and metrics["dice_n"] == 11


def test_evaluate_subset_groups_only_those_rows(image_folder: Path, tmp_path: Path) -> None:
    metrics = evaluate(
        _network(),
        image_folder,
        tmp_path / "eval",
        subset_groups={"g0", "g1"},
        threshold=0.3,
        size=64,
    )
    assert metrics["n"] == 4 and metrics["subset"] == "groups" and metrics["threshold"] == 0.3


def test_evaluate_one_class_subset_auc_none_no_crash(image_folder: Path, tmp_path: Path) -> None:
    metrics = evaluate(_network(), image_folder, tmp_path / "eval", subset_groups={"g8"}, size=64)
    assert metrics["n"] == 1 and metrics["auc"] is None and metrics["auc_ci_low"] is None
    assert (tmp_path / "eval" / "roc.png").is_file()


def test_evaluate_spec_with_calibration_reports_calibrated_probability(
    image_folder: Path, tmp_path: Path
) -> None:
    """The same weights with and without temperature scaling: evaluate's probability is the
    spec's calibration of the network's, which cases.csv keeps beside it; ECE is reported."""
    import csv

    import numpy as np

    from inference.calibration import calibrate
    from tests.support.models import package_model

    calibration = {"method": "temperature", "temperature": 3.0, "fitted_on": "test"}
    plain = package_model(tmp_path / "plain", seed=0)
    calibrated = package_model(tmp_path / "cal", seed=0, calibration=calibration)
    rows = {}
    for name, spec in (("plain", plain), ("cal", calibrated)):
        metrics = evaluate(spec, image_folder, tmp_path / f"eval-{name}", sheet_cases=2)
        assert metrics["ece"] is not None and metrics["ece_bins"] == 10
        assert metrics["calibration_method"] == ("none" if name == "plain" else "temperature")
        with (tmp_path / f"eval-{name}" / "cases.csv").open() as handle:
            rows[name] = list(csv.DictReader(handle))
    network = np.array([float(r["network_probability"]) for r in rows["cal"]])
    reported = np.array([float(r["probability"]) for r in rows["cal"]])
    assert np.allclose(network, [float(r["probability"]) for r in rows["plain"]], atol=1e-6)
    assert np.allclose(reported, calibrate(calibrated.calibration, network), atol=1e-6)
    assert not np.allclose(reported, network, atol=1e-3)


def test_evaluate_with_tta_gives_run_models_probability(tmp_path: Path) -> None:
    """The same pixels as a PNG (evaluate) and a DICOM without regions (run_model, the whole
    frame): hflip TTA changes the probability, and both paths change it alike."""
    import csv

    import pydicom
    from PIL import Image

    from inference.loading import load_network
    from inference.runner import run_model
    from inference.tta import spec_with_tta
    from phantom.us_dicom import write_us_study
    from tests.support.models import package_model

    spec = spec_with_tta(package_model(tmp_path / "model", seed=4), ["hflip"])
    network = load_network(spec, "cpu")
    folder = tmp_path / "folder"
    (folder / "images").mkdir(parents=True)
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "malignant", "group"])
        node = []
        for seed in (5, 6):
            path = write_us_study(tmp_path / f"s{seed}", seed=seed, rows=96, cols=128,
                                  mm_per_pixel=None)[0]  # fmt: skip
            Image.fromarray(pydicom.dcmread(path).pixel_array).save(
                folder / "images" / f"{seed}.png"
            )
            writer.writerow([f"images/{seed}.png", seed % 2, f"g{seed}"])
            prediction = run_model(spec, network, [path], "cpu")
            assert "test-time augmentation averaged in: hflip" in prediction.notes
            node.append(prediction.probability)

    with_tta = evaluate(spec, folder, tmp_path / "tta", sheet_cases=2)
    without = evaluate(spec_with_tta(spec, []), folder, tmp_path / "plain", sheet_cases=2)

    with (tmp_path / "tta" / "cases.csv").open() as handle:
        evaluated = [float(row["probability"]) for row in csv.DictReader(handle)]
    with (tmp_path / "plain" / "cases.csv").open() as handle:
        plain = [float(row["probability"]) for row in csv.DictReader(handle)]
    assert evaluated == pytest.approx(node, abs=2e-6)
    assert plain != pytest.approx(evaluated, abs=1e-4)
    assert with_tta["tta"] == ["hflip"] and without["tta"] == []
