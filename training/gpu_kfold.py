"""Entry point for the GPU machine: 5-fold CV of several families at once, in parallel processes.

``python -m training.gpu_kfold run --busi .devdata/busi-256.npz --ddti .devdata/ddti-128.npz
--out $OUT --budget-s 290`` starts, on one GPU, one process per (configuration, fold) plus one
that pretrains the hybrid's encoder on ddti; the ``hybrid-pretrained`` folds start when the
pretraining ends. Every process trains within a time budget so that all end by the deadline.
``$OUT/kfold.tar.gz`` bundles each fold's ``predictions.npz``, ``train.json`` and
``cv_metrics.json`` per configuration. A thin scheduler: each process calls the library
(``training.retrain``, ``training.kfold``) on networks built as inference builds them.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from inference.registry import ModelSpec
from training.kfold import fold_indices, pool, run_fold
from training.networks import draft_spec
from training.pack import load_arrays
from training.retrain import ENCODER_FILE, network_maker, pretrain_encoder
from training.trainer import TrainConfig

logger = logging.getLogger(__name__)

#: configuration name -> (network name, backbone) of ``lnm-node networks``
CONFIGURATIONS = {
    "ynet": ("ynet", None),
    "densenet121": ("classifier", "densenet121"),
    "hybrid": ("hybrid-swin", "swin-f24"),
    "hybrid-pretrained": ("hybrid-swin", "swin-f24"),
}
STARTUP_S = 25.0


def _spec(configuration: str, size: int) -> ModelSpec:
    network, backbone = CONFIGURATIONS[configuration]
    return draft_spec(configuration, network, backbone, size)


def _config(args: argparse.Namespace, seconds: float) -> TrainConfig:
    return TrainConfig(
        epochs=10_000 if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        max_seconds=max(seconds, 1.0),
        time_schedule=args.epochs is None,
        resume=False,
    )


def pretrain(args: argparse.Namespace) -> int:
    """Train the hybrid on ddti (segmentation + TI-RADS class) and save its encoder's weights."""
    arrays = load_arrays(args.ddti, args.size, args.limit)
    config = _config(args, args.seconds)
    path = pretrain_encoder(_spec("hybrid", args.size), arrays, args.work, config)
    logger.info("pretrained encoder: %s", path)
    return 0


def fold(args: argparse.Namespace) -> int:
    """Train and predict one fold of one configuration."""
    arrays = load_arrays(args.busi, args.size, args.limit)
    encoder = None
    if args.configuration == "hybrid-pretrained":
        encoder = args.work / "pretrain" / ENCODER_FILE
    make = network_maker(_spec(args.configuration, args.size), encoder)
    tests = fold_indices(arrays, args.folds, args.seed)
    config = replace(_config(args, args.seconds), seed=args.seed + args.fold)
    fold_dir = args.work / args.configuration / f"fold_{args.fold}"
    result = run_fold(make, arrays, tests[args.fold], fold_dir, config, args.fold)
    logger.info("%s fold %d: %d test cases", args.configuration, args.fold, len(result["index"]))
    return 0


def _spawn(
    args: argparse.Namespace, verb: str, seconds: float, extra: list[str]
) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "training.gpu_kfold", verb,
        "--busi", str(args.busi), "--ddti", str(args.ddti), "--work", str(args.work),
        "--device", args.device, "--seed", str(args.seed), "--folds", str(args.folds),
        "--size", str(args.size), "--batch-size", str(args.batch_size),
        "--learning-rate", str(args.learning_rate), "--seconds", f"{seconds:.1f}",
        *(["--limit", str(args.limit)] if args.limit else []),
        *(["--epochs", str(args.epochs)] if args.epochs is not None else []),
        *extra,
    ]  # fmt: skip
    return subprocess.Popen(command)


