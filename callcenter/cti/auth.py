"""Login throttling: failed PINs are counted per agent id and per client address.

``max_failures`` failures within ``window`` seconds lock the key for ``lockout`` seconds, doubling
with every further lockout up to ``max_lockout``. While a key is locked, login attempts for it are
refused without checking the PIN, so guessing cannot go on in the background. Time is passed in
(``time.monotonic()`` in the server), which keeps the rules testable with plain numbers.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from callcenter.security import hash_pin

# Checked when the agent id is unknown, so both answers take the same time.
DUMMY_PIN_HASH = hash_pin("not-a-pin")


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int = 5
    """Failed logins of one agent id within ``window`` before it is locked."""
    max_failures_per_address: int = 20
    """Failed logins from one client address (any agent ids) within ``window`` before it is locked."""
    window: float = 300.0
    lockout: float = 60.0
    max_lockout: float = 900.0
    failure_delay: float = 0.5
    """Seconds before an ``auth_failed`` reply."""
    max_failures_per_connection: int = 10
    """Failed logins on one connection before the server closes it."""


@dataclass
class _Key:
    failures: deque = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last_seen: float = 0.0


class LoginLimiter:
    """Counts failures per key (``"agent:1001"``, ``"addr:10.0.0.7"``) and locks keys that fail too often."""

    MAX_KEYS = 10_000

    def __init__(self, policy: LoginPolicy | None = None) -> None:
        self.policy = policy or LoginPolicy()
        self._keys: OrderedDict[str, _Key] = OrderedDict()

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

    def failure(self, key: str, now: float) -> float:
        """Count one failure; returns the lockout it caused (0 when the key is not locked by it)."""
        entry = self._keys.get(key)
        if entry is None:
            self._prune(now)
            entry = self._keys[key] = _Key()
        self._keys.move_to_end(key)
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
        self._keys.pop(key, None)

    def _expire(self, entry: _Key, now: float) -> None:
        horizon = now - self.policy.window
        while entry.failures and entry.failures[0] < horizon:
            entry.failures.popleft()

    def _prune(self, now: float) -> None:
        """Forget keys that are quiet and unlocked; never keep more than MAX_KEYS."""
        horizon = now - max(self.policy.window, self.policy.max_lockout)
        for key in [k for k, e in self._keys.items() if e.last_seen < horizon and e.locked_until <= now]:
            del self._keys[key]
        while len(self._keys) >= self.MAX_KEYS:
            self._keys.popitem(last=False)
