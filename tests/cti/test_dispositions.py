"""Every disposition lands on the call it names, through the real CTI server; after-call work modes hold.

Overlapping calls (a call ends while the next one already rings, dispositions saved out of order)
against the real contact center, CTI server and SQLite records; only telephony is the twin.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from callcenter.cti.errors import CtiRequestError
from callcenter.core import telephony_protocol as tp
from callcenter.db.models import Callback, Interaction
from tests.cti.cti_support import Stack, of_type, wait_for


@pytest.fixture
async def optional_acw(tmp_path):
    s = Stack(tmp_path, overrides=("queues.general.after_call_work=optional",))
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def until_disposed(tmp_path):
    s = Stack(tmp_path, overrides=("queues.general.after_call_work=until_disposed",))
    await s.start()
    yield s
    await s.stop()


async def talk(stack: Stack, agent: str, events: list[dict], ani: str, name: str) -> str:
    """A caller reaches ``agent``, talks, hangs up; returns the call id the console was told about."""
    offers = len(of_type(events, "call.offered"))
    leg = await stack.caller_to_queue(ani=ani, display_name=name)
    offer = (await wait_for(lambda: of_type(events, "call.offered")[offers:]))[0]
    await stack.answer(agent)
    await stack.caller_hangs_up(leg, agent)
    await wait_for(lambda: [e for e in of_type(events, "call.ended") if e["call_id"] == offer["call_id"]])
    return offer["call_id"]


def callback_rows(stack: Stack) -> list[tuple[str, str]]:
    with stack.db.session() as s:
        return [(cb.number, s.get(Interaction, cb.interaction_id).call_id) for cb in s.query(Callback)]


async def test_overlapping_calls_each_disposition_lands_on_the_call_it_names(optional_acw):
    stack = optional_acw
    stack.only_agent("1001")
    client, events, _ = await stack.logged_in("1001")
    first = await talk(stack, "1001", events, "13800000001", "Caller One")
    second = await talk(stack, "1001", events, "13800000002", "Caller Two")
    ended = of_type(events, "call.ended")
    assert [o["call_id"] for o in ended[-1]["owed"]] == [first, second], "both owed, oldest first"
    assert stack.center.agent_snapshot("1001")["state"] == "available", "optional ACW: the next call may come"

    third_leg = await stack.caller_to_queue(ani="13800000003", display_name="Caller Three")
    ringing = (await wait_for(lambda: of_type(events, "call.offered")[2:]))[0]["call_id"]

    due = stack.clock() + dt.timedelta(days=1)
    reply = await client.request("disposition.save", call_id=first, code="callback", notes="call her back",
                                 callback={"number": "138 0000 0001", "due_from": due.isoformat()})
    assert reply["call_id"] == first and [o["call_id"] for o in reply["owed"]] == [second]
    await client.request("disposition.save", call_id=second, code="sale")
    assert stack.dispositions(first) == [("callback", "call her back", "1001")]
    assert stack.dispositions(second) == [("sale", None, "1001")]
    assert callback_rows(stack) == [("+8613800000001", first)], "the callback belongs to the first call"

    with pytest.raises(CtiRequestError) as again:
        await client.request("disposition.save", call_id=first, code="resolved")
    assert again.value.code == "refused" and "already has your disposition" in again.value.message
    with pytest.raises(CtiRequestError) as ringing_call:
        await client.request("disposition.save", call_id=ringing, code="resolved")
    assert ringing_call.value.code == "refused" and "not been answered" in ringing_call.value.message
    with pytest.raises(CtiRequestError) as unknown:
        await client.request("disposition.save", call_id="0" * 32, code="resolved")
    assert unknown.value.code == "forbidden"
    assert stack.dispositions(first) == [("callback", "call her back", "1001")], "nothing else was written"
    assert stack.dispositions(ringing) == []
    assert of_type(events, "disposition.owed")[-1]["owed"] == []
    assert third_leg
    await client.close()


async def test_another_agent_cannot_dispose_a_call_they_did_not_handle(optional_acw):
    stack = optional_acw
    stack.only_agent("1001")
    owner, events, _ = await stack.logged_in("1001")
    call_id = await talk(stack, "1001", events, "13800000001", "Caller One")
    other, _, _ = await stack.logged_in("1002")
    with pytest.raises(CtiRequestError) as refused:
        await other.request("disposition.save", call_id=call_id, code="sale")
    assert refused.value.code == "forbidden" and stack.dispositions(call_id) == []
    await owner.request("disposition.save", call_id=call_id, code="resolved")
    assert stack.dispositions(call_id) == [("resolved", None, "1001")]
    await owner.close()
    await other.close()


async def test_until_disposed_keeps_the_agent_from_the_next_call_until_the_disposition(until_disposed):
    stack = until_disposed
    stack.only_agent("1001")
    client, events, _ = await stack.logged_in("1001")
    call_id = await talk(stack, "1001", events, "13800000001", "Caller One")
    wrap = [e for e in of_type(events, "agent.state") if e["state"] == "wrap_up"][-1]["wrap"]
    assert wrap == {"mode": "until_disposed", "until": None, "owed_call": call_id, "extensions_left": 0}

    waiting = await stack.caller_to_queue(ani="13800000002", display_name="Caller Two")
    await stack.settle()
    assert len(of_type(events, "call.offered")) == 1, "not offered while the disposition is owed"
    for request in ("state.ready", "state.end_wrap_up"):
        with pytest.raises(CtiRequestError) as refused:
            await client.request(request)
        assert refused.value.code == "refused" and call_id in refused.value.message, request
    reply = await client.request("disposition.save", call_id=call_id, code="resolved")
    assert reply["state"] == "reserved", "saved: the waiting caller is offered at once"
    assert len(of_type(events, "call.offered")) == 2
    assert waiting
    await client.close()


async def test_a_pause_asked_for_during_an_owed_wrap_up_starts_after_the_disposition(until_disposed):
    stack = until_disposed
    stack.only_agent("1001")
    client, events, _ = await stack.logged_in("1001")
    call_id = await talk(stack, "1001", events, "13800000001", "Caller One")
    assert (await client.request("state.not_ready", reason="break")) == {"state": "wrap_up", "pending": "break"}
    reply = await client.request("disposition.save", call_id=call_id, code="resolved")
    assert reply["state"] == "not_ready"
    await client.close()


async def test_a_supervisor_can_release_an_agent_who_owes_a_disposition_and_it_stays_owed(until_disposed):
    stack = until_disposed
    stack.only_agent("1001")
    client, events, _ = await stack.logged_in("1001")
    call_id = await talk(stack, "1001", events, "13800000001", "Caller One")
    supervisor, _, _ = await stack.logged_in("9001")
    reply = await supervisor.request("agent.force_state", agent_id="1001", state="ready")
    assert reply["state"] == "available"
    snapshot = (await client.request("agent.snapshot"))["snapshot"]
    assert [o["call_id"] for o in snapshot["owed"]] == [call_id]
    feed = (await supervisor.request("supervisor.snapshot"))
    assert {a["agent_id"]: a["owed"] for a in feed["agents"]}["1001"] == 1, "supervisors see what is owed"
    await client.close()
    await supervisor.close()


async def test_extensions_move_the_end_of_a_timed_wrap_up(tmp_path):
    stack = Stack(tmp_path, overrides=("queues.general.after_call_work=timed_extendable",
                                       "queues.general.wrapup_seconds=60",
                                       "queues.general.wrapup_extension_seconds=30",
                                       "queues.general.wrapup_max_extensions=1"))
    await stack.start()
    try:
        stack.only_agent("1001")
        client, events, _ = await stack.logged_in("1001")
        await talk(stack, "1001", events, "13800000001", "Caller One")
        before = [e for e in of_type(events, "agent.state") if e["state"] == "wrap_up"][-1]["wrap"]
        reply = await client.request("state.extend_wrap_up")
        moved = dt.datetime.fromisoformat(reply["wrap"]["until"]) - dt.datetime.fromisoformat(before["until"])
        assert moved == dt.timedelta(seconds=30) and reply["wrap"]["extensions_left"] == 0
        assert (await wait_for(lambda: of_type(events, "agent.wrap_up")))[-1]["wrap"] == reply["wrap"]
        with pytest.raises(CtiRequestError, match="used all 1 extension"):
            await client.request("state.extend_wrap_up")
        await client.close()
    finally:
        await stack.stop()


async def test_what_is_owed_survives_a_server_restart(tmp_path):
    stack = Stack(tmp_path, overrides=("queues.general.after_call_work=optional",))
    await stack.start()
    stack.only_agent("1001")
    client, events, _ = await stack.logged_in("1001")
    call_id = await talk(stack, "1001", events, "13800000001", "Caller One")
    await client.close()
    await stack.stop()

    again = Stack(tmp_path, overrides=("queues.general.after_call_work=optional",))
    await again.start()
    try:
        client, _, data = await again.logged_in("1001")
        owed = data["snapshot"]["owed"]
        assert [(o["call_id"], o["ani"], o["display_name"]) for o in owed] == [
            (call_id, "+8613800000001", "Caller One")]
        await client.request("disposition.save", call_id=call_id, code="resolved")
        assert again.dispositions(call_id) == [("resolved", None, "1001")]
        await client.close()
    finally:
        await again.stop()


async def test_after_a_restart_the_agent_who_talked_owes_the_call_not_the_last_one_offered(tmp_path):
    stack = Stack(tmp_path, overrides=("queues.general.after_call_work=optional",))
    await stack.start()
    stack.only_agent("1001")
    client, events, _ = await stack.logged_in("1001")
    leg = await stack.caller_to_queue(ani="13800000001", display_name="Caller One")
    call_id = (await wait_for(lambda: of_type(events, "call.offered")))[-1]["call_id"]
    await stack.answer("1001")
    stack.center.not_ready("1001", "break")  # after this call: the transferred caller is not offered back
    stack.center.ready("1002")
    await client.request("call.transfer", target="queue:general")
    await stack.settle()
    offered = stack.agent_leg("1002")
    stack.fake.inject(tp.LegFailed(leg=offered, status=486, reason="Busy Here"))  # 1002 never talks to them
    await stack.settle()
    stack.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye"))
    await stack.settle()
    with stack.db.session() as s:
        assert s.scalar(select(Interaction.agent_id).where(Interaction.call_id == call_id)) == "1002"
    await client.close()
    await stack.stop()

    again = Stack(tmp_path, overrides=("queues.general.after_call_work=optional",))
    await again.start()
    try:
        assert [o["call_id"] for o in again.center.owed_list("1001")] == [call_id]
        assert again.center.owed_list("1002") == []
    finally:
        await again.stop()
