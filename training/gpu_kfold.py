"""Entry point for the GPU machine: k-fold CV of several configurations at once, in parallel processes.

``python -m training.gpu_kfold run --busi .devdata/gpu/busi-256.npz --ddti
.devdata/gpu/ddti-128.npz --frames .devdata/gpu/dicom-frames/frames.npz --exclude-groups
inference/models/ynet-busi/holdout.json --out $OUT --budget-s 420`` (``scripts/device/kfold.sh``,
``docs/gpu-runbook.md``) starts, on one GPU, one process per (configuration, fold). A
configuration that starts from a pretrained encoder waits for its pretraining: ``hybrid-ddti``
for the supervised one on ddti, ``hybrid-ssl`` for the self-supervised one on busi's and ddti's
images and the DICOM frames pack (``lnm-node pretrain-ssl OUT --dicom DIR --frames-only``);
both pretrainings run side by side, and every hybrid configuration starts when they end, so
that all hybrids train for the same budget.
Every process trains within its time budget (and ``--patience``) so that all end by the deadline.

The ``--exclude-groups`` hold-out is left out of every fold and of the pooling and recorded in
each configuration's ``exclusion.json``; a busi pack written without it (``training.pack
--exclude-groups``) keeps it off the device altogether. The selected configuration is the
Y-Net unless another configuration's pooled out-of-fold AUC beats it in a paired DeLong test
(p < 0.05), then the best of those (:func:`select`): the hold-out plays no part.

``$OUT/kfold.tar.gz`` bundles, per configuration, ``exclusion.json``, ``encoder.json`` and each
fold's ``predictions.npz`` and ``train.json``; ``$OUT/summary.json`` the pooled figures and the
selection; ``$OUT/weights/`` the selected configuration's fold weights (fp16, ``CONFIG-fold_K.pt``),
which ``lnm-node train`` packages as one ensemble on the run folders that ``unpack`` restores
here (it resumes every fold).
A thin scheduler: each process calls the library (``training.kfold``, ``training.retrain``,
``training.ssl_pretrain``) on networks built as inference builds them.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from inference.registry import ModelSpec
from training.datasets import TrainingArrays
from training.exclusion import (
    EXCLUSION_FILE,
    Exclusion,
    read_excluded_groups,
    record_exclusion,
    without_excluded,
)
from training.kfold import (
    CV_METRICS_FILE,
    FOLDS_FILE,
    POOLED_FILE,
    PREDICTIONS_FILE,
    fold_indices,
    pool,
    read_pooled,
    run_fold,
    write_folds,
)
from training.metrics import delong_test
from training.networks import draft_spec
from training.pack import load_arrays, pack_exclusion
from training.retrain import (
    ENCODER_FILE,
    ENCODER_RECORD,
    PRETRAIN_DIR,
    network_maker,
    pretrain_encoder,
    record_encoder,
)
from training.ssl_frames import hold_out_record, load_frames, merge_frames, pack_frames
from training.ssl_pretrain import SslConfig, pretrain_ssl
from training.trainer import BEST_FILE, SUMMARY_FILE, TrainConfig, train_network

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Configuration:
    """One row of the k-fold table: a network of ``lnm-node networks`` and its starting point."""

    network: str
    backbone: str | None
    pretraining: str | None = None  # None, "ddti" or "ssl"


CONFIGURATIONS = {
    "ynet": Configuration("ynet", None),
    "densenet121": Configuration("classifier", "densenet121"),
    "hybrid": Configuration("hybrid-swin", "swin-f24"),
    "hybrid-ddti": Configuration("hybrid-swin", "swin-f24", "ddti"),
    "hybrid-ssl": Configuration("hybrid-swin", "swin-f24", "ssl"),
}
DEFAULT_CONFIGURATIONS = "ynet,hybrid,hybrid-ddti,hybrid-ssl"
#: the configuration selected unless another beats it significantly (:func:`select`)
REFERENCE = "ynet"
SELECTION_ALPHA = 0.05
#: pretraining -> its folder under --work (each writes ``encoder.pt`` there)
PRETRAINING_DIRS = {"ddti": PRETRAIN_DIR, "ssl": "ssl"}
#: the configuration whose network (the hybrid) every pretraining trains the encoder of
PRETRAINED_NETWORK = "hybrid"
SSL_RECORD = "ssl.json"
#: probe: epochs timed per network (the first, with its warm-up, is not counted) and cases
PROBE_EPOCHS, PROBE_CASES = 3, 400
#: probe's plan, in order of preference: (folds, input size). The first whose fold processes
#: fit the GPU's memory together and whose every configuration is expected to train at least
#: PLAN_MIN_EPOCHS (the 64-px CPU runs' hybrid folds stopped after 13-38 epochs); else the
#: last that fits
PLAN = ((5, 256), (3, 256), (5, 128), (3, 128))
PLAN_MIN_EPOCHS = 30
#: a plan's fold processes must fit in this share of the GPU's memory, each counted as its
#: network's peak alone plus a CUDA context
MEMORY_SHARE, CONTEXT_MIB = 0.85, 600.0
STARTUP_S = 25.0


def _spec(configuration: str, size: int) -> ModelSpec:
    chosen = CONFIGURATIONS[configuration]
    return draft_spec(configuration, chosen.network, chosen.backbone, size)


def _config(args: argparse.Namespace, seconds: float) -> TrainConfig:
    return TrainConfig(
        epochs=10_000 if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        max_seconds=max(seconds, 1.0),
        time_schedule=args.epochs is None,
        patience=args.patience,
        ema_decay=args.ema_decay,
        resume=False,
    )


def _exclusion(args: argparse.Namespace) -> Exclusion:
    return read_excluded_groups(args.exclude_groups or [])


def _cases(args: argparse.Namespace) -> tuple[TrainingArrays, Exclusion]:
    """busi without its conflicting and its excluded groups, as ``lnm-node train`` loads it.

    A pack written without the hold-out (``training.pack --exclude-groups``) carries its
    exclusion; ``--exclude-groups``, when given too, must name the same groups."""
    arrays = load_arrays(args.busi, args.size, args.limit)
    asked = _exclusion(args)
    packed = pack_exclusion(args.busi)
    if packed is None:
        kept, _, exclusion = without_excluded(arrays, None, asked)
        return kept, exclusion
    if asked.groups and asked.digest != packed.digest:
        raise SystemExit(f"{args.busi} was packed without other groups than --exclude-groups names")
    return without_excluded(arrays, None, packed)[0], packed


def encoder_path(work: Path, pretraining: str) -> Path:
    """Where ``pretraining``'s encoder is written under ``work``."""
    return Path(work) / PRETRAINING_DIRS[pretraining] / ENCODER_FILE


