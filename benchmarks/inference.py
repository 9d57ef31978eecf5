"""Inference speed of every registered model and every image backbone, and the node's overhead.

Three tables, CPU always and CUDA when available:

1. per registered model: items (images or clips) per second of the bare forward pass at
   batch 1 and (CUDA) batch ``--batch``, and of forward + Grad-CAM at batch 1 (one pass,
   ``inference.gradcam.explain_input``: Grad-CAM's forward gives the outputs, as in
   ``run_model``); on CUDA the peak GPU memory of each (weights included);
2. per family-1 backbone at one common input size (random weights): the same figures;
3. per registered model: ``run_model`` on a phantom study (read, select, decode, crop, infer,
   explain, measure) against that forward + Grad-CAM pass alone on tensors of the same
   shapes: the node's per-study overhead (target under 20%).

``python benchmarks/inference.py [--models-dir DIR] [--size 224] [--batch 32] [--repeats 5]
[--skip-backbones] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.gradcam import explain_input
from inference.loading import load_network
from inference.networks.backbones import TORCHVISION_BACKBONES
from inference.networks.classifier import ImageClassifier
from inference.registry import ModelSpec, Registry, default_models_dir
from inference.verify import dummy_input


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(call: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall seconds of ``call`` after two warm-up calls."""
    for _ in range(2):
        call()
    _sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _batched(inputs: tuple[torch.Tensor, ...], batch: int) -> tuple[torch.Tensor, ...]:
    return tuple(x.expand(batch, *x.shape[1:]).contiguous() for x in inputs)


def speed(
    network: torch.nn.Module,
    inputs: tuple[torch.Tensor, ...],
    layer: str,
    device: torch.device,
    batch: int,
    repeats: int,
    explained: int = 0,
) -> dict[str, float]:
    """Items per second: forward at batch 1 and ``batch``, forward + Grad-CAM at batch 1.

    Grad-CAM explains ``inputs[explained]`` (the spec's ``outputs.heatmap.input``).
    """
    network = network.to(device).eval()
    single = tuple(x.to(device) for x in inputs)
    many = _batched(single, batch)

    def forward(tensors: tuple[torch.Tensor, ...]) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return network(*tensors)

        return call

    def explain() -> object:  # one pass: the outputs and the map, as run_model does
        return explain_input(network, single, layer, explained)

    row = {"forward_1_per_s": 1.0 / _median_seconds(forward(single), device, repeats)}
    if batch > 1:
        _reset_peak(device)
        seconds = _median_seconds(forward(many), device, repeats)
        row[f"forward_{batch}_per_s"] = batch / seconds
        row.update(_peak(device, f"forward_{batch}_peak_mib"))
    _reset_peak(device)
    row["forward_gradcam_1_per_s"] = 1.0 / _median_seconds(explain, device, repeats)
    row.update(_peak(device, "forward_gradcam_1_peak_mib"))
    return row


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device, name: str) -> dict[str, float]:
    """``{name: peak GPU memory allocated since the last reset, MiB}`` (weights included); {}
    on the CPU."""
    if device.type != "cuda":
        return {}
    return {name: torch.cuda.max_memory_allocated(device) / 2**20}


def overhead(
    spec: ModelSpec, network: torch.nn.Module, device: torch.device, repeats: int
) -> dict[str, float | str]:
    """``run_model`` on a phantom study against forward + Grad-CAM alone; overhead in percent."""
    from inference.runner import run_model
    from phantom.study import write_phantom_study

    with tempfile.TemporaryDirectory() as folder:
        paths, _ = write_phantom_study(Path(folder), seed=3, malignant=True)
        try:
            study = _median_seconds(
                lambda: run_model(spec, network, paths, device), device, repeats
            )
        except Exception as error:  # noqa: BLE001 - a benchmark reports, it does not stop
            return {"error": f"{type(error).__name__}: {error}"}
    inputs = tuple(x.to(device) for x in dummy_input(spec))

    def bare() -> object:  # one pass: the outputs and the map, as run_model does
        return explain_input(network, inputs, spec.outputs.heatmap.layer, spec.explained_index)

    alone = _median_seconds(bare, device, repeats)
    return {
        "run_model_s": study,
        "forward_gradcam_s": alone,
        "overhead_percent": 100.0 * (study - alone) / alone,
    }


def _devices() -> list[torch.device]:
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def _print(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}\n")
    if not rows:
        print("(none)")
        return
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        cells = [
            f"{row[k]:.3g}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys
        ]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--size", type=int, default=224, help="input size of the backbone table")
    parser.add_argument("--batch", type=int, default=32, help="batch of the CUDA figures")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-backbones", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    registry = Registry.load(args.models_dir or default_models_dir())
    models, backbones, overheads = [], [], []
    for device in _devices():
        batch = args.batch if device.type == "cuda" else 1
        for spec in registry.specs():
            network = load_network(spec, device)
            row = speed(
                network,
                dummy_input(spec),
                spec.outputs.heatmap.layer,
                device,
                batch,
                args.repeats,
                spec.explained_index,
            )
            models.append(
                {
                    "device": device.type,
                    "model": spec.ref,
                    "family": spec.family.value,
                    "size": spec.input_size,
                    **row,
                }
            )
            if not args.skip_overhead:
                overheads.append(
                    {
                        "device": device.type,
                        "model": spec.ref,
                        **overhead(spec, network, device, args.repeats),
                    }
                )
        if not args.skip_backbones:
            for name in TORCHVISION_BACKBONES:
                network = ImageClassifier(name, in_channels=1)
                x = (torch.randn(1, 1, args.size, args.size),)
                row = speed(network, x, network.gradcam_layer, device, batch, args.repeats)
                backbones.append(
                    {"device": device.type, "backbone": name, "size": args.size, **row}
                )
    _print("Registered models (items/s)", models)
    _print(f"Image backbones at {args.size}x{args.size}, random weights (images/s)", backbones)
    _print("Per-study overhead: run_model vs forward + Grad-CAM", overheads)
    if args.json:
        args.json.write_text(
            json.dumps({"models": models, "backbones": backbones, "overhead": overheads}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
