"""The supervisor dashboard under Pilot, connected to a real CTI server, call flow and SQLite database on loopback."""

from __future__ import annotations

import asyncio
import random
import re
import time

import pytest
from sqlalchemy import select

from callcenter.db.models import AuditEntry
from callcenter.core import telephony_protocol as tp
from textual.widgets import DataTable

from callcenter.tui import agent_console, supervisor_console
from callcenter.tui.agent_screens import ConfirmScreen, HelpScreen
from callcenter.tui.supervisor_console import SupervisorApp
from callcenter.tui.supervisor_dialogs import ForceStateScreen, SkillsScreen
from callcenter.tui.supervisor_screens import AgentsScreen, QueueScreen, WallboardScreen
from tests.cti.cti_support import PINS, Stack, wait_for
from tests.tui.tui_support import console, notifications, screen_text, type_text

SIZE = (170, 50)
EVIL = "[bold red]BOSS[/] \x1b[2J\u202e"


@pytest.fixture
async def stack(tmp_path):
    s = Stack(tmp_path, sample_every=0.3)
    await s.start()
    yield s
    await s.stop()


def dashboard(stack: Stack, who: str = "9001", pin: str | None = None) -> SupervisorApp:
    return SupervisorApp(url=stack.url, supervisor_id=who, pin=PINS[who] if pin is None else pin)


def audit_rows(stack: Stack) -> list[tuple[str, str, str | None]]:
    with stack.db.session() as s:
        return [(r.actor, r.action, r.target) for r in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


async def hang_up(stack: Stack, leg: str) -> None:
    stack.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye", worker=stack.fake.worker_of(leg) or "w1"))
    await stack.settle()


async def loaded(app: SupervisorApp, pilot) -> None:
    await wait_for(lambda: app.model.loaded, timeout=5)
    await pilot.pause()


async def test_the_wallboard_follows_pushed_traffic(stack):
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        shown = screen_text(app)
        for expected in ("Sales", "Technical support", "VIP service", "General enquiries", "80% in 20s",
                         "Blocked today 0", "All queues within target", "link up"):
            assert expected in shown, expected
        stack.center.not_ready("1001", "break")
        stack.center.not_ready("1002", "break")
        await stack.caller_to_queue()
        await wait_for(lambda: app.model.queues["general"]["waiting"] == 1)
        await pilot.pause()
        row = next(line for line in screen_text(app).splitlines() if "General enquiries" in line)
        assert row.split()[:4] == ["OK", "General", "enquiries", "1"], row
        assert "Waiting 1" in screen_text(app)
        stack.fake.inject(tp.CallRefused(worker="front", call_id="x1", ani="+8613900000009", dnis="4008001234",
                                         status=503, reason="Service Unavailable"))
        await wait_for(lambda: app.model.counters.get("blocked") == 1)
        await pilot.pause()
        assert "Blocked today 1" in screen_text(app)
        assert app.latencies, "paints of pushed updates are measured"


async def test_simulated_traffic_ends_with_the_same_figures_as_the_acd(stack):
    """Poisson-ish arrivals through the real IVR, agents answering after a ring, hang-ups, abandons."""
    rng = random.Random(7)
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        legs = []
        for i in range(12):
            worker = stack.fake.pick_worker(2)  # room for the caller and the agent leg
            leg = stack.fake.arrive(ani=f"1390000{i:04d}", display_name=f"Caller {i}", worker=worker,
                                    remote_address="127.0.0.1:5099")
            await stack.settle()
            for digit in "10":
                stack.fake.inject(tp.DigitReceived(leg=leg, digit=digit, method="rfc4733", worker=worker))
                await stack.settle()
            legs.append(leg)
            for agent in ("1001", "1002"):
                if stack.center.engine.agent_state(agent)[0] == "reserved":
                    await stack.answer(agent)
                elif stack.center.engine.agent_state(agent)[0] == "wrap_up":
                    stack.center.end_wrap_up(agent)
            busy = [c for c in stack.center.calls.values() if c.phase == "connected"]
            if busy and (len(busy) >= 2 or rng.random() < 0.5):  # the fake has room for 4 calls
                call = rng.choice(busy)
                agent_leg = call.agent_leg
                await hang_up(stack, call.leg)
                await hang_up(stack, agent_leg)
            waiting = [c for c in stack.center.calls.values() if c.phase == "queued"]
            if waiting and (len(waiting) >= 2 or rng.random() < 0.2):
                await hang_up(stack, waiting[0].leg)
        await asyncio.sleep(0.5)
        await pilot.pause()
        engine = stack.center.engine
        for qid, row in app.model.queues.items():
            st = engine.queue_stats(qid)
            assert (row["offered"], row["answered"], row["abandoned"], row["waiting"]) == (
                st.entered, st.answered, st.abandoned, st.waiting), qid
        for aid, row in app.model.agents.items():
            assert (row["state"], row["calls"]) == (engine.agent_state(aid)[0], engine.agent_stats(aid).calls), aid
        general = engine.queue_stats("general")
        assert general.entered == 12 and general.answered >= 2
        line = next(x for x in screen_text(app).splitlines() if "General enquiries" in x)
        assert f" {general.entered} " in line and f" {general.answered} " in line


async def test_an_agent_account_cannot_open_the_dashboard(stack):
    app = dashboard(stack, "1003")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.return_code is not None, timeout=5)
        await pilot.pause()
    assert app.return_code == 1
    assert "1003 has the agent role, not supervisor" in app.return_value
    assert "agents use `callcenter agent`" in app.return_value
    assert stack.center.engine.agent_state("1003")[0] == "logged_out", "not logged in to the ACD by the attempt"


