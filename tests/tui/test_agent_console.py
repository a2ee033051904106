"""The agent console under Pilot, connected to a real CTI server, call flow and SQLite database on loopback."""

from __future__ import annotations

import datetime as dt

import pytest
from textual.widgets import Checkbox, DataTable, Input, OptionList, Static, TextArea

from callcenter.core import telephony_protocol as tp
from callcenter.tui.agent_disposition import DispositionScreen
from callcenter.tui.agent_lists import CallbacksScreen, ProfileScreen, SearchScreen
from callcenter.tui.agent_screens import CustomerPicker, HelpScreen, QuickCreateScreen, ReasonPicker, TransferPicker
from tests.cti.cti_support import Stack, wait_for
from tests.tui.tui_support import console, notifications, screen_text, type_text

NUMBER = "+8613912345678"
SIZE = (160, 50)


@pytest.fixture
async def stack(tmp_path):
    s = Stack(tmp_path)
    await s.start()
    yield s
    await s.stop()


async def ringing(stack, app, pilot, *, ani="13912345678", display_name="Zhang San", agent="1001"):
    await wait_for(lambda: app.model.link == "up")
    stack.only_agent(agent)
    leg = await stack.caller_to_queue(ani=ani, display_name=display_name)
    await wait_for(lambda: app.pop_painted)
    await pilot.pause()
    return leg


async def test_offer_pop_answer_hang_up_and_disposition_with_callback(stack):
    customer = stack.add_customer("Li Lei", NUMBER, tier="vip", with_history=True)
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.model.link == "up")
        await pilot.pause()
        idle = screen_text(app)
        assert "AVAILABLE" in idle and "No call" in idle and "link up" in idle
        leg = await ringing(stack, app, pilot)
        shown = screen_text(app)
        assert app.model.call.phase == "ringing", "the pop is up before the phone is answered"
        for expected in ("RINGING", "139 1234 5678", "Zhang San", "Li Lei", "VIP", "General", "1 0",
                         "technician visit", "Inverter air conditioner"):
            assert expected in shown, expected
        assert app.model.call.pop.profile.customer_id == customer

        await stack.answer("1001")
        await wait_for(lambda: app.model.state == "on_call")
        await pilot.pause()
        assert "ON CALL" in screen_text(app)
        await pilot.press("e")
        await type_text(pilot, "wants a technician")
        await pilot.press("escape", "h")
        agent_leg = stack.agent_leg("1001")
        await wait_for(lambda: [c for c in stack.fake.sent(tp.Hangup) if c.leg == agent_leg])
        stack.fake.inject(tp.LegEnded(leg=agent_leg, cause="local_hangup"))
        await stack.settle()
        form = await wait_for(lambda: isinstance(app.screen, DispositionScreen) and app.screen)
        await pilot.pause()
        assert form.query_one("#dp-notes", TextArea).text == "wants a technician", "notes carry into the form"
        await pilot.press("down", "down", "down")  # "Customer asked to be called back"
        await pilot.click("#dp-callback")
        assert form.query_one("#dp-callback", Checkbox).value
        for field, value in (("#dp-date", "2026-11-24"), ("#dp-time", "15:30")):
            form.query_one(field, Input).focus()  # focusing selects the proposed value: typing replaces it
            await pilot.pause()
            await type_text(pilot, value)
        assert form.query_one("#dp-date", Input).value == "2026-11-24"
        await pilot.click("#dp-anyone")
        await pilot.press("ctrl+s")
        await wait_for(lambda: not isinstance(app.screen, DispositionScreen))
        await wait_for(lambda: app.model.state == "available")
        call_id = stack.store.get(stack.center.last_call_of_agent["1001"])["call_id"]
        assert stack.dispositions(call_id) == [("callback", "wants a technician", "1001")]
        (callback,) = stack.callbacks()
        assert callback.number == NUMBER and callback.owner_agent_id is None and callback.customer_id == customer
        assert callback.due_from.replace(tzinfo=dt.UTC) == dt.datetime(2026, 11, 24, 7, 30, tzinfo=dt.UTC), \
            "15:30 in the center's zone (Asia/Shanghai)"
        await pilot.pause()
        assert "AVAILABLE" in screen_text(app) and "Disposition saved with a callback" in notifications(app)
        assert leg


