"""Recent history of a queue, from samples of its running counters.

The engine keeps totals since the last statistics reset (the day); supervisors also want the
last half hour (staffing) and the last hour minute by minute (trends). Sampling the totals now
and then and subtracting is enough for both, costs nothing per call, and needs no event log.
Pure: samples carry their own time; a reset (totals going down) starts the sums again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from acd.stats import QueueStats

__all__ = ["Sample", "QueueHistory", "WindowFigures", "TrendPoint"]


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    entered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    completed: int
    handle: float  # talk + wrap of completed calls, seconds
    waiting: int

    @classmethod
    def of(cls, s: QueueStats) -> Sample:
        handle = s.aht * s.completed if s.aht is not None else 0.0
        return cls(s.at, s.entered, s.answered, s.answered_in_sl, s.abandoned, s.completed, handle, s.waiting)


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """What happened over ``seconds`` (shorter when the history is younger than asked)."""

    seconds: float
    arrivals: int
    answered: int
    answered_in_sl: int
    abandoned: int
    completed: int
    handle: float

    @property
    def arrival_rate(self) -> float:
        """Calls per second."""
        return self.arrivals / self.seconds if self.seconds > 0 else 0.0

    @property
    def aht(self) -> float | None:
        return self.handle / self.completed if self.completed else None

    @property
    def service_level(self) -> float | None:
        """Answered within the threshold over answered + abandoned (the stricter definition)."""
        handled = self.answered + self.abandoned
        return self.answered_in_sl / handled if handled else None


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One bucket of the trend: ``start`` of the bucket, peak waiting, arrivals, and the calls
    answered within the threshold over those answered or abandoned in it (service level)."""

    start: float
    waiting: int
    arrivals: int
    answered_in_sl: int
    handled: int

    @property
    def service_level(self) -> float | None:
        return self.answered_in_sl / self.handled if self.handled else None


def _delta(new: int | float, old: int | float) -> int | float:
    return new - old if new >= old else new  # the totals were reset in between


class QueueHistory:
    """Samples of one queue over the last ``keep`` seconds (default an hour and a bit)."""

    def __init__(self, keep: float = 3900.0) -> None:
        self.keep = keep
        self.samples: deque[Sample] = deque()

    def add(self, sample: Sample | QueueStats) -> None:
        if isinstance(sample, QueueStats):
            sample = Sample.of(sample)
        if self.samples and sample.at < self.samples[-1].at:
            return  # out of order: ignore rather than corrupt the sums
        self.samples.append(sample)
        while len(self.samples) > 2 and self.samples[1].at <= sample.at - self.keep:
            self.samples.popleft()

    def _sum(self, older: Sample, newer_samples: list[Sample]) -> list[float]:
        totals = [0, 0, 0, 0, 0, 0.0]
        prev = older
        for s in newer_samples:
            for i, (a, b) in enumerate(((s.entered, prev.entered), (s.answered, prev.answered),
                                        (s.answered_in_sl, prev.answered_in_sl), (s.abandoned, prev.abandoned),
                                        (s.completed, prev.completed), (s.handle, prev.handle))):
                totals[i] += _delta(a, b)
            prev = s
        return totals

    def window(self, seconds: float, now: float | None = None) -> WindowFigures:
        """Figures between the sample at (or just before) ``now - seconds`` and the newest one."""
        if len(self.samples) < 2:
            return WindowFigures(0.0, 0, 0, 0, 0, 0, 0.0)
        end = self.samples[-1]
        start_at = (end.at if now is None else now) - seconds
        items = list(self.samples)
        first = 0
        for i, s in enumerate(items):
            if s.at <= start_at:
                first = i
            else:
                break
        base = items[first]
        arrivals, answered, in_sl, abandoned, completed, handle = self._sum(base, items[first + 1:])
        return WindowFigures(end.at - base.at, int(arrivals), int(answered), int(in_sl), int(abandoned),
                             int(completed), float(handle))

    def trend(self, now: float, seconds: float = 3600.0, bucket: float = 60.0) -> list[TrendPoint]:
        """Buckets of ``bucket`` seconds over the last ``seconds``, oldest first; empty buckets are left out."""
        if not self.samples:
            return []
        start = now - seconds
        points: list[TrendPoint] = []
        items = list(self.samples)
        current: list | None = None  # [bucket start, peak waiting, arrivals, in_sl, handled]
        prev: Sample | None = None
        for s in items:
            if s.at < start:
                prev = s
                continue
            b = start + ((s.at - start) // bucket) * bucket
            if current is None or current[0] != b:
                if current is not None:
                    points.append(self._point(current))
                current = [b, s.waiting, 0, 0, 0]
            current[1] = max(current[1], s.waiting)
            if prev is not None:
                current[2] += _delta(s.entered, prev.entered)
                current[3] += _delta(s.answered_in_sl, prev.answered_in_sl)
                current[4] += _delta(s.answered, prev.answered) + _delta(s.abandoned, prev.abandoned)
            prev = s
        if current is not None:
            points.append(self._point(current))
        return points

    @staticmethod
    def _point(current: list) -> TrendPoint:
        b, waiting, arrivals, in_sl, handled = current
        return TrendPoint(b, int(waiting), int(arrivals), int(in_sl), int(handled))
