"""Over CTI: blind transfer to a named agent, and an agent acting on another agent's call."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.cti import protocol as p
from callcenter.cti.errors import CtiRequestError
from callcenter.core import telephony_protocol as tp
from tests.cti.cti_support import Stack, of_type, wait_for


@pytest.fixture
async def stack(tmp_path):
    s = Stack(tmp_path)
    await s.start()
    yield s
    await s.stop()


async def test_blind_transfer_to_an_agent_offers_the_caller_with_the_pop(stack):
    first, events, _ = await stack.logged_in("1001")
    second, second_events, _ = await stack.logged_in("1002")
    stack.only_agent("1001")
    leg = await stack.caller_to_queue()
    call_id = (await wait_for(lambda: of_type(events, "call.offered")))[-1]["call_id"]
    await stack.answer("1001")
    with pytest.raises(CtiRequestError) as caught:
        await first.request("call.transfer", target="agent:1002")
    assert caught.value.code == p.REFUSED and "1002" in caught.value.message and "not available" in caught.value.message
    assert stack.center.agent_snapshot("1001")["call"]["call_id"] == call_id, "a refused transfer changes nothing"
    await second.request("state.ready")
    assert await first.request("call.transfer", target="agent:1002") == {"call_id": call_id, "target": "agent:1002"}
    offered = (await wait_for(lambda: of_type(second_events, "call.offered")))[-1]
    assert offered["call_id"] == call_id and offered["ani"] == "+8613912345678"
    await wait_for(lambda: of_type(second_events, "call.pop"))
    assert stack.center.agent_snapshot("1001")["state"] == "wrap_up"
    with pytest.raises(CtiRequestError) as caught:  # 1001 may not touch it any more
        await first.request("call.hangup", call_id=call_id)
    assert caught.value.code in (p.FORBIDDEN, p.REFUSED)
    ring = stack.agent_leg("1002")
    stack.fake.inject(tp.LegAnswered(leg=ring))
    await stack.settle()
    assert any(isinstance(c, tp.Bridge) and {c.a, c.b} == {leg, ring} for c in stack.fake.sent())
    with pytest.raises(CtiRequestError) as caught:
        await first.request("call.hold", call_id=call_id)
    assert caught.value.code == p.FORBIDDEN, "another agent's call"
    saved = await first.request("disposition.save", call_id=call_id, code="resolved", notes="sent to 1002")
    assert saved["code"] == "resolved", "the first agent still disposes of their part of the call"
    assert await second.request("call.hangup", call_id=call_id) == {"call_id": call_id}
    stack.fake.inject(tp.LegEnded(leg=ring, cause="local_hangup"))
    await stack.settle()
    assert (await second.request("disposition.save", call_id=call_id, code="sale"))["code"] == "sale"
    assert sorted(stack.dispositions(call_id)) == [("resolved", "sent to 1002", "1001"), ("sale", None, "1002")]
    third, _, _ = await stack.logged_in("1003")
    with pytest.raises(CtiRequestError) as caught:
        await third.request("disposition.save", call_id=call_id, code="resolved")
    assert caught.value.code == p.FORBIDDEN
    await third.close()
    await first.close()
    await second.close()


async def test_repeat_caller_window_comes_from_the_configuration(tmp_path):
    from callcenter.db.models import Interaction

    stack = Stack(tmp_path, overrides=("center.repeat_caller_hours=2",))
    await stack.start()
    try:
        customer = stack.add_customer("Li Lei", "+8613912345678")
        now = stack.clock()
        with stack.db.session() as s:
            for hours in (3, 1):
                s.add(Interaction(call_id=f"{hours}-hours-ago", direction="inbound", ani="+8613912345678",
                                  customer_id=customer, arrived_at=now - dt.timedelta(hours=hours),
                                  ended_at=now - dt.timedelta(hours=hours), outcome="answered", ivr_path=[]))
        client, events, data = await stack.logged_in("1001")
        assert data["repeat_hours"] == 2
        stack.only_agent("1001")
        await stack.caller_to_queue()
        pop = (await wait_for(lambda: of_type(events, "call.pop")))[-1]["pop"]
        assert pop["repeat_hours"] == 2 and pop["recent_calls"] == 1, "3 h ago is outside a 2 h window, 1 h inside"
        await client.close()
    finally:
        await stack.stop()
    stack = Stack(tmp_path / "default")
    assert stack.cti.repeat_hours == 24, "the default window"
