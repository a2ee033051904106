"""The agent console against a real `callcenter serve`: a SIPp caller keys through the IVR into the
queue, a SIPp phone rings for agent 1001, and the Textual console (headless, over CTI on loopback)
shows the pop while the phone rings, follows the answer and the caller's hang-up, and saves the
disposition with a callback; the database holds it all afterwards."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from textual.widgets import DataTable, OptionList

from callcenter.db import Database
from callcenter.db.models import Callback, Customer, Disposition, Interaction, PhoneNumber
from callcenter.tui.agent_console import AgentConsoleApp
from callcenter.tui.agent_disposition import DispositionScreen
from callcenter.tui.agent_lists import CallbacksScreen
from tests.e2e.sip_support import AGENT_SCENARIOS, SCENARIOS, Server, dtmf_pcap, free_udp_port, sipp, until
from tests.tui.tui_support import notifications, screen_text

AUDIO = "/usr/share/sip-tester/g711a.pcap"
NUMBER = "+8613912345678"
RING_MS = 2500  # the phone rings this long before it answers: the pop must be up before then
KEY_AFTER_MS = 16000  # after the VIP greeting (about 11 s of prompt), in the main menu


def slow_phone_scenario(folder: Path) -> Path:
    """The answering phone of the SIP tests, ringing longer before it picks up."""
    text = (AGENT_SCENARIOS / "agent_answer.xml").read_text()
    assert '<pause milliseconds="300"/>' in text, "the phone scenario changed: update this helper"
    path = folder / "agent_answer_slow.xml"
    path.write_text(text.replace('<pause milliseconds="300"/>', f'<pause milliseconds="{RING_MS}"/>', 1))
    return path


def patient_caller_scenario(folder: Path) -> Path:
    """The IVR caller of the SIP tests, keying later: a VIP hears a longer greeting that keys cannot cut."""
    text = (SCENARIOS / "caller_ivr.xml").read_text()
    assert '<pause milliseconds="8000"/>' in text, "the caller scenario changed: update this helper"
    path = folder / "caller_ivr_patient.xml"
    path.write_text(text.replace('<pause milliseconds="8000"/>', f'<pause milliseconds="{KEY_AFTER_MS}"/>', 1))
    return path


def add_customer(url: str) -> int:
    db = Database(url)
    with db.session() as s:
        customer = Customer(name="Li Lei", tier="vip", credit_limit=Decimal("20000"), balance=Decimal("0"),
                            language="zh", notes="prefers calls after 6pm")
        customer.phones.append(PhoneNumber(e164=NUMBER, kind="mobile", raw=NUMBER))
        s.add(customer)
        s.flush()
        customer_id = customer.id
    db.dispose()
    return customer_id


def recorded(url: str) -> str:
    """What the database holds so far, for a failure message."""
    db = Database(url)
    with db.session() as s:
        lines = [f"{r.call_id} {r.outcome} queue={r.queue} agent={r.agent_id} ivr={r.ivr_path}"
                 for r in s.scalars(select(Interaction))]
    db.dispose()
    return "\n".join(lines)


async def test_real_call_pops_on_the_console_and_the_disposition_is_saved(tmp_path, prompts):
    phone_port = free_udp_port()
    server = Server(tmp_path, free_udp_port(4), f"sqlite:///{tmp_path / 'cc.db'}", prompts, {"1001": phone_port},
                    extra=[arg for agent in ("1002", "1003", "1004", "1005")
                           for arg in ("--set", f"agents.{agent}.auto_login=false")])
    assert server.run("db", "upgrade").returncode == 0
    customer_id = add_customer(server.database_url)
    server.start()
    phone = caller = None
    try:
        phone = sipp(tmp_path / "phone", slow_phone_scenario(tmp_path), port=phone_port, calls=1,
                     keys={"audio_pcap": AUDIO}, timeout=120)
        app = AgentConsoleApp(url=f"ws://127.0.0.1:{server.port + 3}", agent_id="1001", pin="1234")
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.model.link == "up" and app.model.state == "available", 20, "console logged in")
            caller = sipp(tmp_path / "caller", patient_caller_scenario(tmp_path), remote=server.port, port=free_udp_port(),
                          calls=1, limit=1, timeout=120, duration_ms=20000,
                          keys={"key_pcap": dtmf_pcap("1"), "ani": "13912345678", "display": "Zhang San"})
            await until(lambda: app.model.call is not None, 60, "offer on the console",
                        lambda: server.text()[-4000:] + caller.errors() + recorded(server.database_url))
            await until(lambda: app.pop_painted, 5, "pop painted")
            await pilot.pause()
            shown = screen_text(app)
            assert app.model.call.phase == "ringing", "the pop is up before the phone is answered"
            for expected in ("RINGING", "139 1234 5678", "Zhang San", "Li Lei", "VIP", "prefers calls after 6pm"):
                assert expected in shown, (expected, shown)
            assert app.model.call.queue == "vip", "key 1 (sales) for a VIP caller: the VIP queue"
            assert app.model.call.pop.profile.customer_id == customer_id
            call_id = app.model.call.call_id

            await until(lambda: app.model.state == "on_call", 20, "answered by the phone")
            await pilot.pause()
            assert "ON CALL" in screen_text(app)
            await pilot.press("e")
            for key in "likes it":
                await pilot.press("space" if key == " " else key)
            await pilot.press("escape")
            form = await until(lambda: isinstance(app.screen, DispositionScreen) and app.screen, 30,
                               "wrap-up form after the caller hangs up")
            await pilot.pause()
            codes = form.query_one("#dp-code", OptionList)
            codes.focus()
            await pilot.pause()
            for _ in range(len(codes.options)):  # down to "Customer asked to be called back"
                if codes.highlighted is not None and codes.get_option_at_index(codes.highlighted).id == "callback":
                    break
                await pilot.press("down")
            assert codes.get_option_at_index(codes.highlighted).id == "callback"
            await pilot.click("#dp-callback")  # the proposed time (in an hour) is kept
            await pilot.press("ctrl+s")
            await until(lambda: not isinstance(app.screen, DispositionScreen), 10, "form closed")
            await until(lambda: any("Disposition saved with a callback" in n for n in notifications(app)), 10,
                        "saved")
            assert form is not None
        assert caller.wait(60) == 0, caller.errors() + server.text()[-3000:]
    finally:
        for peer in (phone, caller):
            if peer is not None:
                peer.kill()
        server.stop()

    db = Database(server.database_url)
    with db.session() as s:
        row = s.scalar(select(Interaction).where(Interaction.call_id == call_id))
        assert row.outcome == "answered" and row.agent_id == "1001" and row.queue == "vip"
        assert row.customer_id == customer_id and row.ani == NUMBER and row.talk_seconds and row.ended_at
        dispositions = [(d.code, d.notes, d.agent_id) for d in s.scalars(select(Disposition))]
        assert dispositions == [("callback", "likes it", "1001")]
        (callback,) = s.scalars(select(Callback))
        assert callback.number == NUMBER and callback.customer_id == customer_id
        assert callback.owner_agent_id == "1001" and callback.status == "pending"
        assert callback.due_from.replace(tzinfo=dt.UTC) > row.ended_at.replace(tzinfo=dt.UTC)
    db.dispose()


async def test_dial_now_rings_the_agent_phone_then_the_customer_and_keeps_the_callback(tmp_path, prompts):
    phone_port, customer_port = free_udp_port(), free_udp_port()
    server = Server(tmp_path, free_udp_port(4), f"sqlite:///{tmp_path / 'cc.db'}", prompts, {"1001": phone_port},
                    extra=["-v", "--set", f"sip.outbound_uri=sip:{{number}}@127.0.0.1:{customer_port}",
                           *[arg for agent in ("1002", "1003", "1004", "1005")
                             for arg in ("--set", f"agents.{agent}.auto_login=false")]])
    assert server.run("db", "upgrade").returncode == 0
    customer_id = add_customer(server.database_url)
    db = Database(server.database_url)
    with db.session() as s:
        s.add(Callback(number=NUMBER, customer_id=customer_id, queue="sales", owner_agent_id="1001", status="pending",
                       source="agent", notes="quote for the air conditioner",
                       due_from=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)))
    db.dispose()
    server.start()
    phone = customer = None
    try:
        phone = sipp(tmp_path / "phone", AGENT_SCENARIOS / "agent_answer.xml", port=phone_port, calls=1,
                     keys={"audio_pcap": AUDIO}, timeout=120)
        customer = sipp(tmp_path / "customer", AGENT_SCENARIOS / "agent_answer.xml", port=customer_port, calls=1,
                        keys={"audio_pcap": AUDIO}, timeout=120)
        app = AgentConsoleApp(url=f"ws://127.0.0.1:{server.port + 3}", agent_id="1001", pin="1234")
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.model.link == "up" and app.model.state == "available", 20, "console logged in")
            await pilot.press("c")
            screen = await until(lambda: isinstance(app.screen, CallbacksScreen) and app.screen, 10, "callbacks")
            await until(lambda: screen.query_one(DataTable).row_count == 1 and screen.rows, 10, "one callback listed")
            await pilot.pause()
            await pilot.press("d")
            await until(lambda: app.model.call is not None and app.pop_painted, 20, "own phone ringing with the pop",
                        lambda: server.text()[-6000:] + "\n".join(notifications(app)) + "\n" + screen_text(app))
            assert app.model.call.callback == NUMBER
            assert "Li Lei" in screen_text(app)
            await until(lambda: app.model.state == "on_call", 20, "agent answered")
            call_id = app.model.call.call_id
            await until(lambda: outcome(server.database_url, call_id) == "callback_answered", 30,
                        "the customer answered", lambda: server.text()[-3000:] + customer.errors())
            await pilot.pause(1.0)  # a moment of conversation
            await pilot.press("h")
            await until(lambda: isinstance(app.screen, DispositionScreen), 20, "wrap-up form after hanging up")
            await pilot.pause()
            await pilot.press("ctrl+s")  # resolved
            await until(lambda: not isinstance(app.screen, DispositionScreen), 10, "form closed")
        assert phone.wait(30) == 0, phone.errors()
        assert customer.wait(30) == 0, customer.errors()
    finally:
        for peer in (phone, customer):
            if peer is not None:
                peer.kill()
        server.stop()

    db = Database(server.database_url)
    with db.session() as s:
        row = s.scalar(select(Interaction).where(Interaction.call_id == call_id))
        assert row.direction == "outbound" and row.outcome == "callback_answered" and row.agent_id == "1001"
        assert row.ani == NUMBER and row.customer_id == customer_id and row.answered_at and row.ended_at
        (callback,) = s.scalars(select(Callback))
        assert (callback.status, callback.attempts) == ("done", 1) and call_id in callback.result
        assert callback.last_attempt_id == row.id, "the callback points at the contact that kept it"
        assert [(d.code, d.agent_id) for d in s.scalars(select(Disposition))] == [("resolved", "1001")]
    db.dispose()


def outcome(url: str, call_id: str) -> str | None:
    db = Database(url)
    with db.session() as s:
        found = s.scalar(select(Interaction.outcome).where(Interaction.call_id == call_id))
    db.dispose()
    return found
