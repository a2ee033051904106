"""The terminal simulator, driven with Textual's Pilot: keys in, prompt text and the final action on screen."""

from __future__ import annotations

import asyncio
import datetime as dt

from ivr_support import REPO, SHANGHAI, demo_port
from textual.css.query import NoMatches
from textual.widgets import RichLog, Static

from callcenter.config import load
from callcenter.prompts import load_menu
from callcenter.tui.ivr_simulator import IvrSimulatorApp
from ivr import CallerRecord, CallInfo, RouteToQueue

SAMPLE = load_menu(REPO / "config" / "ivr.toml").menu
HOURS = load(REPO / "config" / "callcenter.toml", environ={}).settings.hours
MONDAY = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)


def transcript(app: IvrSimulatorApp) -> str:
    try:
        log = app.query_one("#transcript", RichLog)
    except NoMatches:
        return ""
    return "\n".join("".join(segment.text for segment in strip) for strip in log.lines)


def shown(app: IvrSimulatorApp, selector: str) -> str:
    """The text of a widget; empty while the screen is still being built."""
    try:
        return str(app.query_one(selector, Static).render())
    except NoMatches:
        return ""


async def wait_for(pilot, condition, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the simulator did not get there in time")


def test_walking_to_the_sales_queue_in_english():
    async def run() -> None:
        port = demo_port()
        app = IvrSimulatorApp(
            SAMPLE, call=CallInfo("sim", "+8613900000002"), hours=HOURS, language="zh", port=port,
            start_at=MONDAY, seconds_per_char=0,
        )
        async with app.run_test(size=(130, 42)) as pilot:
            await wait_for(pilot, lambda: "中文服务请按1" in transcript(app))
            assert app.session.waiting_for == "digits"
            await pilot.press("2")
            await wait_for(pilot, lambda: "For product questions and sales, press 1" in transcript(app))
            assert "Welcome back, gold customer" in transcript(app)
            assert "Gold Gao (gold)" in shown(app, "#status")
            await pilot.press("1")
            await wait_for(pilot, lambda: app.session.ended)
            assert "Connecting you to a sales adviser" in transcript(app)
            assert app.final_action == RouteToQueue("sales", 7, {"en": 2})
            result = shown(app, "#result")
            assert "Call ended: queued" in result and "RouteToQueue" in result and "'sales'" in result
            assert ("caller", "+8613900000002") in port.calls

    asyncio.run(run())


def test_timeouts_count_down_and_fire():
    async def run() -> None:
        app = IvrSimulatorApp(SAMPLE, call=CallInfo("sim"), hours=HOURS, language="zh", start_at=MONDAY, seconds_per_char=0)
        async with app.run_test(size=(130, 42)) as pilot:
            await wait_for(pilot, lambda: app.session.timer is not None)
            await wait_for(pilot, lambda: "of 5 s" in shown(app, "#timer"))
            await pilot.press("t")  # jump the clock to the deadline
            await wait_for(pilot, lambda: "timed out" in transcript(app))
            assert app.session.path_json()[-1]["step"] in ("timeout", "enter")
            assert any(step["step"] == "timeout" for step in app.session.path_json())

    asyncio.run(run())


def test_database_text_is_never_read_as_markup():
    async def run() -> None:
        port = demo_port()
        port.callers["+8613911111111"] = CallerRecord(9, "[bold red]Mallory[/] [link=x]", "standard")
        app = IvrSimulatorApp(
            SAMPLE, call=CallInfo("sim", "+8613911111111"), hours=HOURS, port=port, start_at=MONDAY, seconds_per_char=0
        )
        async with app.run_test(size=(130, 42)) as pilot:
            await wait_for(pilot, lambda: app.session.caller is not None)
            await pilot.pause(0.1)
            assert "[bold red]Mallory[/] [link=x]" in shown(app, "#status")
            await pilot.press("h")
            await wait_for(pilot, lambda: app.session.ended)
            assert app.session.outcome == "abandoned"

    asyncio.run(run())


def test_callback_request_is_shown_with_the_hang_up():
    async def run() -> None:
        app = IvrSimulatorApp(
            SAMPLE, call=CallInfo("sim", "+8613900000001"), hours=HOURS, language="zh", port=demo_port(),
            start_at=MONDAY, seconds_per_char=0,
        )
        async with app.run_test(size=(130, 42)) as pilot:
            await wait_for(pilot, lambda: app.session.waiting_for == "digits")
            for key in "19":
                await pilot.press(key)
                await wait_for(pilot, lambda: app.session.waiting_for == "digits")
            assert "预约回电时间请按2" in transcript(app)
            await pilot.click("#key-1")
            await wait_for(pilot, lambda: app.session.ended)
            result = shown(app, "#result")
            assert "callback_requested" in result and "RequestCallback" in result and "keep_place=True" in result
            assert "已为您保留排队位置" in transcript(app)

    asyncio.run(run())
