"""Calls for one named agent against the fake telephony: blind transfer to an agent, and dial-now."""

from __future__ import annotations

import pytest

from callcenter.core.contact_center import RequestRefused
from callcenter.core import telephony_protocol as tp
from tests.core.test_contact_center import Harness, connected_call, h  # noqa: F401  (fixture)

NUMBER = "+8613912345678"


def callback(h: Harness) -> int:
    return h.store.add_callback(number=NUMBER, customer_id=7, queue="general", due_from=h.cc.now(), due_until=None,
                                source="agent", owner_agent_id="1001")


async def test_blind_transfer_to_an_available_agent_rings_them_with_the_caller_on_hold(h):
    leg, dial, agent = await connected_call(h)
    other = "1002" if agent == "1001" else "1001"
    assert h.cc.transfer(agent, f"agent:{other}")
    await h.settle()
    assert h.cc.engine.agent_state(agent)[0] == "wrap_up"
    assert h.cc.engine.agent_state(other)[0] == "reserved"
    ring = h.dials()[-1]
    assert ring.uri == h.settings.agents[other].phone and ring.peer == leg, "rung on the caller's worker"
    music = h.fake.sent(tp.PlayPrompts)[-1]
    assert music.leg == leg and music.loop, "the caller hears hold music meanwhile"
    h.fake.inject(tp.LegAnswered(leg=ring.leg))
    await h.settle()
    assert h.fake.sent(tp.Bridge)[-1].a == leg and h.fake.sent(tp.Bridge)[-1].b == ring.leg
    assert h.cc.handled_by[h.only_call_id()] == other
    assert h.store.events[-2][0] == "BLINDTRANSFER" or "BLINDTRANSFER" in h.store.event_names()


async def test_transfer_to_a_busy_or_unknown_agent_is_refused_and_the_call_stays(h):
    leg, dial, agent = await connected_call(h)
    other = "1002" if agent == "1001" else "1001"
    h.cc.not_ready(other, "break")
    with pytest.raises(RequestRefused, match="not ready, not available"):
        h.cc.transfer(agent, f"agent:{other}")
    with pytest.raises(RequestRefused, match="no agent"):
        h.cc.transfer(agent, "agent:7777")
    with pytest.raises(RequestRefused, match="yourself"):
        h.cc.transfer(agent, f"agent:{agent}")
    call = h.cc.calls[h.only_call_id()]
    assert call.agent_id == agent and call.phase == "connected", "nothing changed"
    assert h.cc.engine.agent_state(agent)[0] == "on_call"
    assert not h.fake.sent(tp.Unbridge)


async def test_unanswered_transfer_to_an_agent_leaves_the_caller_queued(h):
    leg, dial, agent = await connected_call(h)
    other = "1002" if agent == "1001" else "1001"
    assert h.cc.transfer(agent, f"agent:{other}")
    await h.settle()
    ring = h.dials()[-1]
    h.fake.inject(tp.LegFailed(leg=ring.leg, status=486, reason="Busy Here"))
    await h.settle()
    call = h.cc.calls[h.only_call_id()]
    assert call.leg == leg and call.phase in ("queued", "ringing"), "the caller is still with us"


async def test_dial_now_rings_the_agent_then_the_customer_and_keeps_the_callback(h):
    h.cc.not_ready("1002", "break")
    cb = callback(h)
    assert h.cc.dial("1001", NUMBER, callback_id=cb, customer_id=7, queue="general", display_name="Li Lei")
    await h.settle()
    (call_id,) = list(h.store.rows)
    row = h.store.rows[call_id]
    assert row["direction"] == "outbound" and row["ani"] == NUMBER and row["customer_id"] == 7
    assert h.store.callbacks[0]["status"] == "in_progress" and h.store.callbacks[0]["attempts"] == 1
    assert h.store.callbacks[0]["last_attempt"] == call_id, "the callback points at its outbound contact"
    agent_dial = h.dials()[-1]
    assert agent_dial.uri == h.settings.agents["1001"].phone and agent_dial.caller_id == NUMBER
    with pytest.raises(RequestRefused, match="reserved"):
        h.cc.dial("1001", NUMBER)
    h.fake.inject(tp.LegAnswered(leg=agent_dial.leg))
    await h.settle()
    customer = h.dials()[-1]
    assert customer.uri == "sip:8613912345678@127.0.0.1:5060" and customer.peer == agent_dial.leg
    h.fake.inject(tp.LegAnswered(leg=customer.leg))
    await h.settle()
    assert h.store.rows[call_id]["outcome"] == "callback_answered"
    assert h.store.callbacks[0]["status"] == "done" and call_id in h.store.callbacks[0]["result"]
    h.fake.inject(tp.LegEnded(leg=customer.leg, cause="remote_bye"))
    await h.settle()
    assert h.cc.engine.agent_state("1001")[0] == "wrap_up"
    assert h.cc.handled_by[call_id] == "1001", "the agent can dispose of it"
    h.fake.inject(tp.LegEnded(leg=agent_dial.leg, cause="local_hangup"))
    await h.settle()
    assert h.store.rows[call_id]["ended_at"] is not None and h.store.rows[call_id]["outcome"] == "callback_answered"
    assert h.store.callbacks[0]["status"] == "done", "settled once: the end does not undo it"