def run(args: argparse.Namespace) -> int:
    """Schedule every process, wait, pool each configuration and bundle the results."""
    started = time.monotonic()
    deadline = started + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    configurations = args.configurations.split(",")
    first = [c for c in configurations if not c.startswith("hybrid")]
    later = [c for c in configurations if c.startswith("hybrid")]
    running: list[tuple[str, subprocess.Popen]] = []
    margin = args.predict_s + STARTUP_S
    for configuration in first:
        for k in range(args.folds):
            running.append(
                (
                    f"{configuration}/{k}",
                    _spawn(
                        args,
                        "fold",
                        args.budget_s - margin,
                        ["--configuration", configuration, "--fold", str(k)],
                    ),
                )
            )
    pretraining = None
    if "hybrid-pretrained" in later:
        pretraining = _spawn(args, "pretrain", args.pretrain_share * args.budget_s - STARTUP_S, [])
        pretraining.wait()
        logger.info(
            "pretraining ended (status %s) after %.0fs",
            pretraining.returncode,
            time.monotonic() - started,
        )
    for configuration in later:
        if configuration == "hybrid-pretrained" and (pretraining is None or pretraining.returncode):
            logger.error("no pretrained encoder: hybrid-pretrained skipped")
            continue
        seconds = deadline - time.monotonic() - margin
        for k in range(args.folds):
            running.append(
                (
                    f"{configuration}/{k}",
                    _spawn(
                        args, "fold", seconds, ["--configuration", configuration, "--fold", str(k)]
                    ),
                )
            )
    failed = []
    for name, process in running:
        if process.wait() != 0:
            failed.append(name)
    logger.info(
        "all processes ended after %.0fs; failed: %s", time.monotonic() - started, failed or "none"
    )
    arrays = load_arrays(args.busi, args.size, args.limit)
    bundle = args.out / "kfold.tar.gz"
    summary = {}
    with tarfile.open(bundle, "w:gz") as tar:
        for configuration in configurations:
            folder = args.work / configuration
            if not folder.is_dir():
                continue
            cv = pool(arrays, folder, args.folds)
            summary[configuration] = cv.get("pooled", {})
            for path in sorted(folder.glob("**/*")):
                if path.name in ("predictions.npz", "train.json", "cv_metrics.json", "oof.npz"):
                    tar.add(path, arcname=str(path.relative_to(args.work)))
        if (args.work / "pretrain" / "train.json").is_file():
            tar.add(args.work / "pretrain" / "train.json", arcname="pretrain/train.json")
    _bundle_weights(args, configurations)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for configuration, pooled in summary.items():
        logger.info(
            "%s: %s",
            configuration,
            {
                k: round(v, 3)
                for k, v in pooled.items()
                if k in ("auc", "accuracy", "dice_mean", "sensitivity", "specificity")
                and v is not None
            },
        )
    return 1 if failed else 0


def _bundle_weights(args: argparse.Namespace, configurations: list[str]) -> None:
    """Fold 0's best weights of each configuration, while the bundle stays under 15 MB."""
    with tarfile.open(args.out / "weights.tar.gz", "w:gz") as tar:
        total = 0
        for configuration in configurations:
            path = args.work / configuration / "fold_0" / "best.pt"
            if path.is_file() and total + path.stat().st_size < 15e6:
                tar.add(path, arcname=f"{configuration}/fold_0/best.pt")
                total += path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    """Parse ``run | fold | pretrain`` and their options; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("verb", choices=("run", "fold", "pretrain"))
    parser.add_argument("--busi", type=Path, default=Path(".devdata/busi-256.npz"))
    parser.add_argument("--ddti", type=Path, default=Path(".devdata/ddti-128.npz"))
    parser.add_argument("--out", type=Path, default=Path("out/kfold"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/lnm-kfold"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS))
    parser.add_argument("--configuration", choices=tuple(CONFIGURATIONS))
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=None, help="default: fill the time budget")
    parser.add_argument(
        "--budget-s", type=float, default=290.0, help="run: all processes end by then"
    )
    parser.add_argument("--pretrain-share", type=float, default=0.4)
    parser.add_argument("--predict-s", type=float, default=15.0)
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="fold/pretrain: training budget"
    )
    parser.add_argument("--limit", type=int, default=None, help="keep the first N images (dry run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(
        1 if args.verb != "run" and args.device.startswith("cuda") else torch.get_num_threads()
    )
    torch.backends.cudnn.benchmark = True
    if args.verb == "fold":
        return fold(args)
    if args.verb == "pretrain":
        return pretrain(args)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
