"""Login throttling: PIN checks are counted per agent id and per client address.

``max_failures`` failures within ``window`` seconds lock the key for ``lockout`` seconds, doubling
with every further lockout up to ``max_lockout``. While a key is locked, login attempts for it are
refused without checking the PIN, so guessing cannot go on in the background. Time is passed in
(``time.monotonic()`` in the server), which keeps the rules testable with plain numbers.

A check takes a slot of each of its keys (:meth:`LoginLimiter.acquire`) *before* the PIN is
checked, and gives it back after (:meth:`LoginLimiter.release`). Checks in flight count against
the limit like failures, so guesses sent at once over many connections cannot all be checked
while the first ones are still running: at most ``max_failures`` PINs are ever checked for an
agent id before it locks.

PINs are checked on one thread of their own (:func:`check_pin`). scrypt takes 16 MiB a check, and
the C library keeps that much per thread that ever ran one: checks spread over the shared worker
threads pinned about 100 MB for good after a burst of logins; one thread pins 16 MiB. It also keeps
a flood of logins from taking the threads the customer look-ups need.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from callcenter.security import hash_pin, verify_pin

# Checked when the agent id is unknown, so both answers take the same time.
DUMMY_PIN_HASH = hash_pin("not-a-pin")

_checker: ThreadPoolExecutor | None = None
_checker_lock = threading.Lock()


async def check_pin(pin: str, stored: str) -> bool:
    """``verify_pin`` on the PIN thread."""
    global _checker
    if _checker is None:
        with _checker_lock:
            if _checker is None:
                _checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cti-pin")
    return await asyncio.get_running_loop().run_in_executor(_checker, verify_pin, pin, stored)


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int = 5
    """Failed logins of one agent id within ``window`` before it is locked (checks in flight count too)."""
    max_failures_per_address: int = 20
    """Failed logins from one client address (any agent ids) within ``window`` before it is locked."""
    window: float = 300.0
    lockout: float = 60.0
    max_lockout: float = 900.0
    failure_delay: float = 0.5
    """Seconds before an ``auth_failed`` reply."""
    max_failures_per_connection: int = 10
    """Failed logins on one connection before the server closes it."""
    busy_retry_after: float = 2.0
    """``retry_after`` when the slots are taken by checks still running (their outcome decides the lock)."""


@dataclass(slots=True)
class _Key:
    failures: deque = field(default_factory=deque)
    pending: int = 0
    """Checks in flight."""
    locked_until: float = 0.0
    lockouts: int = 0
    last_seen: float = 0.0


class LoginLimiter:
    """Counts failures per key (``"agent:1001"``, ``"addr:10.0.0.7"``) and locks keys that fail too often.

    Keys are kept in the order they were last used and forgotten once quiet: after ``window``
    without a failure, or, for a key that was locked, after ``max(window, max_lockout)`` (so the
    doubling lockouts are not reset by waiting one out). Never more than ``MAX_KEYS``; when full,
    the oldest keys that are neither locked nor checking go first.
    """

    MAX_KEYS = 10_000
    PRUNE_EVERY = 1.0
    """Seconds between two passes of :meth:`prune` from :meth:`maybe_prune`."""

    def __init__(self, policy: LoginPolicy | None = None) -> None:
        self.policy = policy or LoginPolicy()
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._pruned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._keys)

    def _limit(self, key: str) -> int:
        return self.policy.max_failures_per_address if key.startswith("addr:") else self.policy.max_failures

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - now)

    def failures(self, key: str, now: float) -> int:
        entry = self._keys.get(key)
        if entry is None:
            return 0
        self._expire(entry, now)
        return len(entry.failures)

    def in_flight(self) -> int:
        """Checks that have a slot and have not given it back."""
        return sum(entry.pending for entry in self._keys.values())

    def acquire(self, keys: Iterable[str], now: float) -> float:
        """Take a check slot of every key, or of none: 0 when taken, else the seconds to wait.

        Synchronous on purpose: called before the first ``await`` of a login, so two logins on
        one event loop cannot both see the last free slot.
        """
        keys = tuple(keys)
        wait = 0.0
        for key in keys:
            entry = self._keys.get(key)
            if entry is None:
                continue
            self._expire(entry, now)
            if entry.locked_until > now:
                wait = max(wait, entry.locked_until - now)
            elif len(entry.failures) + entry.pending >= self._limit(key):
                wait = max(wait, self.policy.busy_retry_after)
        if wait > 0:
            return wait
        for key in keys:
            entry = self._entry(key, now)
            entry.pending += 1
            entry.last_seen = now
        return 0.0

    def release(self, keys: Iterable[str], now: float) -> None:
        """Give back the slots :meth:`acquire` took; count the outcome with :meth:`failure` or :meth:`success`."""
        for key in keys:
            entry = self._keys.get(key)
            if entry is not None and entry.pending > 0:
                entry.pending -= 1
                entry.last_seen = max(entry.last_seen, now)

    def failure(self, key: str, now: float) -> float:
        """Count one failure; returns the lockout it caused (0 when the key is not locked by it)."""
        entry = self._entry(key, now)
        entry.last_seen = now
        self._expire(entry, now)
        entry.failures.append(now)
        if len(entry.failures) < self._limit(key):
            return 0.0
        lockout = min(self.policy.max_lockout, self.policy.lockout * (2 ** entry.lockouts))
        entry.lockouts += 1
        entry.locked_until = now + lockout
        entry.failures.clear()
        return lockout

    def success(self, key: str) -> None:
        """Forget the key's failures and lockouts; checks of other logins still in flight keep their slots."""
        entry = self._keys.get(key)
        if entry is None:
            return
        if entry.pending:
            entry.failures.clear()
            entry.locked_until = 0.0
            entry.lockouts = 0
        else:
            del self._keys[key]

    def maybe_prune(self, now: float) -> None:
        """:meth:`prune`, at most once every ``PRUNE_EVERY`` seconds (cheap enough to call on every close)."""
        if now - self._pruned_at >= self.PRUNE_EVERY:
            self.prune(now)

    def prune(self, now: float) -> None:
        """Forget the keys that are quiet (see the class); the rest stay in the order they were used."""
        self._pruned_at = now
        for key in [k for k, e in self._keys.items() if self._quiet(e, now)]:
            del self._keys[key]

    def _quiet(self, entry: _Key, now: float) -> bool:
        if entry.pending or entry.locked_until > now:
            return False
        memory = max(self.policy.window, self.policy.max_lockout) if entry.lockouts else self.policy.window
        return entry.last_seen < now - memory

    def _entry(self, key: str, now: float) -> _Key:
        entry = self._keys.get(key)
        if entry is None:
            if len(self._keys) >= self.MAX_KEYS:
                self._make_room(now)
            entry = self._keys[key] = _Key(last_seen=now)
        self._keys.move_to_end(key)
        return entry

    def _make_room(self, now: float) -> None:
        self.prune(now)
        if len(self._keys) < self.MAX_KEYS:
            return
        # Oldest first, but never a lock or a check in flight: a flood of new keys must not free a locked agent.
        for key in [k for k, e in self._keys.items() if not e.pending and e.locked_until <= now]:
            del self._keys[key]
            if len(self._keys) < self.MAX_KEYS * 9 // 10:
                return
        while len(self._keys) >= self.MAX_KEYS:  # all locked or checking: the bound still holds
            self._keys.popitem(last=False)

    def _expire(self, entry: _Key, now: float) -> None:
        horizon = now - self.policy.window
        while entry.failures and entry.failures[0] < horizon:
            entry.failures.popleft()
