"""How late the control process's event loop runs: its lag, sampled all the time, and its CPU.

Every call's next step waits for this loop, so its lag is the control process's own latency. An
operator (or bench/sip_load.py) sends ``SIGUSR1`` to ``callcenter serve`` and gets one line,
``loop-health {json}``, for the time since the previous report; then the window starts again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque

__all__ = ["LoopHealth"]


class LoopHealth:
    """Samples the loop's lag every ``interval`` seconds: how much later than asked a timer fired."""

    def __init__(self, interval: float = 0.1, keep: int = 36_000) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=keep)  # an hour at 10 samples a second
        self._since = time.monotonic()
        self._cpu = _cpu_seconds()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, loop.time() - asked))

    def report(self, *, reset: bool = True) -> dict[str, float | int | None]:
        """Lag percentiles (ms) and CPU (% of one core) over the window; starts a new one."""
        now, cpu = time.monotonic(), _cpu_seconds()
        window = max(now - self._since, 1e-9)
        lags = sorted(self.samples)
        result = {
            "window_s": round(window, 1),
            "samples": len(lags),
            "p50_ms": _ms(_percentile(lags, 0.50)),
            "p99_ms": _ms(_percentile(lags, 0.99)),
            "max_ms": _ms(lags[-1] if lags else None),
            "cpu_pct": round(100 * (cpu - self._cpu) / window, 1),
        }
        if reset:
            self.samples.clear()
            self._since, self._cpu = now, cpu
        return result


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system
