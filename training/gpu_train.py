"""Entry point run on the GPU machine: hold out 20% of groups, then fit on the rest within a budget.

``python -m training.gpu_train --data .devdata/busi-256.npz --out $OUT --budget-s 330``
writes ``holdout.json``, ``best.pt``, ``fit.json``, ``validation.npz`` (and the caller tees the
log) into ``--out``; checkpoints go to ``--work``. A thin caller of ``training.fit`` and ``training.splits``.
Imports no pydantic, pydicom or settings.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training.fit import BEST_FILE, SUMMARY_FILE, FitConfig, calibrated_epochs, fit
from training.pack import load_packed
from training.splits import HOLDOUT_FILE, holdout_indices, write_holdout
from training.trainer import VALIDATION_FILE

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, split, fit; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lnm-fit"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--holdout-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=None, help="default: fill --budget-s")
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="keep the first N images (dry run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    started = time.monotonic()
    torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    if args.work.exists():
        shutil.rmtree(args.work)
    arrays, conflict = load_packed(args.data)
    logger.info("%d images, %d in conflicting-label groups excluded", len(conflict), conflict.sum())
    arrays = arrays.subset(np.flatnonzero(~conflict))
    if args.limit:
        arrays = arrays.subset(np.arange(min(args.limit, len(arrays.images))))
    kept, held = holdout_indices(
        arrays.groups.tolist(), arrays.malignant.tolist(), args.holdout_fraction, args.seed
    )
    held_groups = sorted(set(arrays.groups[held].tolist()))
    write_holdout(
        args.out / HOLDOUT_FILE, held_groups, args.seed, args.holdout_fraction, args.data.name
    )
    logger.info(
        "hold-out: %d images in %d groups; development: %d images",
        len(held),
        len(held_groups),
        len(kept),
    )
    development = arrays.subset(kept)
    config = FitConfig(
        epochs=args.epochs or 2,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        num_workers=args.workers,
    )
    if args.epochs is None:
        spent = time.monotonic() - started
        probe_started = time.monotonic()
        epochs = calibrated_epochs(development, args.work, config, args.budget_s * 0.9)
        remaining = args.budget_s - (time.monotonic() - probe_started) - spent
        config = replace(config, epochs=epochs, max_seconds=max(remaining, 10.0))
    result = fit(development, args.work / "main", config)
    for name in (BEST_FILE, SUMMARY_FILE, VALIDATION_FILE):  # validation: for calibration
        shutil.copy2(args.work / "main" / name, args.out / name)
    logger.info(
        "best epoch %d of %d, threshold %.3f, validation %s; %.0fs in all",
        result.best_epoch,
        len(result.history),
        result.threshold,
        {k: round(v, 4) for k, v in result.validation.items() if isinstance(v, float)},
        time.monotonic() - started,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
