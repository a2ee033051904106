"""The call flow against the fake telephony: IVR, queue, offer, bridge, hang-ups, callbacks, worker loss."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from callcenter.config import load
from callcenter.core.contact_center import ContactCenter
from callcenter.core.ports import InMemoryContactStore
from callcenter.prompts import load_menu
from callcenter.core import telephony_protocol as tp
from callcenter.telephony.pool import FakeTelephony
from ivr.ports import InMemorySelfService
from tests.conftest import SAMPLE_CONFIG

REPO = Path(__file__).resolve().parents[2]
OPEN = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # a Monday morning


def moving_clock(start: dt.datetime):
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


class Harness:
    def __init__(self, overrides=(), at: dt.datetime = OPEN):
        self.settings = load(SAMPLE_CONFIG, environ={}, overrides=list(overrides)).settings
        self.fake = FakeTelephony(workers=2)
        self.store = InMemoryContactStore()
        self.cc = ContactCenter(
            settings=self.settings, menu=load_menu(REPO / "config/ivr.toml").menu, telephony=self.fake,
            store=self.store, selfservice=InMemorySelfService(), prompts_dir=Path("/prompts"),
            clock=moving_clock(at),
        )
        self.finished: set[str] = set()

    async def settle(self, rounds: int = 30) -> None:
        """Let the loop run, finishing every prompt that is not hold music (as a caller who listens)."""
        for _ in range(rounds):
            await asyncio.sleep(0.005)
            for command in self.fake.sent(tp.PlayPrompts):
                if not command.loop and command.id not in self.finished:
                    self.finished.add(command.id)
                    self.fake.inject(tp.PlaybackFinished(leg=command.leg, playback=command.id, completed=True))
        await self.cc.drain()

    async def press(self, leg: str, digits: str) -> None:
        for digit in digits:
            self.fake.inject(tp.DigitReceived(leg=leg, digit=digit, method="rfc4733"))
            await self.settle()

    def dials(self) -> list[tp.Dial]:
        return self.fake.sent(tp.Dial)

    def row(self, leg_or_call: str) -> dict:
        call_id = next(c for c, r in self.store.rows.items() if leg_or_call in (c,)) if leg_or_call in self.store.rows \
            else self.only_call_id()
        return self.store.rows[call_id]

    def only_call_id(self) -> str:
        (call_id,) = list(self.store.rows)
        return call_id


@pytest.fixture
async def h():
    harness = Harness()
    await harness.cc.start()
    yield harness
    await harness.cc.stop()


async def caller_to_general_queue(h: Harness, ani: str = "13912345678") -> str:
    leg = h.fake.arrive(ani=ani, display_name="Zhang San", remote_address="127.0.0.1:5099")
    await h.settle()
    assert isinstance(h.fake.sent()[0], tp.AnswerCall)
    await h.press(leg, "1")  # Mandarin
    await h.press(leg, "0")  # main menu: an agent
    return leg


async def test_caller_reaches_agent_and_every_step_is_recorded(h):
    leg = await caller_to_general_queue(h)
    (dial,) = h.dials()
    assert dial.peer == leg, "the agent leg is dialled on the caller's worker"
    assert dial.caller_id == "+8613912345678" and dial.display_name == "Zhang San"
    assert dial.uri == h.settings.agents["1001"].phone or dial.uri == h.settings.agents["1002"].phone
    moh = [c for c in h.fake.sent(tp.PlayPrompts) if c.loop]
    assert moh and moh[-1].files[0].endswith("moh.wav"), "hold music while waiting"
    h.fake.inject(tp.LegAnswered(leg=dial.leg))
    await h.settle()
    (bridge,) = h.fake.sent(tp.Bridge)
    assert {bridge.a, bridge.b} == {leg, dial.leg}
    h.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye", duration=10))
    await h.settle()
    assert any(isinstance(c, tp.Hangup) and c.leg == dial.leg for c in h.fake.sent()), "agent leg hung up too"
    h.fake.inject(tp.LegEnded(leg=dial.leg, cause="local_hangup"))
    await h.settle()
    row = h.store.rows[h.only_call_id()]
    assert row["outcome"] == "answered" and row["ended_at"] is not None
    assert row["queue"] == "general" and row["agent_id"] in ("1001", "1002")
    assert row["answered_at"] >= row["offered_at"] >= row["queued_at"] >= row["arrived_at"]
    assert row["ivr_path"] and row["language"] == "zh"
    assert h.store.event_names(h.only_call_id()) == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    assert h.cc.engine.agent_state(row["agent_id"])[0] == "wrap_up"
    assert not h.cc.calls, "nothing left behind"


async def test_ring_no_answer_returns_caller_and_tries_another_agent(h):
    leg = await caller_to_general_queue(h)
    first = h.dials()[0]
    h.fake.inject(tp.LegFailed(leg=first.leg, status=408, reason="Request Timeout"))
    await h.settle()
    second = h.dials()[-1]
    assert len(h.dials()) == 2 and second.uri != first.uri, "offered to the other logged-in agent"
    assert second.peer == leg
    assert "RINGNOANSWER" in h.store.event_names()


async def test_agent_rejecting_counts_as_missed_and_agent_goes_not_ready(h):
    leg = await caller_to_general_queue(h)
    rejected = {}
    for _ in range(6):
        dial = h.dials()[-1]
        rejected[dial.uri] = rejected.get(dial.uri, 0) + 1
        h.fake.inject(tp.LegFailed(leg=dial.leg, status=486, reason="Busy Here"))
        await h.settle()
        if not h.cc.calls[next(iter(h.cc.calls))].agent_leg:
            break
    states = {a: h.cc.engine.agent_state(a) for a in ("1001", "1002")}
    assert all(state == ("not_ready", "no_answer") for state in states.values()), states
    assert h.cc.calls, "the caller is still waiting"
    assert leg in h.cc.by_leg


async def test_caller_hanging_up_while_agent_phone_rings_cancels_the_agent_leg(h):
    leg = await caller_to_general_queue(h)
    dial = h.dials()[0]
    h.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye"))
    await h.settle()
    assert any(isinstance(c, tp.Hangup) and c.leg == dial.leg for c in h.fake.sent()), "no phantom call"
    agent = h.store.rows[h.only_call_id()]["agent_id"]
    assert h.cc.engine.agent_state(agent)[0] == "available", "the agent is released at once"
    assert h.store.rows[h.only_call_id()]["outcome"] == "abandoned"
    assert "ABANDON" in h.store.event_names()


async def test_no_agents_free_caller_waits_then_abandons(h):
    for agent in ("1001", "1002"):
        h.cc.not_ready(agent, "break")
    leg = await caller_to_general_queue(h)
    assert h.dials() == []
    h.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye"))
    await h.settle()
    row = h.store.rows[h.only_call_id()]
    assert row["outcome"] == "abandoned" and row["wait_seconds"] is not None
    assert h.store.event_names() == ["AGENTLOGIN", "AGENTLOGIN", "PAUSE", "PAUSE", "ENTERQUEUE", "ABANDON"]


async def test_callback_key_keeps_place_and_rings_agent_then_customer(h):
    for agent in ("1001", "1002"):
        h.cc.not_ready(agent, "break")
    leg = await caller_to_general_queue(h)
    await h.press(leg, "9")
    assert any(isinstance(c, tp.Hangup) and c.leg == leg for c in h.fake.sent()), "caller hung up after confirm"
    h.fake.inject(tp.LegEnded(leg=leg, cause="local_hangup"))
    await h.settle()
    assert h.store.callbacks and h.store.callbacks[0]["number"] == "+8613912345678"
    h.cc.ready("1001")
    await h.settle()
    agent_dial = h.dials()[-1]
    assert agent_dial.peer is None and agent_dial.uri == h.settings.agents["1001"].phone
    h.fake.inject(tp.LegAnswered(leg=agent_dial.leg))
    await h.settle()
    customer = h.dials()[-1]
    assert customer.uri == "sip:8613912345678@127.0.0.1:5060" and customer.peer == agent_dial.leg
    h.fake.inject(tp.LegAnswered(leg=customer.leg))
    await h.settle()
    assert h.fake.sent(tp.Bridge)[-1] == tp.Bridge(id=h.fake.sent(tp.Bridge)[-1].id, a=agent_dial.leg, b=customer.leg)
    assert "EXITWITHKEY" in h.store.event_names()


async def test_worker_death_closes_its_calls_and_frees_agents(h):
    leg = await caller_to_general_queue(h)
    dial = h.dials()[0]
    h.fake.inject(tp.LegAnswered(leg=dial.leg))
    await h.settle()
    agent = h.store.rows[h.only_call_id()]["agent_id"]
    h.fake.inject(tp.WorkerDied(worker="w1", legs=(leg, dial.leg), returncode=-9))
    await h.settle()
    row = h.store.rows[h.only_call_id()]
    assert row["outcome"] == "failed_worker" and row["ended_at"] is not None
    assert h.cc.engine.agent_state(agent)[0] in ("wrap_up", "available")
    assert not h.cc.calls
    assert h.store.event_names(h.only_call_id()) == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    assert h.store.events[-1][4]["reason"] == "failed_worker", "queue_log ends once, with the reason"


async def idle(h: Harness, rounds: int = 10) -> None:
    """Let the loop run without finishing any prompt (a caller still listening)."""
    for _ in range(rounds):
        await asyncio.sleep(0.005)
    await h.cc.drain()


async def test_a_key_during_the_greeting_stops_it_and_routes_as_if_pressed_in_the_menu(h):
    leg = h.fake.arrive(ani="13912345678", display_name="Zhang San", remote_address="127.0.0.1:5099")
    await h.settle()  # the language menu has been read
    h.fake.inject(tp.DigitReceived(leg=leg, digit="1", method="rfc4733"))  # Mandarin
    await idle(h)
    greeting = h.fake.sent(tp.PlayPrompts)[-1]
    assert greeting.files == ("/prompts/zh/welcome.wav",)
    assert h.fake.sent(tp.StopPlayback) == []
    h.fake.inject(tp.DigitReceived(leg=leg, digit="1", method="rfc4733"))  # sales, three seconds into the greeting
    await idle(h)
    (stop,) = h.fake.sent(tp.StopPlayback)
    assert stop.leg == leg
    commands = h.fake.sent()
    assert commands.index(stop) > commands.index(greeting), "the greeting is stopped at the key"
    h.fake.inject(tp.PlaybackFinished(leg=leg, playback=greeting.id, completed=False))  # the worker's answer
    await h.settle()
    files = [f for c in h.fake.sent(tp.PlayPrompts) for f in c.files]
    assert not any(f.endswith("/main_menu.wav") for f in files), "the main menu took the key without its prompt"
    assert any(f.endswith("/zh/to_sales.wav") for f in files)
    call_id = h.only_call_id()
    assert h.cc.calls[call_id].queue == "sales"
    path = h.store.rows[call_id]["ivr_path"]
    assert any(s["step"] == "type_ahead" and s["node"] == "greet_new" and s.get("barge_in") for s in path)
    assert [(s["node"], s["digits"], s.get("typed_ahead")) for s in path if s["step"] == "input"] == [
        ("language", "1", None), ("main", "1", True),
    ]
    assert h.store.event_names(call_id) == ["ENTERQUEUE"]


async def test_a_barged_in_menu_prompt_is_stopped_once_and_the_next_prompt_plays(h):
    leg = h.fake.arrive(ani="13912345678", remote_address="127.0.0.1:5099")
    await idle(h)
    menu_prompt = h.fake.sent(tp.PlayPrompts)[-1]
    assert menu_prompt.files[0].endswith("/choose_language.wav")
    h.fake.inject(tp.DigitReceived(leg=leg, digit="2", method="rfc4733"))  # during the language prompt
    await idle(h)
    (stop,) = h.fake.sent(tp.StopPlayback)
    assert h.fake.sent().index(stop) > h.fake.sent().index(menu_prompt)
    assert h.fake.sent(tp.PlayPrompts)[-1].files == ("/prompts/en/welcome.wav",)
    h.fake.inject(tp.DigitReceived(leg=leg, digit="A", method="info"))  # not a key the IVR knows: nothing stops
    await idle(h)
    assert len(h.fake.sent(tp.StopPlayback)) == 1


async def test_caller_from_outside_the_allow_list_gets_403(h):
    leg = h.fake.arrive(remote_address="203.0.113.9:5060")
    await h.settle()
    (reject,) = h.fake.sent(tp.RejectCall)
    assert reject.leg == leg and reject.status == 403
    assert h.store.rows == {} and h.cc.counters["refused_source"] == 1


async def test_hostile_caller_id_is_data(h):
    leg = h.fake.arrive(ani="<script>alert(1)</script>", display_name="'; DROP TABLE interactions;--" + "x" * 100,
                        remote_address="127.0.0.1:5099")
    await h.settle()
    row = h.store.rows[h.only_call_id()]
    assert row["ani"] == "<script>alert(1)</script>" and row["display_name"].startswith("'; DROP")
    h.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye"))
    await h.settle()
    assert h.store.rows[h.only_call_id()]["outcome"] == "abandoned_ivr"


async def test_closed_hours_offer_callback_instead_of_queue():
    harness = Harness(at=dt.datetime(2026, 11, 22, 21, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))))  # Sunday night
    await harness.cc.start()
    try:
        leg = harness.fake.arrive(remote_address="127.0.0.1:5099")
        await harness.settle()
        await harness.press(leg, "1")
        texts = [f for c in harness.fake.sent(tp.PlayPrompts) for f in c.files]
        assert any(f.endswith("/zh/closed.wav") for f in texts)
        await harness.press(leg, "9")
        assert any(isinstance(c, tp.Hangup) for c in harness.fake.sent())
        assert harness.dials() == []
    finally:
        await harness.cc.stop()


async def test_disposition_rules_and_reconnect_snapshot(h):
    from callcenter.core.contact_center import DispositionRefused

    leg = await caller_to_general_queue(h)
    dial = h.dials()[0]
    agent = "1001" if dial.uri == h.settings.agents["1001"].phone else "1002"
    snapshot = h.cc.agent_snapshot(agent)
    assert snapshot["state"] == "reserved" and snapshot["call"]["phase"] == "ringing"
    h.fake.inject(tp.LegAnswered(leg=dial.leg))
    await h.settle()
    call_id = h.only_call_id()
    assert h.cc.agent_snapshot(agent)["call"]["call_id"] == call_id
    h.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye"))
    await h.settle()
    other = "1002" if agent == "1001" else "1001"
    with pytest.raises(DispositionRefused, match="not handled by agent"):
        h.cc.dispose(other, call_id, "resolved")
    with pytest.raises(DispositionRefused, match="note is required"):
        h.cc.dispose(agent, call_id, "no_sale", notes="  ")
    with pytest.raises(DispositionRefused, match="schedule a callback"):
        h.cc.dispose(agent, call_id, "callback")
    with pytest.raises(DispositionRefused, match="unknown disposition"):
        h.cc.dispose(agent, call_id, "nope")
    h.cc.dispose(agent, call_id, "callback", notes="after 6pm",
                 callback={"number": "+8613912345678", "due_from": OPEN + dt.timedelta(days=1)})
    await h.settle()
    assert h.store.rows[call_id]["dispositions"][0]["code"] == "callback"
    assert h.store.callbacks[-1]["number"] == "+8613912345678"
    assert h.cc.agent_snapshot(agent)["state"] == "wrap_up"
    h.cc.end_wrap_up(agent)
    assert h.cc.agent_snapshot(agent)["state"] == "available"


async def connected_call(h: Harness) -> tuple[str, tp.Dial, str]:
    leg = await caller_to_general_queue(h)
    dial = h.dials()[-1]
    h.fake.inject(tp.LegAnswered(leg=dial.leg))
    await h.settle()
    agent = "1001" if dial.uri == h.settings.agents["1001"].phone else "1002"
    return leg, dial, agent


async def test_hold_and_unhold(h):
    leg, dial, agent = await connected_call(h)
    other = "1002" if agent == "1001" else "1001"
    assert not h.cc.hold(other), "an agent cannot hold someone else's call"
    assert h.cc.hold(agent)
    assert not h.cc.hold(agent), "already on hold"
    assert h.fake.sent(tp.Unbridge)[-1].a == leg
    assert h.fake.sent(tp.PlayPrompts)[-1].loop and h.fake.sent(tp.PlayPrompts)[-1].leg == leg
    assert h.cc.unhold(agent)
    assert h.fake.sent(tp.Bridge)[-1].a == leg and h.fake.sent(tp.Bridge)[-1].b == dial.leg


async def test_blind_transfer_to_a_queue(h):
    leg, dial, agent = await connected_call(h)
    assert not h.cc.transfer(agent, "queue:nowhere")  # agent targets: tests/core/test_direct_calls.py
    assert h.cc.transfer(agent, "queue:sales")
    await h.settle()
    assert any(isinstance(c, tp.Hangup) and c.leg == dial.leg for c in h.fake.sent())
    assert h.cc.engine.agent_state(agent)[0] == "wrap_up"
    call = h.cc.calls[h.only_call_id()]
    assert call.queue == "sales" and call.leg == leg
    assert "BLINDTRANSFER" in h.store.event_names()
    assert h.store.event_names().count("ENTERQUEUE") == 2


async def test_recording_when_enabled(tmp_path):
    harness = Harness(overrides=["recording.enabled=true"])
    harness.cc.recordings_dir = tmp_path / "rec"
    await harness.cc.start()
    try:
        leg, dial, agent = await connected_call(harness)
        (start,) = harness.fake.sent(tp.StartRecording)
        assert set(start.legs) == {leg, dial.leg} and start.path.startswith(str(tmp_path / "rec"))
        assert harness.store.rows[harness.only_call_id()]["recording_path"] == start.path
        harness.fake.inject(tp.LegEnded(leg=leg, cause="remote"))
        await harness.settle()
        assert harness.fake.sent(tp.StopRecording)
    finally:
        await harness.cc.stop()


async def test_stopping_the_server_closes_open_contacts():
    harness = Harness()
    await harness.cc.start()
    leg = await caller_to_general_queue(harness)
    await harness.cc.stop()
    row = harness.store.rows[harness.only_call_id()]
    assert row["ended_at"] is not None and row["outcome"] == "server_stopped"
    assert any(isinstance(c, tp.Hangup) and c.leg == leg for c in harness.fake.sent())


async def test_stopping_keeps_the_outcome_of_a_contact_that_is_ending():
    harness = Harness()
    await harness.cc.start()
    leg, dial, agent = await connected_call(harness)
    harness.fake.inject(tp.LegEnded(leg=leg, cause="remote"))
    await harness.settle()
    await harness.cc.stop()  # the agent leg's end never arrived
    assert harness.store.rows[harness.only_call_id()]["outcome"] == "answered"


# ---------------------------------------------------------------- kept-place callbacks: every record closes

CONFIRM = "callback_keep_place_confirm"


async def settle_keeping_confirmation(h: Harness, rounds: int = 30) -> None:
    """As ``settle``, but the callback confirmation goes on playing (the caller is still listening)."""
    for _ in range(rounds):
        await asyncio.sleep(0.005)
        for command in h.fake.sent(tp.PlayPrompts):
            if command.loop or command.id in h.finished:
                continue
            h.finished.add(command.id)
            if not any(CONFIRM in f for f in command.files):
                h.fake.inject(tp.PlaybackFinished(leg=command.leg, playback=command.id, completed=True))
    await h.cc.drain()


async def pressed_callback_key(h: Harness) -> tuple[str, str]:
    """Both agents busy elsewhere, a caller waits in general and presses 9; returns (leg, their call id)."""
    for agent in ("1001", "1002"):
        h.cc.not_ready(agent, "break")
    leg = await caller_to_general_queue(h)
    (call_id,) = list(h.store.rows)
    h.fake.inject(tp.DigitReceived(leg=leg, digit="9", method="rfc4733"))
    await settle_keeping_confirmation(h)
    return leg, call_id


def callback_record(h: Harness, inbound: str) -> str:
    (record,) = [c for c in h.store.rows if c != inbound]
    return record


def assert_all_closed(h: Harness) -> None:
    assert all(r["ended_at"] is not None for r in h.store.rows.values()), h.store.rows
    assert not h.cc.calls and not h.cc.by_leg
    for call_id in h.store.rows:
        names = [n for n in h.store.event_names(call_id) if n not in ("RINGNOANSWER", "RINGCANCELED")]
        closing = [n for n in names if n in ("COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHKEY",
                                             "EXITWITHTIMEOUT", "EXITEMPTY")]
        assert len(closing) == 1 and names[-1] == closing[0], (call_id, names)


async def test_agent_answering_a_callback_during_its_confirmation_talks_to_the_caller_and_is_freed(h):
    leg, inbound = await pressed_callback_key(h)
    assert not [c for c in h.fake.sent(tp.Hangup) if c.leg == leg], "still hearing the confirmation"
    h.cc.ready("1001")
    await settle_keeping_confirmation(h)
    agent_dial = h.dials()[-1]
    assert agent_dial.peer == leg, "rung on the caller's worker: the caller is still on the line"
    h.fake.inject(tp.LegAnswered(leg=agent_dial.leg))
    await settle_keeping_confirmation(h)
    assert [c for c in h.fake.sent(tp.StopPlayback) if c.leg == leg], "the confirmation stops"
    bridge = h.fake.sent(tp.Bridge)[-1]
    assert {bridge.a, bridge.b} == {leg, agent_dial.leg}, "connected at once, no second call to their phone"
    assert len(h.dials()) == 1
    assert h.cc.engine.agent_state("1001")[0] == "on_call"
    h.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye"))
    await h.settle()
    h.fake.inject(tp.LegEnded(leg=agent_dial.leg, cause="local_hangup"))
    await h.settle()
    assert h.cc.engine.agent_state("1001")[0] == "wrap_up", "not stuck on a call that is over"
    record = callback_record(h, inbound)
    assert h.store.rows[inbound]["outcome"] == "callback_requested"
    assert h.store.rows[record]["outcome"] == "callback_answered" and h.store.rows[record]["talk_seconds"] is not None
    assert h.store.event_names(inbound) == ["ENTERQUEUE", "EXITWITHKEY"]
    assert h.store.event_names(record) == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    (callback,) = h.store.callbacks
    assert (callback["status"], callback["attempts"], callback["last_attempt"]) == ("done", 1, record)
    assert [o["call_id"] for o in h.cc.owed_list("1001")] == [record], "the agent disposes the callback contact"
    assert_all_closed(h)


async def test_callback_after_the_caller_left_rings_agent_then_customer_and_closes(h):
    leg, inbound = await pressed_callback_key(h)
    await h.settle()  # the confirmation ends: the caller is hung up
    h.fake.inject(tp.LegEnded(leg=leg, cause="local_hangup"))
    await h.settle()
    assert h.store.rows[inbound]["ended_at"] is not None, "the caller's call is closed when they leave"
    h.cc.ready("1002")
    await h.settle()
    agent_dial = h.dials()[-1]
    assert agent_dial.peer is None
    h.fake.inject(tp.LegAnswered(leg=agent_dial.leg))
    await h.settle()
    customer = h.dials()[-1]
    assert customer.uri.startswith("sip:8613912345678@") and customer.peer == agent_dial.leg
    h.fake.inject(tp.LegAnswered(leg=customer.leg))
    await h.settle()
    h.fake.inject(tp.LegEnded(leg=customer.leg, cause="remote_bye"))  # the customer hangs up first
    await h.settle()
    h.fake.inject(tp.LegEnded(leg=agent_dial.leg, cause="local_hangup"))
    await h.settle()
    record = callback_record(h, inbound)
    assert h.store.event_names(record) == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    assert (h.store.callbacks[0]["status"], h.store.callbacks[0]["attempts"]) == ("done", 1)
    assert h.cc.engine.agent_state("1002")[0] == "wrap_up"
    assert_all_closed(h)


async def test_an_agent_who_hangs_up_at_once_on_a_callback_leaves_it_to_do_and_nothing_open(h):
    leg, inbound = await pressed_callback_key(h)
    await h.settle()
    h.fake.inject(tp.LegEnded(leg=leg, cause="local_hangup"))
    await h.settle()
    h.cc.ready("1001")
    await h.settle()
    agent_dial = h.dials()[-1]
    h.fake.inject(tp.LegAnswered(leg=agent_dial.leg))
    h.fake.inject(tp.LegEnded(leg=agent_dial.leg, cause="remote_bye"))
    await h.settle()
    customer = h.dials()[-1]
    if customer.leg != agent_dial.leg and customer.leg in h.cc.by_leg:
        h.fake.inject(tp.LegFailed(leg=customer.leg, status=487, reason="Request Terminated"))
        await h.settle()
    record = callback_record(h, inbound)
    assert h.store.event_names(record)[-1] == "ABANDON" and "CONNECT" not in h.store.event_names(record)
    assert h.store.rows[record]["outcome"] == "callback_agent_hung_up", "a late customer-leg failure does not overwrite it"
    assert h.store.callbacks[0]["status"] == "pending", "to be called again"
    assert h.cc.engine.agent_state("1001")[0] in ("wrap_up", "available")
    assert_all_closed(h)


async def test_an_offer_that_could_not_be_dialled_is_no_missed_offer_and_comes_back(h):
    h.cc.not_ready("1002", "break")
    leg = await caller_to_general_queue(h)
    for attempt in range(3):  # more than acd.max_missed_offers (2)
        dial = h.dials()[-1]
        h.fake.inject(tp.CommandFailed(command_id=dial.id, command="Dial", reason="no free leg on this worker",
                                       leg=dial.leg))
        await h.settle()
        assert h.cc.engine.agent_state("1001")[0] == "reserved", "held a moment, not paused"
        await asyncio.sleep(1.1)
        await h.settle()
        assert len(h.dials()) == attempt + 2, "offered again after the pause"
    call_id = h.only_call_id()
    assert "RINGNOANSWER" not in h.store.event_names(call_id)
    assert h.cc.engine.agent_stats("1001", h.cc.now().timestamp()).missed_offers == 0
    h.fake.inject(tp.LegAnswered(leg=h.dials()[-1].leg))
    await h.settle()
    assert h.store.event_names(call_id)[-1] == "CONNECT" and leg


async def test_a_supervisor_can_log_out_an_agent_on_a_call_and_the_call_is_ended_and_recorded(h):
    leg, dial, agent = await connected_call(h)
    call_id = h.only_call_id()
    result = h.cc.force_state("9001", agent, "logged_out")
    assert result["state"] == "logged_out"
    hung = {c.leg for c in h.fake.sent(tp.Hangup)}
    assert {leg, dial.leg} <= hung, "both legs are hung up"
    for ended in (leg, dial.leg):
        h.fake.inject(tp.LegEnded(leg=ended, cause="local_hangup"))
    await h.settle()
    assert h.store.event_names(call_id) == ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]
    assert h.store.rows[call_id]["ended_at"] is not None and h.store.rows[call_id]["talk_seconds"] is not None
    assert h.store.audits[-1]["action"] == "agent.logged_out"


async def test_an_agent_held_on_a_call_that_no_longer_exists_is_released_by_a_supervisor(h):
    leg = await caller_to_general_queue(h)
    dial = h.dials()[0]
    h.fake.inject(tp.LegAnswered(leg=dial.leg))
    await h.settle()
    agent = h.store.rows[h.only_call_id()]["agent_id"]
    h.cc.calls.clear()  # the call flow lost the call (a fault) while the ACD still holds the agent on it
    assert h.cc.engine.agent_state(agent)[0] == "on_call"
    assert h.cc.force_state("9001", agent, "not_ready", "meeting")["state"] == "not_ready"
    assert h.cc.engine.agent_call(agent) is None and leg


@pytest.fixture
async def held():
    """The general queue keeps agents in wrap-up until the disposition is saved."""
    harness = Harness(overrides=["queues.general.after_call_work=until_disposed"])
    await harness.cc.start()
    yield harness
    await harness.cc.stop()


async def test_until_disposed_a_kept_callback_disposition_ends_the_wrap_up(held):
    h = held
    leg, inbound = await pressed_callback_key(h)
    h.cc.ready("1001")
    await settle_keeping_confirmation(h)
    agent_dial = h.dials()[-1]
    h.fake.inject(tp.LegAnswered(leg=agent_dial.leg))
    await settle_keeping_confirmation(h)
    for ended in (leg, agent_dial.leg):
        h.fake.inject(tp.LegEnded(leg=ended, cause="remote_bye"))
        await h.settle()
    record = callback_record(h, inbound)
    assert h.cc.wrap_up_of("1001")["owed_call"] == record, "the console's id for the call it waits for"
    h.cc.dispose("1001", record, "resolved")
    h.cc.end_wrap_up("1001")
    assert h.cc.engine.agent_state("1001")[0] == "available"


async def test_until_disposed_a_disposition_saved_during_the_call_does_not_hold_the_agent(held):
    h = held
    leg, dial, agent = await connected_call(h)
    call_id = h.only_call_id()
    h.cc.dispose(agent, call_id, "resolved")
    for ended in (leg, dial.leg):
        h.fake.inject(tp.LegEnded(leg=ended, cause="remote_bye"))
        await h.settle()
    assert h.cc.owed_list(agent) == [] and h.cc.wrap_up_of(agent)["owed_call"] is None
    h.cc.end_wrap_up(agent)
    assert h.cc.engine.agent_state(agent)[0] == "available"


async def test_until_disposed_a_call_lost_with_its_worker_is_owed_and_can_be_disposed(held):
    h = held
    leg, dial, agent = await connected_call(h)
    call_id = h.only_call_id()
    h.fake.inject(tp.WorkerDied(worker="w1", legs=(leg, dial.leg), returncode=-9))
    await h.settle()
    assert [o["call_id"] for o in h.cc.owed_list(agent)] == [call_id]
    h.cc.dispose(agent, call_id, "resolved")
    h.cc.end_wrap_up(agent)
    assert h.cc.engine.agent_state(agent)[0] == "available"


async def test_a_caller_number_that_is_not_digits_is_never_dialled_back(h):
    for agent in ("1001", "1002"):
        h.cc.not_ready(agent, "break")
    leg = h.fake.arrive(ani="10086@evil.example;transport=tcp", display_name="x", remote_address="127.0.0.1:5099")
    await h.settle()
    await h.press(leg, "1")
    await h.press(leg, "0")
    await h.press(leg, "9")
    assert not h.store.callbacks and not any(r.get("direction") == "outbound" for r in h.store.rows.values())
