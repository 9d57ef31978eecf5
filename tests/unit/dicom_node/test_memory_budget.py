"""dicom_node/memory_budget.py: bytes in flight bound concurrency; an oversized check runs alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dicom_node.memory_budget import BudgetBusy, MemoryBudget, check_cost, frame_bytes
from phantom.us_dicom import make_us_dataset


def test_memory_budget_second_reservation_waits_until_the_first_ends() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []
    with budget.reserve(70, timeout=1):
        waiter = threading.Thread(target=lambda: _hold(budget, 50, order))
        waiter.start()
        time.sleep(0.2)
        order.append("first ends")
    waiter.join(timeout=5)
    assert order == ["first ends", "second runs"]
    assert budget.reserved == 0


def _hold(budget: MemoryBudget, nbytes: int, order: list[str]) -> None:
    with budget.reserve(nbytes, timeout=5):
        order.append("second runs")


def test_memory_budget_busy_beyond_timeout_raises_and_reserves_nothing() -> None:
    budget = MemoryBudget(100)
    with budget.reserve(100, timeout=1):
        started = time.monotonic()
        with pytest.raises(BudgetBusy, match="busy"), budget.reserve(1, timeout=0.2):
            pass
        assert time.monotonic() - started < 1
        assert budget.reserved == 100


def test_memory_budget_larger_than_total_runs_alone() -> None:
    budget = MemoryBudget(100)
    with budget.reserve(10**9, timeout=1):
        assert budget.reserved == 100  # all of it: nothing else runs beside it
    assert budget.reserved == 0


def test_frame_bytes_from_header_capped_at_frame_limit(tmp_path: Path) -> None:
    ds, _, _ = make_us_dataset(seed=1, rows=48, cols=64, rgb=True)
    path = tmp_path / "rgb.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert frame_bytes(path, 1 << 25) == 48 * 64 * 3
    assert frame_bytes(path, 1000) == 1000
    assert frame_bytes(b"not dicom", 1000) == 0
    assert check_cost(path, 5000, pixels=True, max_frame_samples=1 << 25) == 5000 + 2 * 48 * 64 * 3
    assert check_cost(path, 5000, pixels=False, max_frame_samples=1 << 25) == 5000