async def test_dial_now_the_agent_does_not_pick_up_leaves_the_callback_to_do(h):
    cb = callback(h)
    assert h.cc.dial("1001", NUMBER, callback_id=cb)
    await h.settle()
    agent_dial = h.dials()[-1]
    h.fake.inject(tp.LegFailed(leg=agent_dial.leg, status=480, reason="Temporarily Unavailable"))
    await h.settle()
    (call_id,) = list(h.store.rows)
    assert h.store.rows[call_id]["outcome"] == "agent_no_answer" and h.store.rows[call_id]["ended_at"]
    assert h.store.callbacks[0]["status"] == "pending" and h.store.callbacks[0]["attempts"] == 1
    assert h.cc.engine.agent_state("1001")[0] == "available", "no missed-offer penalty for one's own dial"
    assert "RINGNOANSWER" not in h.store.event_names(), "nor a missed offer in the queue log and the reports"
    assert call_id not in h.cc.calls


async def test_dial_now_customer_busy_marks_the_callback_pending_again(h):
    cb = callback(h)
    h.cc.dial("1001", NUMBER, callback_id=cb)
    await h.settle()
    agent_dial = h.dials()[-1]
    h.fake.inject(tp.LegAnswered(leg=agent_dial.leg))
    await h.settle()
    customer = h.dials()[-1]
    h.fake.inject(tp.LegFailed(leg=customer.leg, status=486, reason="Busy Here"))
    await h.settle()
    assert h.store.callbacks[0]["status"] == "pending" and "486" in h.store.callbacks[0]["result"]
    h.fake.inject(tp.LegEnded(leg=agent_dial.leg, cause="local_hangup"))
    await h.settle()
    assert h.cc.engine.agent_state("1001")[0] == "wrap_up"


async def test_dial_refused_while_on_a_call_or_not_ready(h):
    leg, dial, agent = await connected_call(h)
    with pytest.raises(RequestRefused, match="on call"):
        h.cc.dial(agent, NUMBER)
    other = "1002" if agent == "1001" else "1001"
    h.cc.not_ready(other, "break")
    with pytest.raises(RequestRefused, match="not ready"):
        h.cc.dial(other, NUMBER)
    assert len(h.store.rows) == 1, "a refused dial records nothing"


async def test_dial_from_wrap_up_waits_for_the_last_calls_disposition(h):
    leg, dial, agent = await connected_call(h)
    call_id = h.only_call_id()
    h.fake.inject(tp.LegEnded(leg=leg, cause="remote_bye"))
    await h.settle()
    assert h.cc.engine.agent_state(agent)[0] == "wrap_up"
    with pytest.raises(RequestRefused, match=f"disposition of your last call \\({call_id}\\)"):
        h.cc.dial(agent, NUMBER)
    assert len(h.store.rows) == 1, "the refused dial records nothing"
    h.cc.dispose(agent, call_id, "resolved")
    assert h.cc.dial(agent, NUMBER)
    await h.settle()
    assert len(h.store.rows) == 2 and h.dials()[-1].uri == h.settings.agents[agent].phone


async def test_a_callback_being_dialled_cannot_be_dialled_again(h):
    cb = callback(h)
    h.store.callbacks[0]["owner_agent_id"] = None  # anyone's
    assert h.cc.dial("1001", NUMBER, callback_id=cb)
    await h.settle()
    with pytest.raises(RequestRefused, match=f"callback {cb} is being dialled already"):
        h.cc.dial("1002", NUMBER, callback_id=cb)
    assert len(h.store.rows) == 1


def test_per_call_notes_are_bounded():
    from callcenter.core.contact_center import BoundedDict

    seen = BoundedDict(3)
    for n in range(5):
        seen[f"c{n}"] = n
    assert list(seen) == ["c2", "c3", "c4"]