async def test_a_wrong_pin_is_refused_with_a_message(stack):
    app = dashboard(stack, "9001", pin="0000")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.return_code is not None, timeout=5)
        await pilot.pause()
    assert app.return_code == 1 and "wrong PIN" in app.return_value


async def test_agents_mode_shows_callers_literally_sorts_and_filters(stack):
    stack.only_agent("1001")
    await stack.caller_to_queue(display_name=EVIL)
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, AgentsScreen)
        shown = screen_text(app)
        row = next(line for line in shown.splitlines() if line.strip().startswith("1001"))
        assert "Ringing" in row and "[bold red]BOSS[/]" in row and "139 1234 5678" in row and "general" in row
        assert "\x1b" not in shown and "\u202e" not in shown, "control and bidi characters are neutralised"
        assert "[2J\ufffd”" in row, "the bidi override is shown as a visible mark"
        assert "Not ready" in next(line for line in shown.splitlines() if line.strip().startswith("1002"))
        await pilot.press("o")  # sort by name
        await pilot.pause()
        names = [line.split()[1] for line in screen_text(app).splitlines() if line.strip()[:4].isdigit()]
        assert names == sorted(names), names
        await pilot.press("slash")
        await type_text(pilot, "not ready")
        await pilot.press("enter")
        await pilot.pause()
        rows = [line for line in screen_text(app).splitlines() if line.strip()[:4].isdigit()]
        assert [r.split()[0] for r in rows] == ["1002"], rows
        assert "1 of 5 agents" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert "5 of 5 agents" in screen_text(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and "Force the selected agent" in screen_text(app)


async def test_a_state_change_reaches_the_agents_screen(stack):
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        stack.center.not_ready("1002", "training")
        await wait_for(lambda: "training" in next(
            (line for line in screen_text(app).splitlines() if line.strip().startswith("1002")), ""), timeout=2)


async def test_forcing_a_state_asks_for_confirmation_changes_the_acd_and_is_audited(stack):
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("2", "down", "f")  # 1002
        picker = await wait_for(lambda: isinstance(app.screen, ForceStateScreen) and app.screen)
        assert picker.agent["agent_id"] == "1002"
        await pilot.press("down", "down", "enter")  # Not ready: lunch
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        assert "Set agent 1002 Wang Fang not ready (lunch)?" in screen_text(app)
        assert "They are available now." in screen_text(app)
        await pilot.press("n")  # changed my mind
        await pilot.pause()
        assert stack.center.engine.agent_state("1002") == ("available", None) and audit_rows(stack) == []
        await pilot.press("f", "down", "down", "enter")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(lambda: stack.center.engine.agent_state("1002") == ("not_ready", "lunch"))
        await wait_for(lambda: audit_rows(stack) == [("9001", "agent.not_ready", "agent:1002")])
        await wait_for(lambda: "Agent 1002 is now not ready (lunch)" in notifications(app))
        await wait_for(lambda: app.model.agents["1002"]["reason"] == "lunch")


async def test_an_invalid_action_shows_the_servers_reason_and_changes_nothing(stack):
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("2", "f", "enter")  # 1001 is available: "Ready" is refused
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(lambda: any("Not changed" in n for n in notifications(app)))
        message = next(n for n in notifications(app) if "Not changed" in n)
        assert "only a not-ready agent or one in wrap-up can be made ready" in message
        assert stack.center.engine.agent_state("1001") == ("available", None)
        await stack.center.drain()
        assert audit_rows(stack) == []


async def test_changing_skills_checks_input_confirms_and_is_audited(stack):
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("2", "down", "k")
        dialog = await wait_for(lambda: isinstance(app.screen, SkillsScreen) and app.screen)
        box = dialog.query_one("#skills-input")
        assert box.value == "sales=2 support=5 zh=5"
        box.value = "support=7"
        await pilot.press("enter")
        await pilot.pause()
        assert "the level must be from 1 to 5" in screen_text(app), "checked before anything is sent"
        box.value = "support=4 zh=5 en=2"
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        shown = screen_text(app)
        assert "from: sales=2 support=5 zh=5" in shown and "to:   en=2 support=4 zh=5" in shown
        await pilot.press("y")
        await wait_for(lambda: stack.center.engine.agent_skills("1002") == {"en": 2, "support": 4, "zh": 5})
        await wait_for(lambda: audit_rows(stack) == [("9001", "agent.skills", "agent:1002")])
        await wait_for(lambda: app.model.agents["1002"]["skills"] == {"en": 2, "support": 4, "zh": 5})


async def test_queue_detail_lists_waiting_callers_and_why_the_oldest_waits(stack):
    stack.center.not_ready("1001", "break")
    stack.center.not_ready("1002", "lunch")
    await stack.caller_to_queue(ani="13900000001", display_name=EVIL)
    await stack.caller_to_queue(ani="13900000002", display_name="Second")
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        assert isinstance(app.screen, WallboardScreen)
        await pilot.press("down", "down", "down", "enter")  # General enquiries
        await wait_for(lambda: isinstance(app.screen, QueueScreen) and app.screen.detail is not None)
        await pilot.pause()
        shown = screen_text(app)
        assert "General enquiries  (general)  waiting 2" in shown
        first = next(line for line in shown.splitlines() if line.strip().startswith("1 "))
        assert "139 0000 0001" in first and "[bold red]BOSS[/]" in first and "zh=1" in first
        assert "139 0000 0002" in next(line for line in shown.splitlines() if line.strip().startswith("2 "))
        assert "Why the oldest caller (waiting since 10:00:0" in shown and " CST) is still waiting" in shown
        assert "2 not ready" in shown
        assert "not ready (lunch)" in shown
        await pilot.press("down")  # the second caller stays selected through the once-a-second redraw
        table = app.screen.query_one("#callers-table")
        assert table.cursor_row == 1
        await pilot.pause(1.2)
        assert table.cursor_row == 1
        stack.center.ready("1002")  # takes the oldest: the detail follows
        await wait_for(lambda: app.screen.detail and app.screen.detail["waiting"] == 1, timeout=3)
        await pilot.press("right_square_bracket")
        await wait_for(lambda: app.queue_id == "sales" and app.screen.detail and app.screen.detail["queue"] == "sales")
        await pilot.pause()
        assert "Nobody is waiting" in screen_text(app)


async def test_trends_and_staffing_modes_draw_from_the_server(stack):
    stack.only_agent("1001")
    leg = await stack.caller_to_queue()
    await stack.answer("1001")
    await stack.caller_hangs_up(leg, "1001")
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        await pilot.press("5")
        await wait_for(lambda: app.model.staffing.get("general", {}).get("recommended") is not None, timeout=3)
        await pilot.pause()
        row = next(line for line in screen_text(app).splitlines() if "General enquiries" in line)
        assert "80% in 30s" in row
        await pilot.press("4")
        await wait_for(lambda: app.screen.data is not None)
        await pilot.pause()
        shown = screen_text(app)
        assert "Last hour, per minute: All queues" in shown and "Arrivals per minute" in shown
        assert sum(p["arrivals"] for p in app.screen.data["points"]) == 1
        await pilot.press("right_square_bracket")
        await wait_for(lambda: app.screen.data is not None and app.screen.data["queue"] == "sales")
        await pilot.pause()
        assert "Last hour, per minute: Sales" in screen_text(app)


async def test_a_queue_turns_amber_then_red_as_its_caller_waits(tmp_path):
    s = Stack(tmp_path, overrides=("supervisor.wait_amber_seconds=1", "supervisor.wait_red_seconds=2"))
    await s.start()
    try:
        s.center.not_ready("1001", "break")
        s.center.not_ready("1002", "break")
        await s.caller_to_queue()
        app = dashboard(s)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(app, pilot)

            def general() -> str:
                return next(line for line in screen_text(app).splitlines() if "General enquiries" in line)

            await wait_for(lambda: general().split()[0] == "AMBER", timeout=3)
            await wait_for(lambda: general().split()[0] == "RED", timeout=4)
            assert "oldest caller waiting" in screen_text(app) and " RED " in screen_text(app)
    finally:
        await s.stop()


RAW_CODES = re.compile(r"\b(on_call|wrap_up|not_ready|busy_in_other_queue|logged_out|not_member|missing_skill|"
                       r"level_too_low|missed_this_call|longest_idle|round_robin|fewest_calls|least_talk_time)\b")


async def caller_to_sales(stack: Stack, ani: str) -> str:
    """A caller picks Mandarin (1) then sales (1)."""
    leg = stack.fake.arrive(ani=ani, display_name="Sales caller", remote_address="127.0.0.1:5099")
    await stack.settle()
    for digit in "11":
        stack.fake.inject(tp.DigitReceived(leg=leg, digit=digit, method="rfc4733"))
        await stack.settle()
    return leg


async def test_the_clock_is_the_centers_with_its_zone_not_the_machines(stack, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # the console's machine is elsewhere
    time.tzset()
    try:
        app = dashboard(stack)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(app, pilot)
            bar = screen_text(app).splitlines()[0]
            # the server's clock starts at 02:00 UTC: 10:00 in Asia/Shanghai (hours.timezone)
            assert re.search(r"\b10:0\d:\d\d CST\b", bar), bar
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_queue_detail_lists_the_caller_ringing_at_an_agent(stack):
    stack.only_agent("1001")
    await stack.caller_to_queue(ani="13900000001", display_name=EVIL)  # rings 1001 at once
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        app.show_queue("general")
        await wait_for(lambda: isinstance(app.screen, QueueScreen) and app.screen.detail is not None)
        await pilot.pause()
        shown = screen_text(app)
        assert "General enquiries  (general)  waiting 0, ringing 1, callbacks 0" in shown
        row = next(line for line in shown.splitlines() if "139 0000 0001" in line)
        assert "[bold red]BOSS[/]" in row and "ringing at 1001 Li Wei for" in row
        assert "Nobody is waiting" not in shown
        assert "No caller is waiting for an agent: 1 ringing at an agent (listed above)." in shown
        await stack.caller_to_queue(ani="13900000002", display_name="Second")  # waits: 1001 is busy
        await wait_for(lambda: app.screen.detail and app.screen.detail["waiting"] == 1, timeout=3)
        await pilot.pause()
        shown = screen_text(app)
        assert "waiting 1, ringing 1, callbacks 0" in shown
        waiting = next(line for line in shown.splitlines() if "139 0000 0002" in line)
        assert waiting.split()[0] == "1" and "waiting" in waiting
        assert "139 0000 0001" in shown, "the ringing caller stays listed"
        assert "Why the oldest caller (waiting since 10:0" in shown and " CST) is still waiting" in shown
        assert "1001 Li Wei: phone ringing with another call of this queue" in shown
        assert not RAW_CODES.search(shown), RAW_CODES.search(shown)


async def test_why_a_caller_waits_is_said_in_peoples_words(stack):
    stack.center.not_ready("1002", "lunch")
    await caller_to_sales(stack, "13900000003")
    await stack.answer("1001")  # on a call of sales
    await stack.caller_to_queue(ani="13900000004", display_name="Waiting")
    app = dashboard(stack)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, pilot)
        app.show_queue("general")
        await wait_for(lambda: isinstance(app.screen, QueueScreen) and app.screen.detail is not None)
        await pilot.pause()
        shown = screen_text(app)
        assert "routing: round robin" in shown
        assert "1 busy with another queue's call, 1 not ready" in shown
        assert "1001 Li Wei: busy with a call of queue Sales" in shown
        assert "1002 Wang Fang: not ready (lunch)" in shown
        assert not RAW_CODES.search(shown), RAW_CODES.search(shown)
        await pilot.press("2")
        await pilot.pause()
        shown = screen_text(app)
        assert "On call" in next(line for line in shown.splitlines() if line.strip().startswith("1001"))
        assert not RAW_CODES.search(shown), RAW_CODES.search(shown)
        await pilot.press("f")  # 1001, on a call
        await wait_for(lambda: isinstance(app.screen, ForceStateScreen))
        await pilot.pause()
        assert "Force the state of 1001 Li Wei, now on a call" in screen_text(app)


def shown_in(app, widget) -> list[str]:
    """The screen's lines where ``widget``'s content is drawn."""
    region = widget.content_region
    return [line[region.x:region.right] for line in screen_text(app).splitlines()[region.y:region.bottom]]


def help_rows_shown(app) -> list[tuple[str, str, str]]:
    """The help table's rows as read off the screen, each cell's wrapped lines joined."""
    lines = shown_in(app, app.screen.query_one(DataTable))
    header = lines[0]
    action, when = header.index("Action"), header.index("When")
    rows: list[list[str]] = []
    for line in lines[1:]:
        cells = [line[:action].strip(), line[action:when].strip(), line[when:].strip()]
        if cells[0]:
            rows.append(cells)
        elif rows:
            rows[-1] = [old + " " + new if new else old for old, new in zip(rows[-1], cells)]
    return [tuple(" ".join(c.split()) for c in row) for row in rows]


@pytest.mark.parametrize("size", [(80, 50), (120, 40), (200, 40)])
async def test_every_help_line_is_whole_in_both_consoles(stack, size):
    for app, rows in ((dashboard(stack), supervisor_console.HELP_ROWS),
                      (console(stack, "1003"), agent_console.HELP_ROWS)):
        async with app.run_test(size=size) as pilot:
            await wait_for(lambda: app.model.link == "up", timeout=5)
            await pilot.pause()
            await pilot.press("question_mark")
            await wait_for(lambda: isinstance(app.screen, HelpScreen))
            await pilot.pause()
            await pilot.pause()
            table = app.screen.query_one(DataTable)
            assert table.max_scroll_y == 0 and table.max_scroll_x == 0, "all of it on screen"
            assert help_rows_shown(app) == [tuple(" ".join(c.split()) for c in row) for row in rows]
            hint = " ".join(" ".join(shown_in(app, app.screen.query_one(".hint"))).split())
            assert hint == "Esc closes this help. In a dialog: Tab moves between fields, Esc cancels."


async def test_on_a_short_terminal_the_help_scrolls_inside_the_dialog(stack):
    app = console(stack, "1003")  # the longer of the two helps
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: app.model.link == "up", timeout=5)
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        assert table.max_scroll_y > 0 and table.region.bottom <= app.screen.query_one("#help").region.bottom
        hint = " ".join(" ".join(shown_in(app, app.screen.query_one(".hint"))).split())
        assert hint.endswith("Esc cancels."), "the dialog's last line is on screen"
        await pilot.press("ctrl+end")
        await wait_for(lambda: table.scroll_y == table.max_scroll_y)
        await pilot.pause()
        assert any(line.strip().startswith("Esc") for line in shown_in(app, table)), "the last key scrolls into view"
