"""`dataset build --dicom-folder --model`, `train --network --package` and `evaluate` on a
study-level dataset, end to end through the CLI on phantom studies that never met a node."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from phantom.study import write_phantom_study

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_dicom_folder_dataset_trained_packaged_into_home_and_evaluated(tmp_path: Path) -> None:
    studies, labels, home = tmp_path / "studies", tmp_path / "pathology.csv", tmp_path / "home"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_instance_uid", "outcome"])
        for seed in range(9):
            _, truth = write_phantom_study(studies / f"s{seed}", seed, seed % 2 == 1, rows=64,
                                           cols=80, with_cine=False, with_ceus=False,
                                           with_doppler=seed != 8)  # fmt: skip
            writer.writerow([truth.study_instance_uid, "metastatic" if seed % 2 else "benign"])
    draft = ["--network", "dual-crossattn", "--backbone", "resnet10-w8", "--size", "32"]
    built = _invoke("dataset", "build", "--dicom-folder", str(studies), "--labels", str(labels),
                    "--model", "site-dual", *draft, "--out", str(tmp_path / "ds"), "--folds", "2",
                    "--home", str(home))  # fmt: skip
    assert "8 kept" in " ".join(built.split()) and "1 excluded" in " ".join(built.split())
    assert "no colour Doppler image" in built
    _invoke("train", "site-dual", str(tmp_path / "ds"), *draft, "--out", str(tmp_path / "run"),
            "--epochs", "1", "--batch-size", "4", "--package", "1.0.0", "--home", str(home))  # fmt: skip
    spec = json.loads((home / "models" / "site-dual-1.0.0" / "spec.json").read_text())
    assert spec["architecture"] == "dual-crossattn" and spec["outputs"]["probability"]["meaning"]
    assert 0.0 < spec["threshold"] < 1.0 and "packaged_fold" in spec["metrics"]
    _invoke("evaluate", "site-dual@1.0.0", str(tmp_path / "ds"), "--out", str(tmp_path / "eval"),
            "--home", str(home))  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 8 and metrics["model"] == "site-dual@1.0.0"
    assert (tmp_path / "eval" / "report.html").is_file()
    _invoke("compare", "site-dual@1.0.0", "site-dual@1.0.0", str(tmp_path / "ds"), "--out",
            str(tmp_path / "cmp"), "--home", str(home))  # fmt: skip
    compared = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert compared["n"] == 8 and compared["difference"] == 0.0
    _invoke("evaluate", "site-dual@1.0.0", str(tmp_path / "ds"), "--out",
            str(tmp_path / "eval-tta"), "--tta", "hflip", "--home", str(home))  # fmt: skip
    assert json.loads((tmp_path / "eval-tta" / "metrics.json").read_text())["tta"] == ["hflip"]
    _invoke("compare", str(tmp_path / "eval-tta"), str(tmp_path / "eval"), "--out",
            str(tmp_path / "cmp-tta"))  # fmt: skip
    compared = json.loads((tmp_path / "cmp-tta" / "compare.json").read_text())
    assert compared["n"] == 8 and compared["auc_b"] == metrics["auc"]
    refused = runner.invoke(app, ["train", "site-dual", str(tmp_path / "ds"), "--network", "tin",
                                  "--out", str(tmp_path / "run2"), "--home", str(home)])  # fmt: skip
    assert refused.exit_code != 0 and "registered as dual-crossattn" in refused.output
