"""Per-job inference time of one model, of ensembles of it, with and without test-time augmentation.

``run_model`` (read, select, decode, crop, infer, Grad-CAM, gate, measure: the infer stage of a
node job) on one single-frame breast study, warm, median of ``--repeats``: the first busi-dev
hold-out image (``holdout.json`` beside the weights) the model's gate accepts, wrapped as a
DICOM file (``phantom.wrap``). For:

- the model as registered (one network), without and with hflip TTA;
- ensembles of ``--members`` copies of its weights (``inference.networks.ensemble.Ensemble``,
  gate on member 0 as ``train --package --members all`` packages it), without and with TTA.

The copies share one set of weights: the figures are times, not accuracy. Wall-clock and
process CPU seconds (all threads) are printed: on a shared machine the CPU seconds show the
work a job costs, the wall-clock what another load made of it. Ensemble time grows
with the members (each runs its forward and Grad-CAM); TTA adds one plain forward per
augmentation and member.

    python benchmarks/ensemble_tta.py [--model default] [--dataset ../shared/data/busi-dev]
        [--members 1 3 5] [--repeats 5] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.gate import OutOfDomain, load_reference
from inference.loading import load_network
from inference.networks.ensemble import Ensemble
from inference.registry import ModelSpec, Registry, default_models_dir
from inference.runner import run_model
from inference.tta import spec_with_tta
from phantom.wrap import wrap_image
from training.datasets import read_image_folder, usable_rows
from training.exclusion import model_holdout
from training.package_ensemble import ensemble_fields

DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "busi-dev"


def ensemble_of(
    spec: ModelSpec, network: torch.nn.Module, members: int
) -> tuple[ModelSpec, torch.nn.Module]:
    """(spec, network) of ``members`` copies of ``network``; ``members`` 1 gives them back."""
    if members == 1:
        return spec, network
    ensemble_spec = ModelSpec.model_validate(ensemble_fields(spec.model_dump(mode="json"), members))
    ensemble_spec._folder = spec.folder
    return ensemble_spec, Ensemble([copy.deepcopy(network) for _ in range(members)]).eval()


def accepted_study(spec: ModelSpec, network: torch.nn.Module, dataset: Path, folder: Path) -> Path:
    """The first hold-out image of ``dataset`` the spec's gate accepts, as a breast DICOM file."""
    held = model_holdout(spec.folder).groups
    gate = load_reference(spec)
    for index, row in enumerate(usable_rows(read_image_folder(dataset))):
        if row.group not in held:
            continue
        path = wrap_image(row.image, folder, "BREAST", f"bench-{index}")
        try:
            run_model(spec, network, [path], "cpu", gate=gate)
        except OutOfDomain:
            continue
        print(f"study: {row.image.relative_to(dataset)}", flush=True)
        return path
    raise SystemExit(f"the gate of {spec.ref} declines every hold-out image of {dataset}")


def interleaved_seconds(
    configs: list[tuple[ModelSpec, torch.nn.Module]], paths: list[Path], repeats: int
) -> tuple[list[list[float]], list[list[float]]]:
    """(wall-clock, process CPU) seconds of ``repeats`` warm ``run_model`` jobs per
    configuration, the configurations taking turns in each round (a shared machine's load then
    weighs on all alike). CPU seconds (all threads) are the work, little moved by other load."""
    gates = [load_reference(spec) for spec, _ in configs]
    for (spec, network), gate in zip(configs, gates, strict=True):
        run_model(spec, network, paths, "cpu", gate=gate)  # warm-up
    wall: list[list[float]] = [[] for _ in configs]
    cpu: list[list[float]] = [[] for _ in configs]
    for _ in range(repeats):
        for index, ((spec, network), gate) in enumerate(zip(configs, gates, strict=True)):
            started, started_cpu = time.perf_counter(), time.process_time()
            run_model(spec, network, paths, "cpu", gate=gate)
            wall[index].append(time.perf_counter() - started)
            cpu[index].append(time.process_time() - started_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="key, key@version or 'default'")
    parser.add_argument("--dataset", type=Path, default=DATASET, help="busi-dev image folder")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = Registry.load(default_models_dir())
    spec = registry.get(args.model, "ynet-busi")
    network = load_network(spec, "cpu")
    with tempfile.TemporaryDirectory() as folder:
        paths = [accepted_study(spec, network, args.dataset, Path(folder))]
        configs, names = [], []
        for members in args.members:
            member_spec, member_network = ensemble_of(spec, network, members)
            for tta in ([], ["hflip"]):
                configs.append((spec_with_tta(member_spec, tta), member_network))
                names.append((members, "+".join(tta) or "none"))
        wall, cpu = interleaved_seconds(configs, paths, args.repeats)
    rows = []
    for (members, tta), seconds, cpu_seconds in zip(names, wall, cpu, strict=True):
        rows.append({"members": members, "tta": tta, "median_s": statistics.median(seconds),
                     "median_cpu_s": statistics.median(cpu_seconds), "max_s": max(seconds),
                     "seconds": seconds, "cpu_seconds": cpu_seconds})  # fmt: skip
        print(f"{spec.ref} members {members} tta {tta:5s}: median {rows[-1]['median_s']:.3f} s "
              f"wall, {rows[-1]['median_cpu_s']:.3f} s CPU; max {rows[-1]['max_s']:.3f} s wall "
              f"({args.repeats} jobs, {torch.get_num_threads()} threads)")  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    if args.json is not None:
        args.json.write_text(json.dumps({"model": spec.ref, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
