"""A budget of bytes the receive checks may hold in memory at once, across associations.

Checking an instance reads its dataset (pixel data too, for the classes whose pixels are
checked) and decodes one frame; :func:`check_cost` estimates those bytes from the size on the
wire and a header-only peek at the image attributes. Each check reserves its cost first
(:meth:`MemoryBudget.reserve`): concurrency is bounded by bytes in flight, not by the number
of associations. A cost larger than the whole budget waits until nothing else is reserved and
then runs alone, so a large instance is still received, never next to other large ones. A
reservation not granted within its timeout raises :class:`BudgetBusy` (answered 0xA700: the
sender retries later).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from pydicom import dcmread

from kernel.errors import InvalidInput

#: a decoder holds the decoded frame and about as much again while it converts
DECODE_OVERHEAD = 2
_IMAGE_TAGS = ["Rows", "Columns", "SamplesPerPixel", "BitsAllocated"]


class BudgetBusy(InvalidInput):
    """The memory budget stayed taken for longer than the caller may wait."""


class MemoryBudget:
    """Bytes that may be reserved at once; reservations wait for each other."""

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self._reserved = 0
        self._condition = threading.Condition()

    @property
    def reserved(self) -> int:
        """Bytes reserved now."""
        with self._condition:
            return self._reserved

    @contextmanager
    def reserve(self, nbytes: int, timeout: float) -> Iterator[None]:
        """Hold ``nbytes`` (all of the budget at most) for the ``with`` block; raises
        :class:`BudgetBusy` when they are not free within ``timeout`` seconds."""
        wanted = min(max(nbytes, 0), self.total_bytes)
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._reserved + wanted > self.total_bytes:
                left = deadline - time.monotonic()
                if left <= 0 or not self._condition.wait(left):
                    if self._reserved + wanted <= self.total_bytes:
                        break
                    raise BudgetBusy(
                        f"receive memory budget busy: {wanted} bytes wanted, {self._reserved} "
                        f"of {self.total_bytes} reserved for {timeout:g} s"
                    )
            self._reserved += wanted
        try:
            yield
        finally:
            with self._condition:
                self._reserved -= wanted
                self._condition.notify_all()


def frame_bytes(source: bytes | Path, max_frame_samples: int) -> int:
    """Bytes one decoded frame takes, from a header-only peek (at most ``max_frame_samples``
    samples are counted: beyond them the checks refuse the image before decoding); 0 when the
    header does not say (the checks refuse or skip such an image without decoding)."""
    try:
        ds = dcmread(
            BytesIO(source) if isinstance(source, bytes) else source,
            stop_before_pixels=True,
            specific_tags=_IMAGE_TAGS,
        )
        samples = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1)
        width = max(1, (int(ds.get("BitsAllocated") or 8) + 7) // 8)
    except Exception:  # noqa: BLE001 (a header that does not parse is refused by the checks)
        return 0
    return min(max(samples, 0), max_frame_samples) * width


def check_cost(source: bytes | Path, size: int, pixels: bool, max_frame_samples: int) -> int:
    """Bytes the checks of one instance of ``size`` bytes hold at most: the dataset read into
    memory, and with ``pixels`` one decoded frame with the decoder's working copy."""
    if not pixels:
        return size
    return size + DECODE_OVERHEAD * frame_bytes(source, max_frame_samples)
