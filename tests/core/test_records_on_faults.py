"""Every record closes on faults: a crash of the server (restart clean-up), a worker that dies while callers wait."""

from __future__ import annotations

from sqlalchemy import select

from callcenter.db.models import Interaction, QueueEvent
from callcenter.core import telephony_protocol as tp
from tests.cti.cti_support import Stack

CLOSING = {"COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY",
           "BLINDTRANSFER"}


def queue_calls(stack: Stack) -> dict[str, list[tuple[str, dict]]]:
    with stack.db.session() as s:
        rows = s.execute(select(QueueEvent.call_id, QueueEvent.event, QueueEvent.data)
                         .where(QueueEvent.call_id.is_not(None)).order_by(QueueEvent.id)).all()
    calls: dict[str, list[tuple[str, dict]]] = {}
    for call_id, event, data in rows:
        calls.setdefault(call_id, []).append((event, data))
    return calls


def assert_each_call_ends_once(stack: Stack) -> None:
    for call_id, events in queue_calls(stack).items():
        names = [e for e, _ in events if e not in ("RINGNOANSWER", "RINGCANCELED")]
        closing = [e for e in names if e in CLOSING]
        assert len(closing) == 1 and names[-1] == closing[0], (call_id, names)


async def test_a_restart_after_a_crash_closes_every_queue_log_call_exactly_once(tmp_path):
    crashed = Stack(tmp_path)
    await crashed.start()
    crashed.only_agent("1001")
    talking = await crashed.caller_to_queue(ani="13800000001")
    await crashed.answer("1001")
    await crashed.caller_to_queue(ani="13800000002")  # waits: 1001 is busy, 1002 on break
    await crashed.center.drain()
    before = queue_calls(crashed)
    assert sorted(tuple(e for e, _ in v) for v in before.values()) == [("ENTERQUEUE",), ("ENTERQUEUE", "CONNECT")]
    # The server dies here: nothing of it runs any more (no stop, no clean-up).
    crashed.center._runner.cancel()
    await crashed.cti.stop()

    restarted = Stack(tmp_path)
    await restarted.start()
    try:
        await restarted.center.drain()
        after = queue_calls(restarted)
        assert sorted(tuple(e for e, _ in v) for v in after.values()) == [
            ("ENTERQUEUE", "ABANDON"), ("ENTERQUEUE", "CONNECT", "COMPLETECALLER")]
        assert all(v[-1][1]["reason"] == "server_restart" for v in after.values())
        with restarted.db.session() as s:
            assert s.scalar(select(Interaction).where(Interaction.ended_at.is_(None))) is None
        await restarted.stop()
        again = Stack(tmp_path)  # a second restart finds nothing more to close
        await again.start()
        await again.center.drain()
        assert queue_calls(again) == after
        await again.stop()
    finally:
        crashed.db.dispose()
    assert talking


async def test_a_dead_worker_closes_the_queue_log_of_waiting_and_talking_callers(tmp_path):
    stack = Stack(tmp_path)
    await stack.start()
    try:
        stack.only_agent("1001")
        first = await stack.caller_to_queue(ani="13800000001")
        agent_leg = await stack.answer("1001")
        second = await stack.caller_to_queue(ani="13800000002")
        stack.fake.inject(tp.WorkerDied(worker="w1", legs=(first, agent_leg, second), returncode=-9))
        await stack.settle()
        assert_each_call_ends_once(stack)
        reasons = {v[-1][1].get("reason") for v in queue_calls(stack).values()}
        assert reasons == {"failed_worker"}
    finally:
        await stack.stop()
