"""Leg budget and new-call rate limit of one worker: pure bookkeeping, no clock, no I/O.

Both legs of a conversation must live on the same worker (the conference bridge is per process),
so a caller is admitted only where two legs are free: its own and one held for its agent. The
held slot goes to the agent leg when it is dialled (``Dial(peer=caller)``), comes back to the
caller when that leg ends (ring-out, the caller goes back to the queue), and disappears with the
caller. ``free`` therefore never promises a slot that an admitted caller may still need.
"""

from __future__ import annotations

from collections import deque

__all__ = ["LegBudget", "RateLimiter"]


class LegBudget:
    """Slots of one worker. ``free = legs - live legs - unused reservations - blocked``."""

    def __init__(self, legs: int) -> None:
        if legs < 1:
            raise ValueError("a worker needs at least one leg")
        self.legs = legs
        self._live: set[str] = set()
        self._anchors: dict[str, str | None] = {}  # caller leg -> leg using its reservation
        self._holder: dict[str, str] = {}  # leg using a reservation -> its caller leg
        self.blocked = 0  # slots the SIP stack holds for calls we no longer see (worker.py)

    @property
    def in_use(self) -> int:
        return len(self._live)

    @property
    def reserved(self) -> int:
        return sum(1 for holder in self._anchors.values() if holder is None)

    @property
    def free(self) -> int:
        return max(0, self.legs - self.in_use - self.reserved - self.blocked)

    def __contains__(self, leg: str) -> bool:
        return leg in self._live

    def admit(self, leg: str) -> bool:
        """A new conversation (arriving caller, outbound call): needs two free legs."""
        if leg in self._live or self.free < 2:
            return False
        self._live.add(leg)
        self._anchors[leg] = None
        return True

    def attach(self, leg: str, peer: str | None) -> bool:
        """A leg dialled for ``peer``: takes peer's reservation, else one free leg."""
        if leg in self._live:
            return False
        if peer is not None and self._anchors.get(peer, "") is None:
            self._anchors[peer] = leg
            self._holder[leg] = peer
            self._live.add(leg)
            return True
        if self.free < 1:
            return False
        self._live.add(leg)
        return True

    def release(self, leg: str) -> None:
        """The leg ended (idempotent)."""
        if leg not in self._live:
            return
        self._live.discard(leg)
        if leg in self._anchors:
            holder = self._anchors.pop(leg)
            if holder is not None:
                self._holder.pop(holder, None)  # the agent leg stays, now as a plain leg
        anchor = self._holder.pop(leg, None)
        if anchor is not None and self._anchors.get(anchor) == leg:
            self._anchors[anchor] = None  # the caller gets its reservation back


class RateLimiter:
    """At most ``rate`` events in any ``window`` seconds (sliding window over given times)."""

    def __init__(self, rate: float, window: float = 1.0) -> None:
        if rate <= 0 or window <= 0:
            raise ValueError("rate and window must be positive")
        self.window = window
        self.limit = max(1, int(rate * window))
        self._times: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()

    def allow(self, now: float) -> bool:
        """Count one event at ``now`` if there is room; False (and nothing counted) otherwise."""
        self._trim(now)
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    def count(self, now: float) -> int:
        self._trim(now)
        return len(self._times)

    def note(self, now: float) -> None:
        """Count an event that happens whatever the limit says (it still uses resources)."""
        self._trim(now)
        self._times.append(now)