async def test_required_note_is_enforced_in_the_form_before_anything_is_sent(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        leg = await ringing(stack, app, pilot)
        await stack.answer("1001")
        await stack.caller_hangs_up(leg, "1001")
        form = await wait_for(lambda: isinstance(app.screen, DispositionScreen) and app.screen)
        await pilot.pause()
        await pilot.press("down", "down")  # "Interested, no sale": note required
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "a note is required" in screen_text(app)
        call_id = app.model.wrap_call.call_id
        assert stack.dispositions(call_id) == [] and stack.center.agent_snapshot("1001")["state"] == "wrap_up"
        await pilot.press("down", "down")  # "Repair case opened": note required too
        form.query_one("#dp-notes", TextArea).focus()
        await type_text(pilot, "compressor")
        await pilot.press("ctrl+s")
        await wait_for(lambda: stack.dispositions(call_id))
        assert stack.dispositions(call_id) == [("repair", "compressor", "1001")]


async def test_server_refusal_keeps_the_form_open_with_its_message(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        leg = await ringing(stack, app, pilot)
        await stack.answer("1001")
        await stack.caller_hangs_up(leg, "1001")
        await wait_for(lambda: isinstance(app.screen, DispositionScreen))
        await pilot.pause()
        call_id = app.model.wrap_call.call_id  # the server no longer knows this agent took it
        stack.center.handled_by.pop(call_id)
        stack.center.owed["1001"].pop(call_id)
        await pilot.press("down")  # "Sale made"
        await pilot.press("ctrl+s")
        await wait_for(lambda: isinstance(app.screen, DispositionScreen) and app.screen.query("#dp-error")
                       and "was not handled by agent 1001" in str(app.screen.query_one("#dp-error", Static).content))
        await pilot.pause()
        codes = app.screen.query_one("#dp-code", OptionList)
        assert codes.get_option_at_index(codes.highlighted).id == "sale", "reopened with the agent's choice"


async def test_a_console_that_reconnects_mid_call_gets_the_call_pop_and_notes_back(stack):
    stack.add_customer("Li Lei", NUMBER, tier="gold")
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await ringing(stack, app, pilot)
        await stack.answer("1001")
        await wait_for(lambda: app.model.state == "on_call")
        await pilot.press("e")
        await type_text(pilot, "draft")
        call_id = app.model.call.call_id
        await wait_for(lambda: stack.center.drafts.get(("1001", call_id)) == "draft")
        app.pop_painted.clear()
        app.model.call.pop = None
        await app.link.drop()
        await wait_for(lambda: app.model.logins == 2 and app.model.link == "up")
        await wait_for(lambda: app.pop_painted.get(call_id))
        await pilot.pause()
        shown = screen_text(app)
        assert "ON CALL" in shown and "Li Lei" in shown and "GOLD" in shown
        assert app.query_one("#notes", TextArea).text == "draft"
        assert "Reconnected: state and call restored from the server" in notifications(app)
        assert stack.center.agent_snapshot("1001")["call"]["call_id"] == call_id, "the call never noticed"


async def test_a_wrong_pin_ends_the_console_with_a_message(stack):
    app = console(stack, "1001", pin="0000")
    async with app.run_test(size=SIZE):
        await wait_for(lambda: app.return_code == 1)
    assert app.return_value == "login refused: unknown agent or wrong PIN"


async def test_a_display_name_with_markup_is_shown_as_typed(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await ringing(stack, app, pilot, display_name="[bold red]x[/]")
        shown = screen_text(app)
        assert shown.count("[bold red]x[/]") >= 2, "in the state bar and in the pop, as typed"
        assert "[bold red]x[/]" in shown.splitlines()[1], "the state bar"
        svg = app.export_screenshot()
        assert "[bold&#160;red]x[/]" in svg or "[bold red]x[/]" in svg


async def test_escape_sequences_in_a_display_name_are_made_visible_not_run(stack):
    # The SIP layer already drops control characters; a console must not rely on it (CRM data,
    # another telephony adapter): this offer goes straight to the CTI server's notifier.
    hostile = "\x1b[2J\x1b]0;owned\x07Eve"
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.model.link == "up")
        stack.cti.to_agent("1001", {"type": "call.offered", "call_id": "c-hostile", "queue": "general",
                                    "ani": "+8613912345678", "display_name": hostile, "customer_id": None,
                                    "callback": None, "waited": 3.0, "ivr_path": []})
        await wait_for(lambda: app.pop_painted.get("c-hostile"))
        await pilot.pause()
        shown = screen_text(app)
        assert shown.count("\ufffd[2J\ufffd]0;owned\ufffdEve") >= 2
        assert "\x1b" not in shown and "\x07" not in shown
        assert not any("\x1b" in n for n in notifications(app))


async def test_not_ready_with_a_reason_then_ready(stack):
    app = console(stack, "1002")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.model.link == "up")
        await pilot.press("n")
        picker = await wait_for(lambda: isinstance(app.screen, ReasonPicker) and app.screen)
        await pilot.pause()
        options = picker.query_one(OptionList)
        assert [options.get_option_at_index(i).id for i in range(options.option_count)][:3] == \
            ["break", "lunch", "training"] and "no_answer" not in str(screen_text(app))
        await pilot.press("down", "enter")
        await wait_for(lambda: app.model.state == "not_ready")
        await pilot.pause()
        assert stack.center.agent_snapshot("1002")["reason"] == "lunch"
        assert "NOT READY: LUNCH" in screen_text(app)
        await pilot.press("r")
        await wait_for(lambda: app.model.state == "available")
        assert stack.center.agent_snapshot("1002")["state"] == "available"


async def test_hold_and_resume_and_a_refused_hold(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await ringing(stack, app, pilot)
        await stack.answer("1001")
        await wait_for(lambda: app.model.state == "on_call")
        await pilot.pause()
        await pilot.press("o")
        await wait_for(lambda: app.model.call.held)
        await pilot.pause()
        assert "ON HOLD" in screen_text(app)
        await pilot.press("o")
        await wait_for(lambda: not app.model.call.held)
        stack.center.hold = lambda agent: False  # the call flow cannot hold it now
        await pilot.press("o")
        await wait_for(lambda: any("could not be put on hold" in n for n in notifications(app)))
        assert not app.model.call.held


async def test_help_lists_every_key(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.model.link == "up")
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        keys = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        bound = {b.key if b.key != "question_mark" else "?" for b in app.BINDINGS if b.show}
        assert bound - {"ctrl+q"} <= set(keys) and "Ctrl+Q" in keys
        assert "Blind transfer" in screen_text(app)
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, HelpScreen))


