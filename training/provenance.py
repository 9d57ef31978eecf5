"""Where a training run ran: the libraries, the processor and the threads that its figures
depend on. The same command, seed and thread count gave different epochs and a pooled AUC
0.05 apart on two CPU machines, and 0.01 apart on one machine with torch held to AVX2
instead of AVX-512 (docs/results/ynet-size-cpu/), so every run records this."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import monai
import numpy as np
import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: environment variables that change which CPU kernels torch, oneDNN and MKL run
NUMERICS_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
)


def run_platform(device: str) -> dict[str, str | int | bool]:
    """The libraries' versions, the CPU (model, torch's vector capability, whether oneDNN
    runs, the kernel-choosing variables set, torch's threads) and, on CUDA, the GPU that a run
    on ``device`` uses."""
    facts: dict[str, str | int | bool] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "os": sys.platform,
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        **{name.lower(): os.environ[name] for name in NUMERICS_VARIABLES if name in os.environ},
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(torch.device(device))
        facts["cuda"] = str(torch.version.cuda)
    return facts
