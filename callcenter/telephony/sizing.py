"""Elastic sizing of the worker pool (pure): which workers to start, retire or keep, from their states,
the recent demand and the time. No clock, no I/O: :class:`~callcenter.telephony.pool.WorkerPool`
asks :func:`decide` on every leg event and a few times a second, and carries out what it returns.

Every idle worker costs CPU, so an elastic pool runs only what the load needs, within a fixed set of
slots (``ceil(sip.max_legs / legs per worker)``, each with its own ports for the pool's life):

- **Floor.** Free legs on workers that take calls (or are starting) are kept at ``spare_legs`` plus
  headroom for ``lead_seconds`` of new legs at the recent rate: a worker takes about a second to
  start and be listed by the SIP front, so room is made before the callers arrive, not after.
  Short of it, the pool first calls back a worker it is retiring, then starts stopped slots (at most
  ``max_starting`` at once, never beyond the slots).
- **Retirement.** A worker is retired only after it has had no leg and no reservation for
  ``idle_retire_seconds``, only if the floor still holds without it, one at a time, and never while
  another worker starts or stops: a retirement therefore never makes the next decision start one.
- **Calling one back.** A retiring worker that got a leg (an INVITE already on its way when the
  front stopped sending it calls) is called back at once; so is one whose room is needed again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Phase", "SlotState", "SizingRules", "StartWorkers", "RetireWorker", "CancelRetirement", "Decision",
    "decide", "target_free_legs", "usable_legs", "DemandMeter", "describe_slots",
]


class Phase(StrEnum):
    """Where a worker slot is in its life."""

    STOPPED = "stopped"  # no process; may be started
    STARTING = "starting"  # process started, WorkerStarted not seen yet
    RUNNING = "running"  # taking calls (listed by the SIP front)
    RETIRING = "retiring"  # out of the front's list, waiting out the grace period; can be called back
    STOPPING = "stopping"  # told to shut down; gone soon
    DOWN = "down"  # died (the pool restarts it) or failed to start (tried again later)


@dataclass(frozen=True)
class SlotState:
    """One worker slot as the policy sees it. ``idle_since``: since when it has had no leg and no
    reservation (None while it has some)."""

    name: str
    phase: Phase
    free: int = 0
    in_use: int = 0
    reserved: int = 0
    idle_since: float | None = None

    @property
    def busy(self) -> bool:
        return self.in_use > 0 or self.reserved > 0 or self.idle_since is None


@dataclass(frozen=True)
class SizingRules:
    """The elastic pool's settings (``sip.spare_legs``, ``sip.worker_idle_retire_seconds``,
    ``sip.worker_lead_seconds``); ``max_workers`` None: every slot given to :func:`decide`."""

    spare_legs: int = 4
    idle_retire_seconds: float = 300.0
    lead_seconds: float = 2.0
    legs_per_worker: int = 4
    max_workers: int | None = None
    max_starting: int = 4

    def __post_init__(self) -> None:
        if self.spare_legs < 2:
            raise ValueError("spare_legs must be at least 2: a caller needs a leg and one held for its agent")
        if self.idle_retire_seconds <= 0 or self.lead_seconds < 0:
            raise ValueError("idle_retire_seconds must be positive and lead_seconds not negative")
        if self.legs_per_worker < 2 or self.max_starting < 1:
            raise ValueError("legs_per_worker must be at least 2 and max_starting at least 1")


@dataclass(frozen=True)
class StartWorkers:
    """Start these stopped slots."""

    slots: tuple[str, ...]


@dataclass(frozen=True)
class RetireWorker:
    """Take this idle worker out of service: out of the front's list first, then shut down."""

    slot: str


@dataclass(frozen=True)
class CancelRetirement:
    """Put this retiring worker back in service."""

    slot: str


Decision = StartWorkers | RetireWorker | CancelRetirement


def usable_legs(free: int) -> int:
    """Free legs a caller can use: an arriving caller needs two (its own and one for its agent)."""
    return max(0, free) // 2 * 2


