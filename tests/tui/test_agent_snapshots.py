"""Snapshots of the agent console's main screens, against a real CTI server on loopback.

Deterministic: the server's clock stands still, call ids are numbered, the header clock and the
console's own clocks are fixed, and the terminal is 140x44. The contact center runs on its own
event loop in a thread (the snapshot runs the app on another); the test talks to it through
``Background.run``. Regenerate with ``pytest tests/tui/test_agent_snapshots.py --snapshot-update``
and look at the SVGs under ``__snapshots__/test_agent_snapshots/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import uuid
from types import SimpleNamespace

import pytest
from textual.widgets import DataTable, Input

from callcenter.core import calls as core_calls
from callcenter.core import telephony_protocol as tp
from callcenter.tui.agent_console import AgentConsoleApp
from callcenter.tui.agent_disposition import DispositionScreen
from callcenter.tui.agent_lists import CallbacksScreen, SearchScreen
from callcenter.tui.agent_screens import HelpScreen
from tests.cti.cti_support import OPEN, PINS, Stack, wait_for
from tests.tui.tui_support import type_text

NOW = OPEN + dt.timedelta(minutes=5)  # Monday 10:05 in Shanghai
SIZE = (140, 44)
NUMBER = "+8613912345678"


class Background:
    """The contact center and CTI server on an event loop of their own."""

    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack: Stack = self.run(self._start(tmp_path))

    async def _start(self, tmp_path) -> Stack:
        stack = Stack(tmp_path)
        fixed = lambda: NOW  # noqa: E731
        stack.clock = stack.cti.clock = stack.center.clock = fixed
        await stack.start()
        return stack

    def run(self, coro, timeout: float = 15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def on_loop(self, coro):
        """From the app's loop: run ``coro`` on the center's loop and wait for it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.run(self.stack.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class FixedDatetime(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        moment = NOW.astimezone(dt.timezone(dt.timedelta(hours=8)))
        return moment if tz is not None else moment.replace(tzinfo=None)


@pytest.fixture
def bg(tmp_path, monkeypatch):
    numbers = itertools.count(1)
    monkeypatch.setattr(core_calls, "uuid",
                        SimpleNamespace(uuid4=lambda: uuid.UUID(int=0xC0FFEE000000 + next(numbers))))
    monkeypatch.setattr("textual.widgets._header.datetime", FixedDatetime)
    background = Background(tmp_path)
    stack = background.stack
    stack.add_customer("Li Lei", NUMBER, tier="vip", company="Lei & Sons <b>Ltd</b>", with_history=True,
                       notes="prefers calls after 6pm [red]not markup[/red]")
    stack.add_customer("Wang Fang", "+8613700000001")
    for due, owner, notes in [(NOW - dt.timedelta(hours=4), "1001", "quote for the air conditioner"),
                              (NOW - dt.timedelta(minutes=10), None, None),
                              (NOW + dt.timedelta(days=1), "1001", "check the repair")]:
        stack.store.add_callback(number=NUMBER, customer_id=1, queue="general", due_from=due,
                                 due_until=None, source="agent", owner_agent_id=owner, notes=notes)
    yield background
    background.close()


def app_for(bg: Background) -> AgentConsoleApp:
    app = AgentConsoleApp(url=bg.stack.url, agent_id="1001", pin=PINS["1001"], monotonic=lambda: 1000.0)
    app.server_now = lambda: NOW
    return app


async def logged_in(app, pilot) -> None:
    await wait_for(lambda: app.model.link == "up" and app.model.state == "available", timeout=10)
    await pilot.pause()


async def settle(app, pilot) -> None:
    app.clear_notifications()
    await pilot.pause()
    await pilot.pause()


async def ring(bg: Background, app, pilot) -> str:
    await logged_in(app, pilot)
    stack = bg.stack

    async def caller() -> str:
        stack.only_agent("1001")
        return await stack.caller_to_queue(ani="13912345678", display_name="Zhang San [bold]x[/bold]")

    leg = await bg.on_loop(caller())
    await wait_for(lambda: app.model.call is not None and app.pop_painted, timeout=10)
    return leg


async def answer(bg: Background, app, pilot) -> str:
    leg = await ring(bg, app, pilot)
    await bg.on_loop(bg.stack.answer("1001"))
    await wait_for(lambda: app.model.state == "on_call", timeout=10)
    return leg


def test_idle_available(bg, snap_compare):
    app = app_for(bg)

    async def run_before(pilot):
        await logged_in(app, pilot)
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_ringing_with_the_pop(bg, snap_compare):
    app = app_for(bg)

    async def run_before(pilot):
        await ring(bg, app, pilot)
        assert app.model.call.phase == "ringing"
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_on_call_with_notes(bg, snap_compare):
    app = app_for(bg)

    async def run_before(pilot):
        await answer(bg, app, pilot)
        await pilot.press("e")
        await type_text(pilot, "wants a technician on Tuesday")
        await pilot.press("escape")
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_wrap_up_disposition_form(bg, snap_compare):
    app = app_for(bg)

    async def run_before(pilot):
        leg = await answer(bg, app, pilot)
        await bg.on_loop(bg.stack.caller_hangs_up(leg, "1001"))
        await wait_for(lambda: isinstance(app.screen, DispositionScreen), timeout=10)
        await pilot.pause()
        await pilot.press("down", "down", "down")  # "Customer asked to be called back"
        await pilot.click("#dp-callback")
        for field in ("#dp-date", "#dp-time"):
            app.screen.query_one(field, Input).cursor_blink = False
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_my_callbacks(bg, snap_compare):
    app = app_for(bg)

    async def run_before(pilot):
        await logged_in(app, pilot)
        await pilot.press("c")
        screen = await wait_for(lambda: isinstance(app.screen, CallbacksScreen) and app.screen, timeout=10)
        await wait_for(lambda: screen.query_one(DataTable).row_count == 3, timeout=10)
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_customer_search(bg, snap_compare):
    app = app_for(bg)

    async def run_before(pilot):
        await logged_in(app, pilot)
        await pilot.press("s")
        screen = await wait_for(lambda: isinstance(app.screen, SearchScreen) and app.screen, timeout=10)
        await pilot.pause()
        await type_text(pilot, "li lei")
        await pilot.press("enter")
        await wait_for(lambda: screen.query_one(DataTable).row_count == 1, timeout=10)
        for box in screen.query(Input):
            box.cursor_blink = False
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help(bg, snap_compare):
    app = app_for(bg)

    async def run_before(pilot):
        await logged_in(app, pilot)
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen), timeout=10)
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
