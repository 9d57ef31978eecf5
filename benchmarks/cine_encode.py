"""A cine job's model and encode stages on an 87-frame JPEG cine (phantom, 480 x 640 RGB).

Times, warm (after one untimed run), median of ``--repeats``: ``run_model`` (choosing and
decoding the frames the model uses, forward and Grad-CAM) and ``build_outputs`` (SR and
heatmap from the source header and the one frame shown) with the packaged default model.

    python benchmarks/cine_encode.py [--frames 87] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import JPEGBaseline8Bit

# the project root first: this folder's inference.py would shadow the inference package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.encode.outputs import build_outputs
from inference.loading import ModelCache
from inference.registry import Registry, default_models_dir
from inference.runner import run_model
from phantom.us_dicom import make_us_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=87)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lnm-cine-") as tmp:
        path = Path(tmp) / "cine.dcm"
        ds, _, _ = make_us_dataset(
            seed=2,
            rows=480,
            cols=640,
            frames=args.frames,
            rgb=True,
            transfer_syntax=JPEGBaseline8Bit,
        )
        ds.BodyPartExamined = "BREAST"
        ds.save_as(path, enforce_file_format=True)
        spec = Registry.load(default_models_dir()).get("ynet-busi", "ynet-busi")
        network = ModelCache().get(spec, "cpu")
        infer, encode = [], []
        for attempt in range(args.repeats + 1):
            started = time.perf_counter()
            prediction = run_model(spec, network, [path], "cpu")
            inferred = time.perf_counter()
            build_outputs(prediction, pydicom.dcmread(path), job_id=1, spec=spec)
            encoded = time.perf_counter()
            if attempt:  # the first run pays for first-use work a warm worker has done
                infer.append(inferred - started)
                encode.append(encoded - inferred)
        size = path.stat().st_size / 1e6
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.frames}-frame "
        f"JPEG cine {size:.1f} MB; medians of {args.repeats}, warm"
    )
    print(
        f"run_model {statistics.median(infer):.3f} s, "
        f"build_outputs {statistics.median(encode):.3f} s"
    )


if __name__ == "__main__":
    main()