async def test_the_footer_offers_what_can_be_done_now(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        def footer() -> str:
            return screen_text(app).splitlines()[-1]

        await wait_for(lambda: "Not ready" in footer())
        assert "Callbacks" in footer() and "Hang up" not in footer() and "Ready " not in footer()
        await ringing(stack, app, pilot)
        await stack.answer("1001")
        await wait_for(lambda: "Hang up" in footer())
        assert "Transfer" in footer() and "Hold" in footer() and "Ready " not in footer()


async def test_shared_number_pop_and_picking_the_caller(stack):
    stack.add_customer("Wang Jun", "+8613700000001")
    second = stack.add_customer("Wang Jun Jr", "+8613700000001", company="[blink]Acme[/]")
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await ringing(stack, app, pilot, ani="13700000001")
        shown = screen_text(app)
        assert "2 customers share this number" in shown and "[blink]Acme[/]" in shown
        await pilot.press("p")
        await wait_for(lambda: isinstance(app.screen, CustomerPicker))
        await pilot.pause()
        await pilot.press("down", "enter")
        await wait_for(lambda: app.model.call.pop.kind == "customer")
        await pilot.pause()
        assert "Customer 360" in screen_text(app) and app.model.call.pop.profile.customer_id == second
        assert stack.store.get(app.model.call.call_id)["customer_id"] == second


async def test_unknown_number_pop_and_quick_create(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await ringing(stack, app, pilot, ani="+442071838750", display_name="")
        assert "New contact" in screen_text(app)
        await pilot.press("a")
        form = await wait_for(lambda: isinstance(app.screen, QuickCreateScreen) and app.screen)
        await pilot.pause()
        assert form.query_one("#qc-number", Input).value == "+442071838750"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "A name is needed" in screen_text(app)
        form.query_one("#qc-name", Input).focus()
        await type_text(pilot, "Ann Smith")
        await pilot.press("ctrl+s")
        await wait_for(lambda: app.model.call.pop.kind == "customer")
        await pilot.pause()
        assert "Ann Smith" in screen_text(app)
        assert stack.store.get(app.model.call.call_id)["customer_id"] == app.model.call.pop.profile.customer_id


async def test_my_callbacks_with_dial_now(stack):
    now = stack.clock()
    for due, owner in [(now - dt.timedelta(hours=4), "1001"), (now - dt.timedelta(minutes=10), None),
                       (now + dt.timedelta(days=1), "1001"), (now - dt.timedelta(hours=1), "1002")]:
        stack.store.add_callback(number=NUMBER, customer_id=None, queue="general", due_from=due, due_until=None,
                                 source="agent", owner_agent_id=owner)
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.model.link == "up")
        await pilot.press("c")
        screen = await wait_for(lambda: isinstance(app.screen, CallbacksScreen) and app.screen)
        table = screen.query_one(DataTable)
        await wait_for(lambda: table.row_count == 3)
        await pilot.pause()
        states = [str(table.get_row_at(i)[1]) for i in range(3)]
        assert states == ["overdue", "due", "later"]
        assert "1 overdue, 1 due now" in screen_text(app)
        await pilot.press("d")  # the overdue one of mine, at the top
        await wait_for(lambda: not isinstance(app.screen, CallbacksScreen))
        assert any("Dialling 139 1234 5678" in n for n in notifications(app))
        await wait_for(lambda: app.model.call is not None and app.pop_painted)
        await pilot.pause()
        assert app.model.call.callback == NUMBER and app.model.call.phase == "ringing"
        assert "RINGING" in screen_text(app) and "139 1234 5678" in screen_text(app)
        await stack.center.drain()
        first = stack.callbacks()[0]
        assert (first.status, first.attempts) == ("in_progress", 1)
        agent_leg = await stack.answer("1001")
        customer = stack.fake.sent(tp.Dial)[-1]
        assert customer.peer == agent_leg and customer.uri.startswith("sip:8613912345678@")
        stack.fake.inject(tp.LegAnswered(leg=customer.leg))
        await stack.settle()
        await wait_for(lambda: app.model.state == "on_call")
        assert stack.callbacks()[0].status == "done"
        call_id = app.model.call.call_id
        row = stack.store.get(call_id)
        assert row["direction"] == "outbound" and row["outcome"] == "callback_answered" and row["ani"] == NUMBER
        stack.fake.inject(tp.LegEnded(leg=customer.leg, cause="remote_bye"))
        await stack.settle()
        stack.fake.inject(tp.LegEnded(leg=agent_leg, cause="local_hangup"))
        await stack.settle()
        await wait_for(lambda: isinstance(app.screen, DispositionScreen))
        await pilot.pause()
        await pilot.press("ctrl+s")  # "Resolved"
        await wait_for(lambda: stack.dispositions(call_id))
        assert stack.dispositions(call_id) == [("resolved", None, "1001")]
        await pilot.press("c")
        screen = await wait_for(lambda: isinstance(app.screen, CallbacksScreen) and app.screen)
        table = screen.query_one(DataTable)
        await wait_for(lambda: table.row_count == 2)
        assert [str(table.get_row_at(i)[1]) for i in range(2)] == ["due", "later"], "the kept one is gone"


async def test_search_and_recent_contacts_show_the_customer(stack):
    stack.add_customer("Li Lei", NUMBER, tier="vip", with_history=True)
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        leg = await ringing(stack, app, pilot)
        await stack.answer("1001")
        await stack.caller_hangs_up(leg, "1001")
        await wait_for(lambda: isinstance(app.screen, DispositionScreen))
        await pilot.pause()
        await pilot.press("ctrl+s")  # "Resolved on first contact"
        await wait_for(lambda: app.model.state == "available")
        await pilot.press("s")
        search = await wait_for(lambda: isinstance(app.screen, SearchScreen) and app.screen)
        await type_text(pilot, "li l")
        await pilot.press("enter")
        table = search.query_one(DataTable)
        await wait_for(lambda: table.row_count == 1)
        await pilot.press("down", "enter")  # as the hint says: ↓ to the results, Enter shows one
        profile = await wait_for(lambda: isinstance(app.screen, ProfileScreen) and app.screen)
        await wait_for(lambda: "Li Lei" in screen_text(app))
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, ProfileScreen))
        await pilot.press("l")
        await wait_for(lambda: app.screen.query(DataTable) and app.screen.query_one(DataTable).row_count == 1)
        await pilot.pause()
        shown = screen_text(app)
        assert "My recent contacts" in shown and "resolved" in shown and "Li Lei" in shown
        assert profile is not None