def target_free_legs(demand: float, rules: SizingRules) -> int:
    """Free legs to keep: the floor plus what arrives at ``demand`` legs/s while a worker starts."""
    wanted = rules.spare_legs + math.ceil(max(0.0, demand) * rules.lead_seconds - 1e-9)
    return wanted + wanted % 2  # whole callers


def decide(slots: Sequence[SlotState], demand: float, rules: SizingRules, now: float) -> list[Decision]:
    """What to do now. ``slots`` in the pool's order (``w1`` first); ``demand`` in new legs per second."""
    legs = rules.legs_per_worker
    limit = len(slots) if rules.max_workers is None else min(len(slots), rules.max_workers)
    decisions: list[Decision] = []
    called_back: set[str] = set()

    room = 0
    for s in slots:
        if s.phase is Phase.RUNNING:
            room += usable_legs(s.free)
        elif s.phase is Phase.STARTING:
            room += usable_legs(legs)
    for s in slots:  # a leg reached a retiring worker: it serves it, so it stays
        if s.phase is Phase.RETIRING and s.busy:
            decisions.append(CancelRetirement(s.name))
            called_back.add(s.name)
            room += usable_legs(s.free)

    target = target_free_legs(demand, rules)
    if room < target:
        for s in slots:  # cheapest room first: a retiring worker is still up
            if room >= target:
                break
            if s.phase is Phase.RETIRING and s.name not in called_back:
                decisions.append(CancelRetirement(s.name))
                called_back.add(s.name)
                room += usable_legs(s.free)
        active = sum(1 for s in slots if s.phase is not Phase.STOPPED)
        starting = sum(1 for s in slots if s.phase is Phase.STARTING)
        chosen: list[str] = []
        for s in slots:
            if room >= target or active >= limit or starting >= rules.max_starting:
                break
            if s.phase is Phase.STOPPED:
                chosen.append(s.name)
                room += usable_legs(legs)
                active += 1
                starting += 1
        if chosen:
            decisions.append(StartWorkers(tuple(chosen)))
        return decisions

    # Shrink: one at a time, and only when nothing is on its way in or out.
    if any(s.phase in (Phase.STARTING, Phase.STOPPING) or (s.phase is Phase.RETIRING and s.name not in called_back)
           for s in slots):
        return decisions
    for s in reversed(slots):  # of those idle long enough, the last slot goes first
        if (s.phase is Phase.RUNNING and not s.busy and s.idle_since is not None
                and now - s.idle_since >= rules.idle_retire_seconds
                and room - usable_legs(s.free) >= target):
            decisions.append(RetireWorker(s.name))
            break
    return decisions


class DemandMeter:
    """New legs per second, from the times they were asked for: the higher of the last second's
    rate and the last ``window`` seconds' rate, so it rises at once and falls slowly."""

    def __init__(self, window: float = 10.0, short: float = 1.0) -> None:
        if window <= 0 or not 0 < short <= window:
            raise ValueError("window must be positive and short within it")
        self.window = window
        self.short = short
        self._times: deque[tuple[float, int]] = deque()

    def note(self, now: float, legs: int = 2) -> None:
        """``legs`` were asked for at ``now`` (a caller, or an outbound call: 2; refused ones count too)."""
        self._times.append((now, legs))
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        total = sum(n for _, n in self._times)
        recent = sum(n for t, n in self._times if t > now - self.short)
        return max(total / self.window, recent / self.short)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0][0] <= now - self.window:
            self._times.popleft()


def describe_slots(phases: Iterable[str], *, elastic: bool) -> str:
    """``"3 running, 1 retiring, 12 stopped (elastic)"``: the pool in a few words for status lines."""
    counts: dict[str, int] = {}
    for phase in phases:
        counts[str(phase)] = counts.get(str(phase), 0) + 1
    order = [p.value for p in (Phase.RUNNING, Phase.STARTING, Phase.RETIRING, Phase.STOPPING, Phase.DOWN, Phase.STOPPED)]
    parts = [f"{counts[name]} {name}" for name in order if counts.get(name)]
    text = ", ".join(parts) or "none"
    return f"{text} (elastic)" if elastic else text
