"""`train --exclude-groups`: a hold-out no fold sees, recorded in the run, written beside the
packaged model and measured once by `evaluate --subset holdout`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from cli.main import app
from tests.unit.training.conftest import write_image_folder

runner = CliRunner()


def test_holdout_groups_stay_out_of_every_fold_and_evaluate_once(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "images", count=16, size=48)
    holdout = tmp_path / "holdout.json"
    holdout.write_text(json.dumps({"groups": ["g0", "g1"]}))  # case00-case03
    home, run = tmp_path / "home", tmp_path / "run"
    train = ["train", "site-ynet", str(folder), "--network", "ynet", "--size", "32",
             "--folds", "2", "--epochs", "1", "--batch-size", "4", "--home", str(home)]  # fmt: skip
    result = runner.invoke(app, [*train, "--out", str(run), "--exclude-groups", str(holdout),
                                 "--package", "1.0.0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "excluded 4 case(s) of 2 hold-out group(s)" in result.output
    assert json.loads((run / "exclusion.json").read_text())["excluded_cases"] == 4
    with np.load(run / "oof.npz") as pooled:
        names = sorted(str(n) for n in pooled["names"])
    assert len(names) == 12 and not any(f"case0{i}" in n for n in names for i in range(4))
    packaged = home / "models" / "site-ynet-1.0.0"
    assert json.loads((packaged / "holdout.json").read_text())["groups"] == ["g0", "g1"]
    assert "left out of every fold" in (packaged / "card.md").read_text()

    result = runner.invoke(app, ["evaluate", "site-ynet@1.0.0", str(folder), "--out",
                                 str(tmp_path / "eval"), "--subset", "holdout", "--no-gate",
                                 "--home", str(home)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 4

    result = runner.invoke(app, ["cv-summary", str(run), "--dataset", str(folder), "--size", "32",
                                 "--folds", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"groups": ["g0"]}))
    refused = runner.invoke(app, [*train, "--out", str(run), "--exclude-groups", str(other)])
    assert refused.exit_code == 1 and "another exclusion" in refused.output