async def test_a_supervisor_console_takes_no_calls(stack):
    app = console(stack, "9001")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: "Search" in screen_text(app).splitlines()[-1])
        footer = screen_text(app).splitlines()[-1]
        assert "Not ready" not in footer and "Callbacks" not in footer and "Hang up" not in footer
        assert any("Supervisor login" in n for n in notifications(app))
        assert stack.center.agent_snapshot("9001")["state"] == "logged_out"


async def test_the_console_logs_in_over_tls(tmp_path):
    from callcenter.cti.client import client_ssl_context
    from callcenter.tui.agent_console import AgentConsoleApp
    from tests.cti.cti_support import PINS
    from tests.cti.test_server import _self_signed

    cert, key = _self_signed(tmp_path)
    tls = Stack(tmp_path, overrides=(f"cti.certificate={cert}", f"cti.private_key={key}"))
    await tls.start()
    try:
        app = AgentConsoleApp(url=tls.url, agent_id="1001", pin=PINS["1001"],
                              ssl_context=client_ssl_context(tls.url, str(cert)))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.model.link == "up")
            await pilot.pause()
            assert tls.url.startswith("wss://") and "AVAILABLE" in screen_text(app)
    finally:
        await tls.stop()


async def test_log_out_at_the_end_of_the_shift(stack):
    app = console(stack, "1002")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.model.link == "up")
        await pilot.press("x")
        await wait_for(lambda: "Log out of the ACD?" in screen_text(app))
        await pilot.press("n")
        await pilot.pause()
        assert stack.center.agent_snapshot("1002")["state"] == "available"
        await pilot.press("x")
        await wait_for(lambda: "Log out of the ACD?" in screen_text(app))
        await pilot.press("y")
        await wait_for(lambda: app.return_value == "logged out")
    assert stack.center.agent_snapshot("1002")["state"] == "logged_out"