def pretrain(args: argparse.Namespace) -> int:
    """Train the hybrid on ddti (segmentation + TI-RADS class) and save its encoder's weights."""
    arrays = load_arrays(args.ddti, args.size, args.limit)
    path = pretrain_encoder(
        _spec(PRETRAINED_NETWORK, args.size), arrays, args.work, _config(args, args.seconds)
    )
    logger.info("pretrained encoder: %s", path)
    return 0


def ssl(args: argparse.Namespace) -> int:
    """Pretrain the hybrid's encoder self-supervised on every unlabelled frame that travelled:
    busi's images outside the hold-out, ddti's, and the frames pack ``--frames`` (DICOM frames)."""
    busi, exclusion = _cases(args)
    parts = [pack_frames("busi", busi.images, exclusion.excluded_cases),
             pack_frames("ddti", load_arrays(args.ddti, args.size, args.limit).images)]  # fmt: skip
    if args.frames is not None:
        parts.append(load_frames(args.frames, args.size)[0])
    config = SslConfig(
        epochs=10_000 if args.epochs is None else args.epochs,
        batch_size=args.ssl_batch_size,
        seed=args.seed,
        device=args.device,
        max_seconds=max(args.seconds, 1.0),
        resume=False,
    )
    outcome = pretrain_ssl(
        _spec(PRETRAINED_NETWORK, args.size),
        merge_frames(parts),
        encoder_path(args.work, "ssl").parent,
        config,
        hold_out_record(exclusion),
    )
    logger.info("ssl encoder: %s after %d epochs", outcome.encoder_path, len(outcome.history))
    return 0


def fold(args: argparse.Namespace) -> int:
    """Train and predict one fold of one configuration."""
    arrays, _ = _cases(args)
    pretraining = CONFIGURATIONS[args.configuration].pretraining
    encoder = None if pretraining is None else encoder_path(args.work, pretraining)
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
        "--ssl-batch-size", str(args.ssl_batch_size),
        "--learning-rate", str(args.learning_rate), "--seconds", f"{seconds:.1f}",
        *(["--frames", str(args.frames)] if args.frames else []),
        *(arg for path in args.exclude_groups or [] for arg in ("--exclude-groups", str(path))),
        *(["--limit", str(args.limit)] if args.limit else []),
        *(["--epochs", str(args.epochs)] if args.epochs is not None else []),
        *(["--patience", str(args.patience)] if args.patience is not None else []),
        *(["--ema-decay", str(args.ema_decay)] if args.ema_decay is not None else []),
        *extra,
    ]  # fmt: skip
    return subprocess.Popen(command)


