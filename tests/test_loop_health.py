"""The control loop's lag monitor: a blocked loop shows up in the report, and a report starts a new window."""

from __future__ import annotations

import asyncio
import time

from callcenter.loop_health import LoopHealth


def test_a_blocked_loop_shows_as_lag_and_each_report_starts_a_new_window():
    async def main():
        health = LoopHealth(interval=0.05)
        task = asyncio.create_task(health.run())
        await asyncio.sleep(0.3)
        time.sleep(0.25)  # something blocks the loop
        await asyncio.sleep(0.2)
        first = health.report()
        await asyncio.sleep(0.3)
        second = health.report(reset=False)
        task.cancel()
        return first, second

    first, second = asyncio.run(main())
    assert first["samples"] >= 5
    assert first["max_ms"] >= 150  # the 250 ms block, seen by the timer it delayed
    assert first["p50_ms"] < first["max_ms"]
    assert 0 <= first["cpu_pct"]
    assert second["samples"] >= 2 and second["max_ms"] < first["max_ms"]  # the block is in the old window


def test_an_empty_window_reports_no_lag_rather_than_zero():
    report = LoopHealth().report()
    assert report["samples"] == 0 and report["p50_ms"] is None and report["max_ms"] is None
