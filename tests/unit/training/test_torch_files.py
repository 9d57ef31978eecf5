"""save_atomically: the same bytes as a direct torch.save, and nothing half-written."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from training.torch_files import save_atomically


def test_bytes_equal_a_direct_save(tmp_path: Path) -> None:
    """Re-packaging keeps a shipped weights file's sha256: torch names the archive inside after
    the file, so the temporary file must not change that name."""
    state = {"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    direct = tmp_path / "direct" / "weights.pt"
    direct.parent.mkdir()
    torch.save(state, direct)
    atomic = tmp_path / "weights.pt"
    save_atomically(state, atomic)
    assert atomic.read_bytes() == direct.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["direct", "weights.pt"]


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "encoder.pt"
    save_atomically({"x": torch.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="pickle"):
        save_atomically({"x": threading.Lock()}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))
