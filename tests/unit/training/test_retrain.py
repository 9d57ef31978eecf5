"""training.retrain.fold_operating_point: a fold's calibration and threshold for packaging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.retrain import fold_operating_point


def test_fold_without_validation_file_keeps_its_youden_threshold_uncalibrated(tmp_path: Path):
    (tmp_path / "train.json").write_text(json.dumps({"threshold": 0.42}))
    threshold, calibration, point = fold_operating_point(tmp_path, 1, "none", "youden")
    assert threshold == 0.42 and calibration is None and point.policy == "youden"
    assert "fold 1" in point.chosen_on
    with pytest.raises(ValueError, match="validation.npz"):
        fold_operating_point(tmp_path, 1, "temperature", "youden")
    with pytest.raises(ValueError, match="validation.npz"):
        fold_operating_point(tmp_path, 1, "none", "sensitivity=0.90")


def test_fold_with_validation_file_calibrates_and_chooses_on_it(tmp_path: Path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0.001, 0.999).astype(np.float32)
    np.savez(tmp_path / "validation.npz", probability=p, malignant=y, index=np.arange(40))
    threshold, calibration, point = fold_operating_point(tmp_path, 0, "isotonic", "specificity=0.9")
    assert calibration is not None and calibration.method.value == "isotonic"
    assert point.figures["n"] == 40 and point.figures["specificity"] >= 0.9
    assert "40 cases" in point.chosen_on and 0.0 < threshold < 1.0
