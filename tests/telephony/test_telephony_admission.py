"""Leg budget and rate limit (pure), and the in-memory FakeTelephony twin of the pool."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.core import telephony_protocol as p
from callcenter.telephony.admission import LegBudget, RateLimiter
from callcenter.telephony.pool import FakeTelephony, Telephony, WorkerPool


def test_two_callers_fill_four_legs_and_agents_use_their_reservations():
    b = LegBudget(4)
    assert b.admit("c1") and b.admit("c2")
    assert (b.free, b.in_use, b.reserved) == (0, 2, 2)
    assert not b.admit("c3"), "a third caller would leave an agent without a leg"
    assert b.attach("a1", "c1") and b.attach("a2", "c2")
    assert (b.free, b.in_use, b.reserved) == (0, 4, 0)
    assert not b.attach("a3", "c1"), "c1's reservation is in use and nothing is free"
    b.release("a1")  # agent rang out: c1 gets its reservation back
    assert (b.free, b.reserved) == (0, 1)
    assert b.attach("a4", "c1")
    b.release("c2")  # caller hung up first: its agent leg stays until it ends
    assert (b.free, b.in_use, b.reserved) == (1, 3, 0)
    b.release("a2")
    assert b.free == 2
    b.release("a2")  # idempotent
    assert b.free == 2


def test_odd_budget_and_legs_without_peer():
    b = LegBudget(3)
    assert b.admit("c1")
    assert not b.admit("c2")
    assert b.attach("x", None)  # a plain leg takes a free slot
    assert b.free == 0 and not b.attach("y", None)
    with pytest.raises(ValueError):
        LegBudget(0)


ops = st.lists(st.tuples(st.sampled_from(["admit", "attach", "release"]), st.integers(0, 7), st.integers(0, 7)),
               max_size=80)


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 8), ops)
def test_budget_never_overbooks(legs, sequence):
    b = LegBudget(legs)
    anchors: dict[str, str | None] = {}
    for op, x, y in sequence:
        leg, other = f"l{x}", f"l{y}"
        if op == "admit":
            ok = b.admit(leg)
            if ok:
                anchors[leg] = None
        elif op == "attach":
            ok = b.attach(leg, other if x != y else None)
        else:
            b.release(leg)
        assert 0 <= b.free <= legs
        assert b.in_use + b.reserved <= legs
        assert b.reserved <= b.in_use
    # releasing everything gives every leg back
    for n in range(8):
        b.release(f"l{n}")
    assert (b.free, b.in_use, b.reserved) == (legs, 0, 0)


def test_rate_limiter_sliding_window():
    r = RateLimiter(5, window=1.0)
    assert all(r.allow(0.1 * i) for i in range(5))
    assert not r.allow(0.5)
    assert r.count(0.5) == 5
    assert r.allow(1.05)  # the first one left the window
    r.note(1.06)  # counted even over the limit
    assert r.count(1.06) == 6 and not r.allow(1.07)
    assert r.count(10.0) == 0


# ---------------------------------------------------------------------------------- the twin


def test_fake_has_the_pool_interface():
    for name in ("start", "stop", "send", "dial", "free_legs", "worker_of", "pick_worker"):
        real = [n for n in inspect.signature(getattr(WorkerPool, name)).parameters if n != "timeout" or name != "dial"]
        fake = [n for n in inspect.signature(getattr(FakeTelephony, name)).parameters if n != "timeout" or name != "dial"]
        if name == "start":
            real = [n for n in real if n != "timeout"]
        assert fake == real, name
        assert name in Telephony.__dict__ or name == "pick_worker"


def test_fake_records_commands_and_delivers_injected_events():
    async def main():
        t = FakeTelephony(workers=2)
        await t.start()
        leg = t.arrive(ani="13800138000", display_name="Li Lei")
        ev = await t.events.get()
        assert isinstance(ev, p.CallArrived) and ev.leg == leg and ev.worker == "w1"
        assert t.free_legs("w1") == 2 and t.free_legs() == 6
        cid = t.send(p.AnswerCall(leg=leg))
        agent = t.dial("sip:1001@127.0.0.1:5080", peer=leg, caller_id=ev.ani)
        assert t.worker_of(agent) == "w1" and t.free_legs("w1") == 2
        t.send(p.Bridge(a=leg, b=agent))
        kinds = [type(c).__name__ for c in t.sent()]
        assert kinds == ["AnswerCall", "Dial", "Bridge"]
        assert t.sent(p.AnswerCall)[0].id == cid
        t.inject(p.LegEnded(leg=leg, cause="remote"))
        t.inject(p.WorkerDied(worker="w1", legs=(agent,)))
        assert t.free_legs("w1") == 4 and t.worker_of(agent) is None
        t.arrive(worker="w2")
        t.arrive(worker="w2")
        assert t.dial("sip:x@127.0.0.1", worker="w2")  # no room: CommandFailed comes back
        events = [t.events.get_nowait() for _ in range(t.events.qsize())]
        assert isinstance(events[-1], p.CommandFailed) and events[-1].command == "Dial"
        await t.stop()
        assert t.stopped

    asyncio.run(main())


def test_pool_routing_failures_come_back_as_events():
    async def main():
        pool = WorkerPool(2, base_port=5900, rtp_start=40000)  # never started
        cid = pool.send(p.AnswerCall(leg="w1.1-1"))
        ev = pool.events.get_nowait()
        assert isinstance(ev, p.CommandFailed) and ev.command_id == cid and "unknown leg" in ev.reason
        leg = pool.dial("sip:1@127.0.0.1")
        ev = pool.events.get_nowait()
        assert isinstance(ev, p.CommandFailed) and ev.leg == leg
        assert pool.free_legs() == 0 and [w.port for w in pool.workers] == [5900, 5901]
        ranges = [(w.rtp_start, w.rtp_end) for w in pool.workers]
        assert ranges[0][1] < ranges[1][0] - 1, "RTP ranges need a gap (pjsua's range includes its end)"

    asyncio.run(main())