def _spawn_folds(args: argparse.Namespace, configuration: str, seconds: float) -> list:
    return [
        (
            f"{configuration}/{k}",
            _spawn(args, "fold", seconds, ["--configuration", configuration, "--fold", str(k)]),
        )
        for k in range(args.folds)
    ]


def _pretrain_all(args: argparse.Namespace, needed: set[str], started: float) -> set[str]:
    """Run the ``needed`` pretrainings side by side; the ones that wrote their encoder."""
    seconds = args.pretrain_share * args.budget_s - STARTUP_S
    processes = {name: _spawn(args, "pretrain" if name == "ddti" else name, seconds, [])
                 for name in sorted(needed)}  # fmt: skip
    done = set()
    for name, process in processes.items():
        process.wait()
        logger.info("%s pretraining ended (status %s) after %.0fs", name, process.returncode,
                    time.monotonic() - started)  # fmt: skip
        if process.returncode == 0 and encoder_path(args.work, name).is_file():
            done.add(name)
    return done


def run(args: argparse.Namespace) -> int:
    """Schedule every process, wait, pool each configuration and bundle the results."""
    started = time.monotonic()
    deadline = started + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    configurations = args.configurations.split(",")
    arrays, exclusion = _cases(args)
    tests = fold_indices(arrays, args.folds, args.seed)
    for configuration in configurations:  # before any fold: folds of one run share one record
        record_exclusion(args.work / configuration, exclusion)
        write_folds(args.work / configuration, arrays, tests, _config(args, args.budget_s))
    logger.info("%d cases; %d of %d hold-out groups left out", len(arrays.malignant),
                exclusion.excluded_cases, len(exclusion.groups))  # fmt: skip
    first = [c for c in configurations if not c.startswith("hybrid")]
    later = [c for c in configurations if c.startswith("hybrid")]
    margin = args.predict_s + STARTUP_S
    running = [p for c in first for p in _spawn_folds(args, c, args.budget_s - margin)]
    needed = {CONFIGURATIONS[c].pretraining for c in later} - {None}
    pretrained = _pretrain_all(args, needed, started) if needed else set()  # type: ignore[arg-type]
    for configuration in later:
        pretraining = CONFIGURATIONS[configuration].pretraining
        if pretraining is not None:
            if pretraining not in pretrained:
                logger.error("no %s encoder: %s skipped", pretraining, configuration)
                continue
            record_encoder(args.work / configuration, encoder_path(args.work, pretraining))
        running += _spawn_folds(args, configuration, deadline - time.monotonic() - margin)
    failed = [name for name, process in running if process.wait() != 0]
    logger.info(
        "all processes ended after %.0fs; failed: %s", time.monotonic() - started, failed or "none"
    )
    summary = {name: pool(arrays, args.work / name, args.folds).get("pooled", {})
               for name in configurations if (args.work / name).is_dir()}  # fmt: skip
    selected, selection_tests = select(summary, args.work)
    _bundle(args, configurations)
    exported = export_weights(args.work / selected, args.out / "weights", selected) if selected else []
    record = {
        "configurations": summary,
        "selected": selected,
        "selected_by": f"{REFERENCE} unless another configuration's pooled out-of-fold AUC is "
        f"higher with a paired DeLong p < {SELECTION_ALPHA} (the hold-out not used)",
        "selection_tests": selection_tests,
        "folds": args.folds,
        "size": args.size,
        "exported_weights": [p.name for p in exported],
        "excluded": {"groups": len(exclusion.groups), "cases": exclusion.excluded_cases,
                     "sha256": exclusion.digest, "files": list(exclusion.files)},
        "pretrainings": sorted(pretrained),
        "failed": failed,
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(record, indent=2) + "\n")
    for configuration, pooled in summary.items():
        logger.info("%s: %s", configuration, {k: round(v, 3) for k, v in pooled.items()
                    if k in ("auc", "accuracy", "dice_mean", "sensitivity", "specificity")
                    and v is not None})  # fmt: skip
    logger.info("selected: %s", selected)
    return 1 if failed else 0


