"""Rebuild ynet-busi@1.0.0's inner validation split and check it against its card.

``python scripts/ynet_busi_inner_validation.py DATASET OUT.json`` repeats training/gpu_train.py's
splits (conflicting-label groups out; hold-out: 20% of groups, seed 2026; inner validation:
the trainer's 15% of the remaining groups, same seed), checks the hold-out groups equal the
model's holdout.json and the inner-validation groups those its training run recorded
(docs/models/ynet-busi/fit.json), predicts the inner-validation images as the trainer scored them and
prints their count and AUC. OUT.json gets their groups (``lnm-node models calibrate --groups``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from inference.loading import load_network
from inference.registry import Registry, default_models_dir
from training.datasets import arrays_from_rows, read_image_folder, usable_rows
from training.exclusion import model_holdout
from training.metrics import auc_with_ci, binary_metrics
from training.splits import holdout_indices
from training.trainer import TrainConfig, model_inputs, predict

FIT_RECORD = Path(__file__).resolve().parents[1] / "docs" / "models" / "ynet-busi" / "fit.json"


def main(dataset: Path, out: Path) -> int:
    """Split, check, predict; write OUT.json; returns the exit status."""
    spec = Registry.load(default_models_dir()).get("ynet-busi@1.0.0", "ynet-busi")
    arrays = arrays_from_rows(usable_rows(read_image_folder(dataset)), spec.input_size, dataset)
    kept, held = holdout_indices(arrays.groups.tolist(), arrays.malignant.tolist(), 0.2, 2026)
    holdout = model_holdout(spec.folder)
    same = set(arrays.groups[held].tolist()) == holdout.groups
    development = arrays.subset(kept)
    config = TrainConfig(seed=2026)
    train, val = holdout_indices(
        development.groups.tolist(), development.malignant.tolist(),
        config.validation_fraction, config.seed,
    )  # fmt: skip
    inner = development.subset(val)
    probabilities, _ = predict(load_network(spec, "cpu"), model_inputs(inner.images), "cpu")
    auc, low, high = auc_with_ci(inner.malignant, probabilities)
    at = binary_metrics(inner.malignant, probabilities, spec.threshold)
    groups = sorted(set(inner.groups.tolist()))
    recorded = json.loads(FIT_RECORD.read_text())["validation_groups"]  # the training run's own
    out.write_text(json.dumps({"seed": 2026, "source": "ynet-busi@1.0.0 inner validation",
                               "groups": groups, "images": inner.names.tolist()}, indent=2) + "\n")  # fmt: skip
    print(json.dumps({
        "usable": len(arrays.malignant), "holdout": len(held), "holdout_matches_holdout_json": same,
        "development": len(kept), "inner_train": len(train), "inner_validation": len(val),
        "inner_validation_positive": int(inner.malignant.sum()), "groups": len(groups),
        "groups_match_fit_json": groups == sorted(map(str, recorded)),
        "auc": auc, "auc_ci": [low, high], "sensitivity": at["sensitivity"],
        "specificity": at["specificity"], "threshold": spec.threshold,
        "probabilities_below_0.1_or_above_0.9": float(np.mean((probabilities < 0.1) | (probabilities > 0.9))),
    }, indent=2))  # fmt: skip
    return 0 if same and groups == sorted(map(str, recorded)) else 1


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))
