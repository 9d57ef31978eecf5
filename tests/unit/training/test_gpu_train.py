"""Tests of the GPU entry point, run on CPU on a tiny packed folder (the dry run of the real run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from training.gpu_train import main
from training.pack import pack_image_folder


def test_gpu_train_main_tiny_pack_writes_holdout_and_best(
    image_folder: Path, tmp_path: Path
) -> None:
    data = pack_image_folder(image_folder, tmp_path / "tiny.npz", 64)
    out = tmp_path / "out"
    status = main(
        [
            "--data",
            str(data),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--holdout-fraction",
            "0.25",
        ]
    )
    assert status == 0
    holdout = json.loads((out / "holdout.json").read_text())
    assert holdout["seed"] == 2026 and holdout["groups"]
    assert (out / "best.pt").is_file() and (out / "fit.json").is_file()
    validation = set(json.loads((out / "fit.json").read_text())["validation_groups"])
    assert not validation & set(holdout["groups"])


def test_gpu_train_import_no_pydantic_settings_or_pydicom_of_ours() -> None:
    """The device image lacks these; kernel's stdlib-only modules (errors, spool) are fine,
    its settings (pydantic-settings) are not."""
    code = (
        "import sys, training.gpu_train; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_settings', 'highdicom', 'pynetdicom') "
        "or m == 'kernel.settings'))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"