async def pick_transfer_target(app, pilot, target: str) -> None:
    await pilot.press("t")
    picker = await wait_for(lambda: isinstance(app.screen, TransferPicker) and app.screen)
    await pilot.pause()
    options = picker.query_one(OptionList)
    options.highlighted = options.get_option_index(target)
    await pilot.press("enter")
    await wait_for(lambda: not isinstance(app.screen, TransferPicker))


async def test_blind_transfer_to_an_agent_refused_while_busy_then_done(stack):
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        leg = await ringing(stack, app, pilot)  # 1002 is on break
        await stack.answer("1001")
        await wait_for(lambda: app.model.state == "on_call")
        await pick_transfer_target(app, pilot, "agent:1002")
        await wait_for(lambda: any("not available" in n for n in notifications(app)))
        assert any("1002" in n and "not ready" in n for n in notifications(app)), notifications(app)
        await pilot.pause()
        assert app.model.state == "on_call" and "ON CALL" in screen_text(app), "the call stays with the agent"
        stack.center.ready("1002")
        await pick_transfer_target(app, pilot, "agent:1002")
        await wait_for(lambda: app.model.state == "wrap_up")
        assert "Transferred to agent:1002" in notifications(app)
        ring = stack.agent_leg("1002")
        assert [d for d in stack.fake.sent(tp.Dial) if d.leg == ring][0].peer == leg
        assert stack.center.agent_snapshot("1002")["state"] == "reserved"
        stack.fake.inject(tp.LegAnswered(leg=ring))
        await stack.settle()
        form = await wait_for(lambda: isinstance(app.screen, DispositionScreen) and app.screen)
        await pilot.pause()
        call_id = app.model.wrap_call.call_id
        await pilot.press("ctrl+s")  # after 1002 has answered: 1001 still saves its part
        await wait_for(lambda: stack.dispositions(call_id))
        assert stack.dispositions(call_id) == [("resolved", None, "1001")] and form is not None


async def test_dial_now_waits_for_the_disposition_of_the_last_call(stack):
    stack.store.add_callback(number=NUMBER, customer_id=None, queue="general", due_from=stack.clock(),
                             due_until=None, source="agent", owner_agent_id="1001")
    app = console(stack, "1001")
    async with app.run_test(size=SIZE) as pilot:
        leg = await ringing(stack, app, pilot)
        await stack.answer("1001")
        await stack.caller_hangs_up(leg, "1001")
        await wait_for(lambda: isinstance(app.screen, DispositionScreen))
        await pilot.pause()
        await pilot.press("escape")  # postponed
        await wait_for(lambda: not isinstance(app.screen, DispositionScreen))
        await pilot.press("c")
        screen = await wait_for(lambda: isinstance(app.screen, CallbacksScreen) and app.screen)
        await wait_for(lambda: screen.query_one(DataTable).row_count == 1)
        dials = len(stack.fake.sent(tp.Dial))
        await pilot.press("d")
        await wait_for(lambda: any("disposition of the last call first" in n for n in notifications(app)))
        assert isinstance(app.screen, CallbacksScreen) and len(stack.fake.sent(tp.Dial)) == dials, "nothing dialled"
        assert stack.callbacks()[0].status == "pending"
