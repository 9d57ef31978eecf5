"""Whether the configured compute device can run here, checked before a process takes work."""

from __future__ import annotations

from kernel.errors import DeviceUnavailable


def check_device(device: str) -> None:
    """Raise :class:`DeviceUnavailable` when ``device`` (``cpu``, ``cuda``, ``cuda:N``) names a
    GPU torch cannot use on this host; the CPU always passes and torch is then not imported."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"device {device!r}: torch {torch.__version__} finds no usable CUDA device on this "
            "host (no NVIDIA GPU, or no driver for it); set LNM_DEVICE=cpu or install the driver"
        )
    index = torch.device(device).index
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise DeviceUnavailable(f"device {device!r}: this host has {count} CUDA device(s)")
