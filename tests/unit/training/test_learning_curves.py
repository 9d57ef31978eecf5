"""training/learning_curves.py: each fold's and the run's learning curve PNGs."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from training.learning_curves import (
    FOLD_FIGURE,
    RUN_FIGURE,
    fold_learning_curve,
    main,
    run_learning_curves,
)
from training.trainer import SUMMARY_FILE


def _history(epochs: int, with_val_loss: bool = True) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            **({"val_loss": 2.2 / e + 0.01 * e} if with_val_loss else {}),
            "val_auc": min(0.5 + 0.05 * e, 0.9),
            "val_dice_mean": None if e == 1 else 0.3 + 0.02 * e,
        }
        for e in range(1, epochs + 1)
    ]


def _fold(run: Path, fold: int, summary: dict) -> Path:
    folder = run / f"fold_{fold}"
    folder.mkdir(parents=True)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))
    return folder


def test_run_learning_curves_writes_each_fold_and_the_run_png(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _fold(run, 0, {"best_epoch": 6, "epochs_run": 9, "stopped": "patience",
                   "history": _history(9)})  # fmt: skip
    _fold(run, 1, {"best_epoch": 3, "epochs_run": 4, "history": _history(4, False)})  # older run
    assert run_learning_curves(run) == run / RUN_FIGURE
    for path in (run / RUN_FIGURE, run / "fold_0" / FOLD_FIGURE, run / "fold_1" / FOLD_FIGURE):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 600


def test_learning_curves_without_a_training_summary_draw_nothing(tmp_path: Path) -> None:
    assert run_learning_curves(tmp_path) is None
    assert fold_learning_curve(tmp_path / "fold_0") is None
    assert not list(tmp_path.rglob("*.png"))


def test_stops_table_gives_each_folds_stop_and_the_wobble_of_its_selection_curve(
    tmp_path: Path,
) -> None:
    run = tmp_path / "ynet-ema"
    history = [{**row, "seconds": 4.0 + row["epoch"] % 2} for row in _history(4)]
    history[2]["val_auc"] = 0.5  # 0.55, 0.6, 0.5, 0.7: changes 0.05, 0.1, 0.2
    _fold(run, 0, {"best_epoch": 4, "epochs_run": 4, "improved_epoch": 4, "stopped": "epochs",
                   "validation": {"auc": 0.7}, "history": history})  # fmt: skip
    _fold(run, 1, {"best_epoch": 1, "epochs_run": 1, "history": _history(1)})  # older run
    stops = tmp_path / "stops.md"
    main([str(run), "--stops", str(stops)])
    lines = stops.read_text().splitlines()
    assert lines[0].startswith("| run | fold | epochs run |") and len(lines) == 4
    assert lines[2] == "| ynet-ema | 0 | 4 | 4 | 4 | epochs | 4.5 | 0.700 | 0.117 |"
    assert lines[3] == "| ynet-ema | 1 | 1 | 1 | 1 | - | - | - | - |"
    assert (run / RUN_FIGURE).is_file()
