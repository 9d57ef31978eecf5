"""Login throttling of parallel tries: right passwords all pass, guesses run no faster.

The back-off schedule runs on a frozen clock, so a key that waits keeps waiting whatever the
machine's speed; no assertion depends on how long anything takes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from itsdangerous import TimestampSigner

from web.auth import Authenticator, Throttled
from web.passwords import WebUsers, hash_password
from web.throttle import LoginThrottle, login_keys

USER, PASSWORD = "admin", "correct horse"
ENTRY = f"{USER}:{hash_password(PASSWORD)}"
PARALLEL = 16


@dataclass(frozen=True)
class CountingUsers(WebUsers):
    """WebUsers that count the password checks (scrypt) they run."""

    runs: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, name: str, password: str) -> bool:
        with self.lock:
            self.runs[password] += 1
        return super().check(name, password)


def _authenticator() -> tuple[Authenticator, CountingUsers]:
    """Checks counted; a key that waits waits 600 s on a clock that stands still."""
    users = CountingUsers(WebUsers.parse([ENTRY]).hashes)
    throttle = LoginThrottle(base_seconds=600, clock=lambda: 1000.0)
    return Authenticator(users, TimestampSigner("test-secret"), 3600, throttle=throttle), users


def _in_parallel(count: int, attempt: Callable[[int], str]) -> Counter[str]:
    """``attempt(i)`` in ``count`` threads released together; the outcomes counted."""
    outcomes, lock, start = Counter[str](), threading.Lock(), threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        outcome = attempt(index)
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _try(authenticator: Authenticator, client: str, password: str) -> str:
    try:
        return "accepted" if authenticator.check_password(client, USER, password) else "refused"
    except Throttled as exc:
        return "busy" if getattr(exc, "busy", False) else "throttled"


def test_throttle_parallel_right_passwords_all_accepted_none_throttled() -> None:
    authenticator, users = _authenticator()
    outcomes = _in_parallel(PARALLEL, lambda _i: _try(authenticator, "10.0.0.1", PASSWORD))
    assert outcomes == {"accepted": PARALLEL}
    assert users.runs[PASSWORD] == PARALLEL  # each one was checked, none refused unchecked


def test_throttle_parallel_guesses_run_no_more_checks_than_one_after_another() -> None:
    authenticator, users = _authenticator()
    outcomes = _in_parallel(PARALLEL, lambda i: _try(authenticator, "10.0.0.1", f"guess {i}"))
    free = (
        authenticator.throttle.free_failures + 1
    )  # the same guesses sent in turn: 4 before a wait
    assert outcomes == {"refused": free, "throttled": PARALLEL - free}
    assert sum(users.runs.values()) == free
    assert _try(authenticator, "10.0.0.1", PASSWORD) == "throttled"  # the key waits after them


def test_throttle_parallel_guesses_from_many_clients_stop_at_the_users_limit() -> None:
    authenticator, users = _authenticator()
    outcomes = _in_parallel(PARALLEL, lambda i: _try(authenticator, f"10.0.1.{i}", f"guess {i}"))
    free = authenticator.throttle.free_failures + 1
    assert outcomes == {"refused": free, "throttled": PARALLEL - free}
    assert sum(users.runs.values()) == free


def test_throttle_try_behind_checks_that_never_end_is_refused_busy_not_throttled() -> None:
    throttle = LoginThrottle(free_failures=0, patience_seconds=0.05, clock=lambda: 0.0)
    keys = login_keys("10.0.0.1", USER)
    assert throttle.admit(keys) is None  # in flight, never finished
    refusal = throttle.admit(keys)
    assert refusal is not None and refusal.busy
    throttle.finished(keys, accepted=True)
    assert throttle.admit(keys) is None


def test_throttle_success_clears_failures_but_keeps_other_checks_in_flight() -> None:
    throttle = LoginThrottle(free_failures=1, patience_seconds=0.05, clock=lambda: 0.0)
    keys = login_keys("10.0.0.1", USER)
    assert throttle.admit(keys) is None and throttle.admit(keys) is None  # 0 + 1 <= 1
    throttle.finished(keys, accepted=True)
    refusal = throttle.admit(keys)  # one still in flight; another may start (0 + 1 <= 1)
    assert refusal is None
    throttle.finished(keys, accepted=False)
    throttle.finished(keys, accepted=False)  # two failures: past the free one, a wait
    assert throttle.retry_after(keys) > 0


@pytest.mark.parametrize("max_entries", [1, 3])
def test_throttle_table_bounded_never_drops_a_key_in_flight(max_entries: int) -> None:
    throttle = LoginThrottle(max_entries=max_entries, clock=lambda: 0.0)
    busy = login_keys("10.0.0.1", USER)
    assert throttle.admit(busy) is None
    for n in range(20):
        keys = login_keys(f"10.0.2.{n}", f"user{n}")
        assert throttle.admit(keys) is None
        throttle.finished(keys, accepted=False)
    assert len(throttle._table) <= max(max_entries, len(busy))
    assert all(throttle._table[key].in_flight == 1 for key in busy)


def _clocked() -> tuple[Authenticator, list[float]]:
    """A key waits 600 s, doubling up to a day, on a clock the test moves."""
    now = [0.0]
    throttle = LoginThrottle(base_seconds=600, max_seconds=86400, clock=lambda: now[0])
    return Authenticator.build([ENTRY], "test-secret", 3600, throttle=throttle), now


def _checked_guesses_from_new_clients(authenticator: Authenticator, first: int) -> int:
    """Guesses from fresh addresses, one after another, until one is throttled."""
    for n in range(first, first + 10):
        if _try(authenticator, f"203.0.113.{n}", f"guess {n}") == "throttled":
            return n - first
    return 10


def test_throttle_login_elsewhere_keeps_other_clients_failures_on_the_user() -> None:
    authenticator, now = _clocked()
    assert _checked_guesses_from_new_clients(authenticator, 0) == 4  # then the user waits
    now[0] = 700.0  # the wait is over
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "accepted"  # the user (a monitor) logs in
    # the guessers' four failures still count: the next one makes the user wait again
    assert _checked_guesses_from_new_clients(authenticator, 20) == 1


def test_throttle_login_forgives_the_clients_own_failures_on_the_user() -> None:
    authenticator, _now = _clocked()
    assert [_try(authenticator, "10.0.0.2", "typo") for _ in range(3)] == ["refused"] * 3
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "accepted"
    assert _checked_guesses_from_new_clients(authenticator, 0) == 4  # as if no typo had been made


def test_throttle_other_clients_failures_forgotten_after_a_quiet_forget_after() -> None:
    authenticator, now = _clocked()
    assert _checked_guesses_from_new_clients(authenticator, 0) == 4
    quiet = authenticator.throttle.forget_after
    now[0] = quiet - 1  # the wait is over, the failures are not forgotten yet
    assert _checked_guesses_from_new_clients(authenticator, 20) == 1
    now[0] = 2 * quiet  # a quiet forget_after since the last failure
    assert _checked_guesses_from_new_clients(authenticator, 40) == 4


@pytest.mark.parametrize(
    ("base", "most", "free"), [(1.0, 300.0, 3), (0.01, 300.0, 3), (600.0, 600.0, 0), (5.0, 7.0, 10)]
)
def test_throttle_forget_after_no_shorter_than_its_failures_at_the_slowest_pace(
    base: float, most: float, free: int
) -> None:
    """Forgetting never speeds guessing up: the failures a fresh key allows before its wait
    reaches ``max_seconds`` would take at least ``forget_after`` at that wait."""
    now = [0.0]
    throttle = LoginThrottle(base, most, free_failures=free, clock=lambda: now[0])
    keys = login_keys("10.0.0.1", USER)
    failures = 0
    while True:
        assert throttle.admit(keys) is None
        throttle.finished(keys, accepted=False)
        failures += 1
        wait = throttle.retry_after(keys)
        if wait >= most:
            break
        now[0] += wait
    assert failures * most <= throttle.forget_after


def test_throttle_user_kept_waiting_elsewhere_still_logs_in_from_a_known_client() -> None:
    authenticator, _now = _clocked()
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "accepted"  # the engineer's workstation
    assert (
        _checked_guesses_from_new_clients(authenticator, 0) == 4
    )  # someone keeps the user waiting
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "accepted"
    outcomes = _in_parallel(PARALLEL, lambda _i: _try(authenticator, "10.0.0.2", PASSWORD))
    assert outcomes == {"accepted": PARALLEL}  # a monitor and a browser there, together
    assert _try(authenticator, "10.0.0.3", PASSWORD) == "throttled"  # a client not known waits
    assert _checked_guesses_from_new_clients(authenticator, 20) == 0  # and so do guessers


def test_throttle_known_client_gets_one_check_while_the_user_waits_then_waits_too() -> None:
    authenticator, _now = _clocked()
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "accepted"
    assert _checked_guesses_from_new_clients(authenticator, 0) == 4
    outcomes = _in_parallel(PARALLEL, lambda i: _try(authenticator, "10.0.0.2", f"guess {i}"))
    assert outcomes == {"refused": 1, "throttled": PARALLEL - 1}  # a guesser behind its address
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "throttled"  # no longer known


def test_throttle_client_known_for_known_seconds_after_its_last_login() -> None:
    now = [0.0]
    throttle = LoginThrottle(base_seconds=600, known_seconds=100, clock=lambda: now[0])
    authenticator = Authenticator.build([ENTRY], "test-secret", 3600, throttle=throttle)
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "accepted"
    assert _checked_guesses_from_new_clients(authenticator, 0) == 4  # the user waits 600 s
    now[0] = 90.0
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "accepted"  # known until 190
    now[0] = 200.0
    assert _try(authenticator, "10.0.0.2", PASSWORD) == "throttled"
