"""GPU memory in use on the node's CUDA device (device-wide, so the worker's use shows too)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from kernel.settings import Settings


@dataclass(frozen=True)
class GpuMemory:
    device: str
    used_bytes: int
    total_bytes: int


def gpu_memory(settings: Settings) -> list[GpuMemory]:
    """Used and total memory of each CUDA device, when the node runs on CUDA and torch sees it.

    Empty on a CPU node: torch (and a CUDA context) is not even loaded then.
    """
    if not settings.device.startswith("cuda") or importlib.util.find_spec("torch") is None:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    result = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        result.append(GpuMemory(f"cuda:{index}", int(total - free), int(total)))
    return result
