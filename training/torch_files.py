"""Durable torch.save: model weights, checkpoints and encoders written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from kernel.spool import fsync_dir


def save_atomically(payload: object, path: Path) -> None:
    """``torch.save`` ``payload`` as ``path``, whole or not at all.

    It is saved to ``STEM.tmp`` beside ``path`` (torch names the archive inside after the file's
    stem, so the bytes equal a direct save to ``path``), fsynced, renamed over ``path``, and the
    folder fsynced. A reader sees the old file or the new one; on an error ``path`` is left as
    it was and the temporary file is removed.
    """
    temporary = path.with_suffix(".tmp")
    try:
        torch.save(payload, temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)
