"""The GPU k-fold entry point's verbs, run in process on CPU on a tiny pack (its dry run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.gpu_kfold import main
from training.kfold import PREDICTIONS_FILE
from training.pack import load_arrays, pack_image_folder
from training.retrain import ENCODER_FILE


def test_gpu_kfold_pretrain_then_pretrained_fold_writes_predictions(
    image_folder: Path, tmp_path: Path
) -> None:
    pack = pack_image_folder(image_folder, tmp_path / "tiny.npz", 64)
    common = ["--busi", str(pack), "--ddti", str(pack), "--work", str(tmp_path / "work"),
              "--device", "cpu", "--size", "64", "--epochs", "1", "--batch-size", "4", "--folds", "2"]  # fmt: skip
    assert main(["pretrain", *common]) == 0
    assert (tmp_path / "work" / "pretrain" / ENCODER_FILE).is_file()
    assert main(["fold", *common, "--configuration", "hybrid-pretrained", "--fold", "1"]) == 0
    with np.load(tmp_path / "work" / "hybrid-pretrained" / "fold_1" / PREDICTIONS_FILE) as saved:
        assert len(saved["probability"]) == len(saved["index"]) > 0


def test_load_arrays_other_size_resized_limit_keeps_both_classes(
    image_folder: Path, tmp_path: Path
) -> None:
    pack = pack_image_folder(image_folder, tmp_path / "tiny.npz", 64)
    arrays = load_arrays(pack, 32, limit=4)
    assert arrays.images.shape == (4, 32, 32) and set(arrays.malignant.tolist()) == {0, 1}