def select(
    summary: dict[str, dict], work: Path, reference: str = REFERENCE, alpha: float = SELECTION_ALPHA
) -> tuple[str | None, dict[str, dict]]:
    """The configuration whose fold weights come back, and each other one's paired DeLong test
    of its pooled out-of-fold AUC against ``reference``'s (``difference``, ``p_value``).

    ``reference`` unless others beat it with p < ``alpha``, then the best of those: on 479
    images one seed moves a pooled AUC by up to 0.05 (docs/results/ssl-ema-cpu-64), so the
    plain best AUC of several configurations would often be a draw's winner. Without a pooled
    ``reference``, the best pooled AUC; None when nothing pooled.
    """
    scored = {name: pooled["auc"] for name, pooled in summary.items() if pooled.get("auc") is not None}
    if reference not in scored:
        return (max(scored, key=lambda name: scored[name]) if scored else None), {}
    base = read_pooled(work / reference)
    known = base["malignant"] >= 0
    tests = {}
    for name in sorted(set(scored) - {reference}):
        other = read_pooled(work / name)
        if not np.array_equal(other["index"], base["index"]):  # not comparable: not selectable
            tests[name] = {"error": f"{name} and {reference} pooled different cases"}
            continue
        test = delong_test(base["malignant"][known], other["probability"][known],
                           base["probability"][known])  # fmt: skip
        tests[name] = {"difference": test["difference"], "p_value": test["p_value"]}
    better = [name for name, t in tests.items()
              if "error" not in t and t["difference"] > 0 and t["p_value"] < alpha]  # fmt: skip
    return (max(better, key=lambda name: scored[name]) if better else reference), tests


#: the run files that travel back (weights apart): what ``lnm-node train`` resumes from
BUNDLED = {PREDICTIONS_FILE, SUMMARY_FILE, CV_METRICS_FILE, POOLED_FILE, EXCLUSION_FILE,
           ENCODER_RECORD, SSL_RECORD, FOLDS_FILE}  # fmt: skip


def _bundle(args: argparse.Namespace, configurations: list[str]) -> Path:
    bundle = args.out / "kfold.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        for name in [*configurations, *PRETRAINING_DIRS.values()]:
            folder = args.work / name
            for path in sorted(folder.glob("**/*")) if folder.is_dir() else []:
                if path.name in BUNDLED:
                    tar.add(path, arcname=str(path.relative_to(args.work)))
    return bundle


