"""The reconciliation sweep in the control process, against the in-memory telephony twin: each lost report is
found and repaired through the normal paths (records close, queue_log ends once, audit written), and registering
phones decide who may be offered a call."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from callcenter.core import telephony_protocol as tp
from callcenter.core.devices import Binding
from callcenter.core.errors import RequestRefused, SupervisorActionRefused
from callcenter.db.models import AuditEntry, Interaction
from tests.core.test_records_on_faults import assert_each_call_ends_once
from tests.cti.cti_support import Stack

GRACE = ("repair.grace_seconds=0.5",)


def lose(stack: Stack, event) -> None:
    """The worker sends ``event`` and it is lost on the way: the leg is gone, the control process never hears."""
    stack.fake.drop_next(type(event), getattr(event, "leg", None))
    stack.fake.inject(event)


async def sweep_past_grace(stack: Stack) -> list:
    """Two sweeps the grace apart: what a divergence needs to be repaired."""
    first = await stack.center.sweep_once()
    await asyncio.sleep(0.55)
    second = await stack.center.sweep_once()
    await stack.settle()
    return first + second


def audits(stack: Stack) -> list[AuditEntry]:
    with stack.db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.actor == "reconciliation").order_by(AuditEntry.id)))


async def test_healthy_center_needs_no_repair(tmp_path):
    stack = Stack(tmp_path, overrides=GRACE)
    await stack.start()
    try:
        stack.only_agent("1001")
        await stack.caller_to_queue()
        await stack.answer("1001")
        await stack.caller_to_queue(ani="13900000002")
        assert await sweep_past_grace(stack) == []
        assert stack.center.counters["repairs_today"] == 0
    finally:
        await stack.stop()


async def test_a_lost_bye_of_a_talking_caller_is_repaired_and_every_record_closes(tmp_path):
    stack = Stack(tmp_path, overrides=GRACE)
    await stack.start()
    try:
        stack.only_agent("1001")
        caller = await stack.caller_to_queue()
        agent_leg = await stack.answer("1001")
        lose(stack, tp.LegEnded(leg=caller, cause="remote_bye"))  # the caller's BYE, its report lost
        repairs = await sweep_past_grace(stack)
        assert [(r.kind, r.leg) for r in repairs] == [("leg_lost", caller)]
        # the conversation ended as if the caller's BYE had been reported: agent leg hung up, agent in wrap-up
        assert any(isinstance(c, tp.Hangup) and c.leg == agent_leg for c in stack.fake.sent(tp.Hangup))
        stack.fake.inject(tp.LegEnded(leg=agent_leg, cause="local_hangup"))
        await stack.settle()
        assert stack.center.engine.agent_state("1001")[0] in ("wrap_up", "available")
        assert not stack.center.calls
        with stack.db.session() as s:
            assert s.scalar(select(Interaction).where(Interaction.ended_at.is_(None))) is None
        assert_each_call_ends_once(stack)
        [entry] = audits(stack)
        assert entry.action == "repair.leg_lost" and entry.target == f"leg:{caller}"
        assert "which no worker has" in entry.details["seen"] and entry.details["lasted"] >= 0.5
        assert stack.center.counters["repairs_today"] == 1
        assert await sweep_past_grace(stack) == []  # nothing left to repair: idempotent
    finally:
        await stack.stop()


async def test_an_offer_whose_ringing_leg_vanished_goes_back_to_the_queue(tmp_path):
    stack = Stack(tmp_path, overrides=GRACE)
    await stack.start()
    try:
        stack.only_agent("1001")
        caller = await stack.caller_to_queue()
        ringing = stack.agent_leg("1001")
        assert stack.center.engine.agent_state("1001")[0] == "reserved"
        lose(stack, tp.LegEnded(leg=ringing, cause="remote_bye"))
        repairs = await sweep_past_grace(stack)
        assert [r.kind for r in repairs] == ["offer_without_leg"]
        await stack.settle()
        # the agent is free again and, the only one, is offered the same caller anew on a new leg
        assert stack.center.engine.agent_state("1001")[0] == "reserved"
        assert stack.agent_leg("1001") != ringing
        assert stack.center.calls[next(iter(stack.center.calls))].leg == caller
        assert audits(stack)[0].details["done"].startswith("offer released")
    finally:
        await stack.stop()


async def test_a_lost_answer_is_taken_and_the_call_connects(tmp_path):
    stack = Stack(tmp_path, overrides=GRACE)
    await stack.start()
    try:
        stack.only_agent("1001")
        caller = await stack.caller_to_queue()
        ringing = stack.agent_leg("1001")
        lose(stack, tp.LegAnswered(leg=ringing))  # the phone answered; the report never came
        repairs = await sweep_past_grace(stack)
        assert [r.kind for r in repairs] == ["answer_unseen"]
        assert stack.center.engine.agent_state("1001")[0] == "on_call"
        assert any(isinstance(c, tp.Bridge) and {c.a, c.b} == {caller, ringing} for c in stack.fake.sent(tp.Bridge))
    finally:
        await stack.stop()


async def test_a_leg_no_contact_owns_is_hung_up(tmp_path):
    stack = Stack(tmp_path, overrides=GRACE)
    await stack.start()
    try:
        # a worker holds a leg the control process never heard of (its CallArrived was lost)
        lose(stack, tp.CallArrived(worker="w2", leg="w2.9-stray", call_id="x", ani="1", dnis="2", display_name=""))
        stack.fake.leg_states["w2.9-stray"] = "confirmed"  # and answered it (an undecided one is the worker's)
        repairs = await sweep_past_grace(stack)
        assert [(r.kind, r.leg, r.worker) for r in repairs] == [("leg_unknown", "w2.9-stray", "w2")]
        assert [c.leg for c in stack.fake.sent(tp.Hangup)] == ["w2.9-stray"]
    finally:
        await stack.stop()


async def test_a_silent_worker_is_not_judged(tmp_path):
    stack = Stack(tmp_path, overrides=GRACE)
    await stack.start()
    try:
        stack.only_agent("1001")
        caller = await stack.caller_to_queue()
        await stack.answer("1001")
        lose(stack, tp.LegEnded(leg=caller, cause="remote_bye"))
        stack.fake.silent.add("w1")
        assert await sweep_past_grace(stack) == []
    finally:
        await stack.stop()


PHONES = GRACE + ("agents.1001.phone=sip:1001@center",)


async def test_an_agent_whose_phone_is_not_registered_is_never_offered(tmp_path):
    stack = Stack(tmp_path, overrides=PHONES)
    stack.center.front_address = "127.0.0.1:5060"
    await stack.start()
    try:
        center = stack.center
        assert center.engine.agent_state("1001") == ("not_ready", "phone_offline")  # auto-login, phone off
        with pytest.raises(RequestRefused, match="not registered"):
            center.ready("1001")
        with pytest.raises(SupervisorActionRefused, match="not registered"):
            center.force_state("9001", "1001", "ready")
        stack.center.not_ready("1002", "break")
        await stack.caller_to_queue()
        assert not [d for d in stack.fake.sent(tp.Dial)]  # nobody to offer it to
        center.phone_registered("1001", "sip:1001@192.168.1.5:5062", received="127.0.0.1:40000", expires=300)
        await stack.settle()
        assert center.agent_snapshot("1001")["phone_status"] == "online"
        [dial] = stack.fake.sent(tp.Dial)  # back ready: offered at once, dialled through the front
        assert dial.uri == "sip:1001@127.0.0.1:5060"
        stack.fake.inject(tp.LegAnswered(leg=dial.leg))
        await stack.settle()
        center.phone_unregistered("1001", "sip:1001@192.168.1.5:5062")  # switched off mid-call
        await stack.settle()
        assert center.engine.agent_state("1001")[0] == "on_call"  # the call goes on; not ready after it
        assert center.agent_snapshot("1001")["phone_status"] == "offline"
    finally:
        await stack.stop()


async def test_phone_offline_while_ready_and_back(tmp_path):
    stack = Stack(tmp_path, overrides=PHONES + ("phones.offline_not_ready=false",))
    stack.center.front_address = "127.0.0.1:5060"
    await stack.start()
    try:
        center = stack.center
        center.phone_registered("1001", "sip:1001@10.0.0.9:5060", expires=60)
        await stack.settle()
        assert center.engine.agent_state("1001") == ("available", None)
        center.phone_unregistered("1001", None, why="keepalive timeout")
        await stack.settle()
        # offline_not_ready off: the sweep puts the agent right within the grace
        assert center.engine.agent_state("1001") == ("available", None)
        repairs = await sweep_past_grace(stack)
        assert [r.kind for r in repairs] == ["phone_offline_ready"]
        assert center.engine.agent_state("1001") == ("not_ready", "phone_offline")
        center.phones_synced({"1001": [Binding("sip:1001@10.0.0.9:5060")]})
        await stack.settle()
        assert center.engine.agent_state("1001") == ("available", None)  # ready_when_back
    finally:
        await stack.stop()


async def test_a_wrap_up_over_the_limit_ends_into_not_ready_and_the_disposition_stays_owed(tmp_path):
    stack = Stack(tmp_path, overrides=GRACE + ("queues.general.after_call_work=until_disposed",))
    await stack.start()
    try:
        stack.only_agent("1001")
        caller = await stack.caller_to_queue()
        await stack.answer("1001")
        await stack.caller_hangs_up(caller, "1001")
        center = stack.center
        assert center.engine.agent_state("1001")[0] == "wrap_up" and center.owed_list("1001")
        center.sweep_rules = type(center.sweep_rules)(grace=0.5, max_wrap_up=0.2)  # the limit, shortened
        await asyncio.sleep(0.8)  # past the limit, and past the grace after it
        repairs = await center.sweep_once()
        await stack.settle()
        assert [r.kind for r in repairs] == ["wrap_up_overdue"] and "limit" in repairs[0].seen
        assert center.engine.agent_state("1001") == ("not_ready", "after_call_work")
        assert len(center.owed_list("1001")) == 1  # still to be given
    finally:
        await stack.stop()
