"""Snapshots of each dashboard mode, against a real CTI server on loopback in a thread of its own.

The server's clock only moves when the test steps it, the dashboard's clock is fixed, the
terminal is 160x48 and the traffic is scripted, so the screens are the same on every run.
Regenerate with ``--snapshot-update`` and look at the SVGs under ``__snapshots__/`` before
committing them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest

from callcenter.core import telephony_protocol as tp
from callcenter.tui.supervisor_console import SupervisorApp
from tests.cti.cti_support import OPEN, PINS, Stack

SIZE = (160, 48)


class SteppedClock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class BackgroundStack:
    """A Stack on its own event loop thread, so the dashboard can run on the snapshot's loop."""

    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = SteppedClock(OPEN)
        self.stack: Stack = self.run(self._start(tmp_path))

    async def _start(self, tmp_path) -> Stack:
        stack = Stack(tmp_path, sample_every=3600)
        stack.clock = stack.cti.clock = stack.center.clock = self.clock
        await stack.start()
        return stack

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.run(self.stack.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def arrive(stack: Stack, ani: str, name: str) -> str:
    """A caller keys 1 (Mandarin) then 0 (an agent) into the general queue, on the worker with room."""
    worker = stack.fake.pick_worker(2)
    leg = stack.fake.arrive(ani=ani, display_name=name, worker=worker, remote_address="127.0.0.1:5099")
    await stack.settle()
    for digit in "10":
        stack.fake.inject(tp.DigitReceived(leg=leg, digit=digit, method="rfc4733", worker=worker))
        await stack.settle()
    return leg


async def hang_up(stack: Stack, leg: str) -> None:
    stack.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye", worker=stack.fake.worker_of(leg) or "w1"))
    await stack.settle()


async def scripted_day(stack: Stack, clock: SteppedClock) -> None:
    """Half an hour of calls answered by 1001, minute by minute, then a busy moment with callers waiting."""
    center, feed = stack.center, stack.cti.feed
    center.not_ready("1002", "break")
    center.login("1003", not_ready_reason="meeting")
    center.login("1004", not_ready_reason="training")
    feed.sample_now()
    for minute in range(30):
        clock.step(60)
        if minute % 3 == 0:
            leg = await arrive(stack, f"1390000{minute:04d}", f"Caller {minute}")
            clock.step(8 + minute % 7)
            call = center.calls[stack.center.by_leg[leg]]
            assert call.agent_id == "1001" and call.phase == "ringing"
            stack.fake.inject(tp.LegAnswered(leg=call.agent_leg, worker=stack.fake.worker_of(call.agent_leg)))
            await stack.settle()
            clock.step(90 + 5 * minute)
            agent_leg = call.agent_leg
            await hang_up(stack, leg)
            await hang_up(stack, agent_leg)
            center.end_wrap_up("1001")
        feed.sample_now()
    leg = await arrive(stack, "13912345678", "[bold red]BOSS[/] \x1b[2J")
    clock.step(12)
    call = center.calls[stack.center.by_leg[leg]]
    stack.fake.inject(tp.LegAnswered(leg=call.agent_leg, worker=stack.fake.worker_of(call.agent_leg)))
    await stack.settle()
    center.not_ready("1002", "lunch")
    await arrive(stack, "13800000001", "Waiting Long")
    clock.step(75)
    await arrive(stack, "13800000002", "李小龙")
    clock.step(20)
    stack.fake.inject(tp.CallRefused(worker="front", call_id="x1", ani="+8613900000009", dnis="4008001234",
                                     status=503, reason="Service Unavailable"))
    await stack.settle()
    feed.sample_now()
    await stack.center.drain()


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    bg = BackgroundStack(tmp_path_factory.mktemp("snapshots"))
    bg.run(scripted_day(bg.stack, bg.clock))
    yield bg
    bg.close()


def dashboard(bg: BackgroundStack) -> SupervisorApp:
    fixed = bg.clock.now  # the dashboard's clock stands still too
    return SupervisorApp(url=bg.stack.url, supervisor_id="9001", pin=PINS["9001"], clock=lambda: fixed, tick=3600)


def ready(*keys: str, wait=None):
    async def run_before(pilot) -> None:
        app = pilot.app
        for _ in range(500):
            if app.model.loaded:
                break
            await asyncio.sleep(0.01)
        assert app.model.loaded, "the dashboard did not load"
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        if wait is not None:
            for _ in range(500):
                if wait(app):
                    break
                await asyncio.sleep(0.01)
            assert wait(app), "the mode's data did not come"
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
    return run_before


def test_wallboard(background, snap_compare):
    assert snap_compare(dashboard(background), terminal_size=SIZE, run_before=ready())


def test_agents(background, snap_compare):
    assert snap_compare(dashboard(background), terminal_size=SIZE, run_before=ready("2"))


def test_agents_sorted_and_filtered(background, snap_compare):
    assert snap_compare(dashboard(background), terminal_size=SIZE,
                        run_before=ready("2", "o", "o", "slash", "n", "o", "t", "enter"))


def test_queue_detail(background, snap_compare):
    def shown(app):
        return getattr(app.screen, "detail", None) is not None

    assert snap_compare(dashboard(background), terminal_size=SIZE, run_before=ready("3", wait=shown))


def test_trends(background, snap_compare):
    def shown(app):
        return getattr(app.screen, "data", None) is not None

    assert snap_compare(dashboard(background), terminal_size=SIZE, run_before=ready("4", wait=shown))


def test_staffing(background, snap_compare):
    assert snap_compare(dashboard(background), terminal_size=SIZE, run_before=ready("5"))


def test_force_state_dialog(background, snap_compare):
    assert snap_compare(dashboard(background), terminal_size=SIZE, run_before=ready("2", "down", "f"))


def test_help(background, snap_compare):
    assert snap_compare(dashboard(background), terminal_size=SIZE, run_before=ready("question_mark"))
