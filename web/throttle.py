"""Login throttling: after a few failures a client, and a user name, wait before the next try.

Each failure past :attr:`LoginThrottle.free_failures` doubles the wait (from
``base_seconds`` up to ``max_seconds``); a success clears it. A refused try costs no
password check (scrypt), so a flood of bad logins cannot starve the server. Keys are
``client:<address>`` and ``user:<name>``; the table is bounded (oldest entries go first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Per-key failure counts and the time each key may try again."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0
    free_failures: int = 3
    max_entries: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _table: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until every one of ``keys`` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [entry.blocked_until - now for key in keys if (entry := self._table.get(key))]
        return max([0.0, *waits])

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                entry = self._table.pop(key, None) or _Failures()
                entry.count += 1
                extra = entry.count - self.free_failures
                if extra > 0:
                    wait = min(self.max_seconds, self.base_seconds * 2 ** min(extra - 1, 30))
                    entry.blocked_until = now + wait
                self._table[key] = entry
                while len(self._table) > self.max_entries:
                    self._table.popitem(last=False)

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._table.pop(key, None)


def login_keys(client: str, user: str) -> tuple[str, str]:
    """The throttle keys of one login attempt."""
    return f"client:{client}", f"user:{user[:64]}"