def export_weights(run: Path, out: Path, name: str) -> list[Path]:
    """Each fold's best-epoch weights of ``run`` as fp16 ``out/NAME-fold_K.pt`` (half the size:
    a 7 M-parameter fold fits one returned file); ``lnm-node train`` re-saves them as fp32."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(run).glob(f"fold_*/{BEST_FILE}")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        target = out / f"{name}-{path.parent.name}.pt"
        torch.save(half, target)
        written.append(target)
    return written


def probe(args: argparse.Namespace) -> int:
    """Each configuration's network training alone on this device, at each size of
    :data:`PLAN`: seconds per epoch and peak memory (ddti's images, about as many as busi's
    training part). From them, the epochs each configuration would train in ``run`` and the
    memory its fold processes need, per (folds, size), and the plan (``probe.json``)."""
    configurations = args.configurations.split(",")
    networks = sorted({CONFIGURATIONS[c].network: c for c in configurations}.items())
    cuda = args.device.startswith("cuda")
    alone: dict[int, dict[str, float]] = {}
    peak_mib: dict[int, dict[str, float]] = {}
    for size in sorted({size for _, size in PLAN}, reverse=True):
        arrays = load_arrays(args.ddti, size, args.limit)
        arrays = arrays.subset(np.arange(min(len(arrays.malignant), PROBE_CASES)))
        alone[size], peak_mib[size] = {}, {}
        for network, configuration in networks:
            config = replace(_config(args, 1e9), epochs=PROBE_EPOCHS, time_schedule=False,
                             patience=None)  # fmt: skip
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            outcome = train_network(network_maker(_spec(configuration, size)), arrays,
                                    args.work / "probe" / f"{network}-{size}", config,
                                    label=f"probe {network} {size}")  # fmt: skip
            alone[size][network] = float(np.median([e["seconds"] for e in outcome.history[1:]]))
            if cuda:
                peak_mib[size][network] = torch.cuda.max_memory_allocated() / 2**20
    device_mib = torch.cuda.get_device_properties(0).total_memory / 2**20 if cuda else None
    options = {}
    for folds, size in PLAN:
        memory = folds * sum(peak_mib[size].get(CONFIGURATIONS[c].network, 0.0) + CONTEXT_MIB
                             for c in configurations)  # fmt: skip
        options[f"{folds}x{size}"] = {
            "folds": folds, "size": size,
            "epochs_expected": expected_epochs(alone[size], configurations, folds, args),
            "fold_processes_mib": round(memory),
            "fits": device_mib is None or memory <= MEMORY_SHARE * device_mib,
        }  # fmt: skip
    fitting = [o for o in options.values() if o["fits"]] or list(options.values())[-1:]
    enough = [o for o in fitting if min(o["epochs_expected"].values()) >= PLAN_MIN_EPOCHS]
    chosen = (enough or fitting[-1:])[0]
    record = {"seconds_per_epoch_alone": alone, "peak_mib_alone": peak_mib,
              "cases": len(arrays.malignant), "batch_size": args.batch_size,
              "budget_s": args.budget_s,
              "device_mib": device_mib, "min_epochs": PLAN_MIN_EPOCHS, "options": options,
              "planned_folds": chosen["folds"], "planned_size": chosen["size"]}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(record, indent=2) + "\n")
    logger.info("probe: planned %d folds at %d px; %s", chosen["folds"], chosen["size"],
                json.dumps(options))  # fmt: skip
    return 0


def expected_epochs(
    alone: dict[str, float], configurations: list[str], folds: int, args: argparse.Namespace
) -> dict[str, int]:
    """Epochs each configuration would train in ``run`` if the device shared its time evenly
    between all processes, from each network's seconds per epoch alone (the pretrainings'
    share of the budget counted as time the non-hybrid folds have to themselves)."""
    first = [c for c in configurations if not c.startswith("hybrid")]
    later = [c for c in configurations if c.startswith("hybrid")]
    window = args.budget_s * (1 - args.pretrain_share) - args.predict_s - STARTUP_S
    shared = folds * sum(alone[CONFIGURATIONS[c].network] for c in configurations)
    own = folds * sum(alone[CONFIGURATIONS[c].network] for c in first) or 1.0
    epochs = {c: int(window / shared) for c in later}
    epochs |= {c: int(args.pretrain_share * args.budget_s / own + window / shared) for c in first}
    return epochs


def unpack(args: argparse.Namespace) -> int:
    """Here, after the GPU run: ``--out``'s bundle and weights unpacked into ``--work`` as run
    folders (``--work/CONFIG/fold_K/best.pt``) that ``lnm-node train --out --work/CONFIG``
    resumes and packages."""
    with tarfile.open(args.out / "kfold.tar.gz") as tar:
        tar.extractall(args.work, filter="data")
    for path in sorted((args.out / "weights").glob("*-fold_*.pt")):
        name, fold_name = path.stem.rsplit("-", 1)
        target = args.work / name / fold_name / BEST_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        logger.info("%s -> %s", path.name, target)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``run | fold | pretrain | ssl | probe | unpack`` and their options; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("verb", choices=("run", "fold", "pretrain", "ssl", "probe", "unpack"))
    parser.add_argument("--busi", type=Path, default=Path(".devdata/busi-256.npz"))
    parser.add_argument("--ddti", type=Path, default=Path(".devdata/ddti-128.npz"))
    parser.add_argument("--frames", type=Path, default=None,
                        help="hybrid-ssl: a frames pack of DICOM frames to add to busi's and ddti's")  # fmt: skip
    parser.add_argument("--exclude-groups", type=Path, action="append", default=None,
                        help="a holdout.json whose groups no fold sees (repeatable)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("out/kfold"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/lnm-kfold"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configurations", default=DEFAULT_CONFIGURATIONS)
    parser.add_argument("--configuration", choices=tuple(CONFIGURATIONS))
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ssl-batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=None, help="default: fill the time budget")
    parser.add_argument("--patience", type=int, default=None, help="stop a fold after N flat epochs")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="validate and keep an EMA of the weights (e.g. 0.99)")  # fmt: skip
    parser.add_argument(
        "--budget-s", type=float, default=290.0, help="run: all processes end by then"
    )
    parser.add_argument("--pretrain-share", type=float, default=0.4)
    parser.add_argument("--predict-s", type=float, default=15.0)
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="fold/pretrain/ssl: training budget"
    )
    parser.add_argument("--limit", type=int, default=None, help="keep N images spread over the pack (dry run)")
    args = parser.parse_args(argv)
    if args.configuration is None and args.verb == "fold":
        parser.error("fold needs --configuration")
    unknown = set(args.configurations.split(",")) - set(CONFIGURATIONS)
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    threads = {"fold": 1, "pretrain": 1, "ssl": 4}.get(args.verb)
    torch.set_num_threads(
        threads if threads and args.device.startswith("cuda") else torch.get_num_threads()
    )
    torch.backends.cudnn.benchmark = True
    verbs = {"fold": fold, "pretrain": pretrain, "ssl": ssl, "run": run, "probe": probe,
             "unpack": unpack}  # fmt: skip
    return verbs[args.verb](args)


if __name__ == "__main__":
    raise SystemExit(main())
