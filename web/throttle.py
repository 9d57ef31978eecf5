"""Login throttling: after a few failures a client, and a user name, wait before the next try.

Each failure past :attr:`LoginThrottle.free_failures` doubles the wait (from
``base_seconds`` up to ``max_seconds``). A refused try costs no password check (scrypt), so
a flood of bad logins cannot starve the server. Every try counts on three keys (see
:func:`login_keys`): its client, the (client, user) pair and the user. A success clears the
client's and the pair's failures but takes only the pair's own failures off the user's: the
user's count is the ceiling on guessing one name from many addresses, and a login elsewhere
must not reset it. A key's failures are forgotten after :attr:`LoginThrottle.forget_after`
seconds without one (long enough not to speed guessing up). The table is bounded (oldest idle
entries go first).

While a user name waits (someone somewhere failed for it), a client that logged in as that
user within ``known_seconds`` (the session lifetime) still tries, one check at a time, held
only by its own client and pair keys; its first failure ends that. So one address cannot keep
a user out of the clients the user works from, while the user's count still paces guesses
from everywhere else.

Parallel tries are admitted as if each one still in flight had failed: a key with ``count``
failures and ``in_flight`` checks running admits another only when no check is running or
``count + in_flight <= free_failures`` (the next try is due at once even if all of them
fail). Otherwise the try waits (up to ``patience_seconds``) for the running checks to end
instead of being refused: correct credentials sent in parallel all pass, while parallel
guesses run no more checks than the same guesses sent one after another would.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import NamedTuple


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    in_flight: int = 0
    last_failure: float = 0.0


@dataclass(frozen=True)
class Refusal:
    """Why a try may not run its password check now, and when to come back."""

    retry_after: float
    #: True: the checks in flight did not end within the patience (the server is loaded);
    #: False: a key waits after failed logins
    busy: bool = False


@dataclass
class LoginThrottle:
    """Per-key failure counts, checks in flight, and the time each key may try again.

    ``clock`` drives the back-off schedule; ``patience_seconds`` is real time that an
    admitted-later try waits for the checks in flight on its keys.
    """

    base_seconds: float = 1.0
    max_seconds: float = 300.0
    free_failures: int = 3
    max_entries: int = 10_000
    patience_seconds: float = 15.0
    #: how long a client stays known for a user after a successful login (see _exempt)
    known_seconds: float = 8 * 3600.0
    clock: Callable[[], float] = time.monotonic
    _table: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)
    _known: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def retry_after(self, keys: Sequence[str]) -> float:
        """Seconds until every one of ``keys`` may try again (0: now)."""
        with self._changed:
            return self._wait(keys, self.clock())

    def admit(self, keys: LoginKeys) -> Refusal | None:
        """Reserve one password check for ``keys``; ``None``: admitted, call :meth:`finished`.

        A key waiting after failures refuses at once; a key whose checks in flight could, by
        failing, make this try due later holds it until they end (at most
        ``patience_seconds``, then a busy refusal). While only the user waits, a known
        client (see :meth:`_exempt`) tries anyway, one check at a time.
        """
        deadline = time.monotonic() + self.patience_seconds
        with self._changed:
            while True:
                now = self.clock()
                self._forget(keys, now)
                exempt = self._exempt(keys, now)
                gated = (keys.client, keys.pair) if exempt else keys
                wait = self._wait(gated, now)
                if wait > 0:
                    return Refusal(wait)
                ready = all(self._may_start(key) for key in gated)
                if ready and not (exempt and self._in_flight(keys.pair)):
                    for key in keys:
                        self._entry(key).in_flight += 1
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Refusal(self.base_seconds, busy=True)
                self._changed.wait(remaining)

    def _exempt(self, keys: LoginKeys, now: float) -> bool:
        """True when the user waits but this client is known for this user.

        A client is known for ``known_seconds`` after its last try for the user succeeded,
        and no longer after a failed one: whoever keeps a user name waiting cannot keep out
        the clients it is used from, and a guesser sharing such a client's address gets one
        check before it waits with everyone else.
        """
        known = self._known.get(keys.pair, -math.inf) > now
        return known and self._wait((keys.user,), now) > 0

    def finished(self, keys: LoginKeys, accepted: bool) -> None:
        """The check admitted by :meth:`admit` ended; a failure counts on every key.

        A success clears the client's and the pair's failures, and takes only this pair's own
        failures off the user's count: failures from other clients stay, so a user who logs
        in (a monitor every few seconds) does not hand guessers elsewhere a fresh allowance.
        """
        now = self.clock()
        with self._changed:
            for key in keys:
                entry = self._entry(key)
                entry.in_flight = max(0, entry.in_flight - 1)
            if accepted:
                self._known.pop(keys.pair, None)
                self._known[keys.pair] = now + self.known_seconds
                while len(self._known) > self.max_entries:
                    self._known.popitem(last=False)
                user = self._entry(keys.user)
                user.count = max(0, user.count - self._entry(keys.pair).count)
                if user.count <= self.free_failures:
                    user.blocked_until = 0.0
                for key in keys:
                    entry = self._entry(key)
                    if key != keys.user:
                        entry.count, entry.blocked_until = 0, 0.0
                    if not entry.count and not entry.in_flight:
                        del self._table[key]
            else:
                self._known.pop(keys.pair, None)
                for key in keys:
                    self._failed(self._entry(key), now)
            self._trim()
            self._changed.notify_all()

    @property
    def forget_after(self) -> float:
        """Seconds without a failure after which a key's failures are forgotten.

        As long as the failures a fresh key allows before its wait reaches ``max_seconds``
        would take at that wait, so forgetting never lets guesses run faster than the
        ``max_seconds`` pace (300 s: 14 failures, 70 min).
        """
        doublings = max(0, math.ceil(math.log2(self.max_seconds / self.base_seconds))) + 1
        return self.max_seconds * (self.free_failures + 1 + doublings)

    def _forget(self, keys: Sequence[str], now: float) -> None:
        for key in keys:
            entry = self._table.get(key)
            if entry and not entry.in_flight and now - entry.last_failure >= self.forget_after:
                del self._table[key]

    def _failed(self, entry: _Failures, now: float) -> None:
        entry.count += 1
        entry.last_failure = now
        extra = entry.count - self.free_failures
        if extra > 0:
            wait = min(self.max_seconds, self.base_seconds * 2 ** min(extra - 1, 30))
            entry.blocked_until = now + wait

    def _wait(self, keys: Sequence[str], now: float) -> float:
        waits = [entry.blocked_until - now for key in keys if (entry := self._table.get(key))]
        return max([0.0, *waits])

    def _in_flight(self, key: str) -> int:
        entry = self._table.get(key)
        return entry.in_flight if entry else 0

    def _may_start(self, key: str) -> bool:
        entry = self._table.get(key)
        return (
            entry is None
            or not entry.in_flight
            or (entry.count + entry.in_flight <= self.free_failures)
        )

    def _entry(self, key: str) -> _Failures:
        """The key's entry, created if need be, moved to the newest end of the table."""
        entry = self._table.pop(key, None) or _Failures()
        self._table[key] = entry
        return entry

    def _trim(self) -> None:
        """Drop the oldest entries beyond ``max_entries`` (never one with a check in flight)."""
        excess = len(self._table) - self.max_entries
        if excess > 0:
            idle = (key for key, entry in self._table.items() if not entry.in_flight)
            for key in list(islice(idle, excess)):
                del self._table[key]


class LoginKeys(NamedTuple):
    """The throttle keys of one login attempt: its client, the (client, user) pair, the user."""

    client: str
    pair: str
    user: str


def login_keys(client: str, user: str) -> LoginKeys:
    """The throttle keys of one login attempt."""
    name = user[:64]
    return LoginKeys(f"client:{client}", f"pair:{(client, name)!r}", f"user:{name}")
