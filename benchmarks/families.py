"""Does each family use its extra input? Train the B-mode-only, dual, video and CEUS families with
the CLI on phantom studies sent through a running node, evaluate each on other phantom studies,
and test every multi-input family against the B-mode-only model with DeLong's test.

    python benchmarks/families.py --work /tmp/families [--train 48 --test 32 --device cpu]

Every step is an `lnm-node` command (phantom, serve, send, labels import, dataset build
--from-node, train --package, dataset build --dicom-folder, evaluate); the figures are read
from the evaluations' cases.csv. In about half of the phantom studies B-mode alone is ambiguous
and the sign sits in Doppler, cine or CEUS (phantom/node.py), so a family that uses its extra
input should beat B-mode alone. Synthetic data only: this says nothing about patients.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.metrics import auc_with_ci, classification_summary, delong_test

VERSION = "1.0.0"
#: key -> (family label, network, backbone, frames, epochs) of `lnm-node networks`
MODELS = {
    "bench-bmode": ("image (B-mode only)", "classifier", "resnet10-w16", None, 10),
    "bench-dual": ("dual B-mode + Doppler", "dual-crossattn", "resnet10-w16", None, 10),
    "bench-video": ("video (cine)", "tin", "resnet10-w16", 16, 4),
    "bench-ceus": ("2D + CEUS key frames", "ceus-fusion", "resnet10-w16", 5, 10),
}
BASELINE = "bench-bmode"


def lnm(*args: str, env: dict[str, str]) -> str:
    """Run one `lnm-node` command (this checkout's), echo and return its output."""
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"lnm-node {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    print(f"[{time.monotonic() - started:6.1f} s] lnm-node {' '.join(args[:2])} ...", flush=True)
    return out.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"the node did not listen on {port} within {timeout:.0f} s")


def read_cases(path: Path) -> dict[str, tuple[int, float]]:
    with path.open() as handle:
        return {r["unit"]: (int(r["malignant"]), float(r["probability"]))
                for r in csv.DictReader(handle)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--train", type=int, default=40, help="training studies (sent to the node)")
    parser.add_argument("--test", type=int, default=32, help="held-out studies")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epoch-scale", type=float, default=1.0, help="times each model's epochs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work, home = args.work.absolute(), args.work.absolute() / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LNM_DEFAULT_MODEL": "none-yet"}
    started = time.monotonic()
    if not (work / "train.csv").is_file():
        lnm("phantom", str(work / "train"), "--studies", str(args.train), "--seed", "5000",
            "--pathology-csv", str(work / "train.csv"), env=env)  # fmt: skip
        lnm("phantom", str(work / "test"), "--studies", str(args.test), "--seed", "9000",
            "--pathology-csv", str(work / "test.csv"), env=env)  # fmt: skip
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    with (work / "node.log").open("ab") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--home", str(home), "--port", str(port),
             "--pacs", f"PACS@127.0.0.1:{free_port()}", "--quiet-seconds", "1"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, 120)
        lnm("send", str(work / "train"), "--to", f"LNMNODE@127.0.0.1:{port}", env=env)
        lnm("labels", "import", str(work / "train.csv"), "--home", str(home), env=env)
        for key, (_, network, backbone, frames, epochs) in MODELS.items():
            draft = ["--network", network, "--backbone", backbone, "--size", "64"]
            draft += ["--frames", str(frames)] if frames else []
            dataset, run = work / f"ds-{key}", work / f"run-{key}"
            if not (home / "models" / f"{key}-{VERSION}").is_dir():
                lnm("dataset", "build", "--from-node", "--model", key, *draft, "--out",
                    str(dataset), "--folds", str(args.folds), "--home", str(home), env=env)  # fmt: skip
                train_started = time.monotonic()
                epochs = max(1, round(epochs * args.epoch_scale))
                lnm("train", key, str(dataset), *draft, "--out", str(run), "--epochs",
                    str(epochs), "--batch-size", "8", "--device", args.device,
                    "--package", VERSION, "--home", str(home), env=env)  # fmt: skip
                (work / f"train-{key}.s").write_text(f"{time.monotonic() - train_started:.0f}\n")
            lnm("dataset", "build", "--dicom-folder", str(work / "test"), "--labels",
                str(work / "test.csv"), "--model", key, "--out", str(work / f"test-{key}"),
                "--folds", "2", "--home", str(home), env=env)  # fmt: skip
            lnm("evaluate", f"{key}@{VERSION}", str(work / f"test-{key}"), "--out",
                str(work / f"eval-{key}"), "--home", str(home), env=env)  # fmt: skip
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=120)
    cases = {key: read_cases(work / f"eval-{key}" / "cases.csv") for key in MODELS}
    common = sorted(set.intersection(*(set(c) for c in cases.values())))
    y = np.array([cases[BASELINE][u][0] for u in common])
    rows = []
    for key, (label, network, backbone, _, _) in MODELS.items():
        p = np.array([cases[key][u][1] for u in common])
        auc, low, high = auc_with_ci(y, p)
        threshold = json.loads((home / "models" / f"{key}-{VERSION}" / "spec.json").read_text())[
            "threshold"
        ]
        summary = classification_summary(y, p, threshold)
        versus = "baseline"
        if key != BASELINE:
            base = np.array([cases[BASELINE][u][1] for u in common])
            test = delong_test(y, p, base)
            versus = f"{test['auc_a'] - test['auc_b']:+.3f}, p = {test['p_value']:.3g}"
        seconds = (work / f"train-{key}.s").read_text().strip()
        rows.append(f"| {label} | `{network}` ({backbone}) | {len(common)} | {auc:.3f} "
                    f"({low:.3f}-{high:.3f}) | {summary['accuracy']:.3f} | "
                    f"{summary['sensitivity']:.3f} | {summary['specificity']:.3f} | {versus} | "
                    f"{seconds} |")  # fmt: skip
    print()
    print("| family (synthetic phantom) | network | test studies | AUC (95% CI) | accuracy | "
          "sensitivity | specificity | AUC vs B-mode only (DeLong) | training s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"\n{args.train} training studies through the node, {args.test} test studies, "
          f"{args.folds}-fold CV, epochs x{args.epoch_scale:g}, device {args.device}; "
          f"{time.monotonic() - started:.0f} s in all")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
