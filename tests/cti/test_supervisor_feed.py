"""The supervisors' side of the CTI server: snapshot, coalesced pushes, queue detail, actions and their audit.

Real pieces as in test_server.py: the call flow, the CTI server on loopback, SQLite migrated with
Alembic; callers come from the fake telephony and walk through the real IVR into the queue.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from callcenter.cti import protocol as p
from callcenter.cti.errors import CtiAuthError, CtiRequestError
from callcenter.db.models import AuditEntry
from callcenter.core import telephony_protocol as tp
from tests.cti.cti_support import PINS, Stack, of_type, wait_for


@pytest.fixture
async def stack(tmp_path):
    s = Stack(tmp_path, sample_every=0.2)
    await s.start()
    yield s
    await s.stop()


def audit_rows(stack: Stack) -> list[tuple[str, str, str | None, dict]]:
    with stack.db.session() as s:
        return [(r.actor, r.action, r.target, r.details) for r in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


async def two_waiting(stack: Stack) -> None:
    """Nobody free: both auto-logged-in agents on break, two callers wait in 'general'."""
    stack.center.not_ready("1001", "break")
    stack.center.not_ready("1002", "lunch")
    await stack.caller_to_queue(ani="13900000001", display_name="First")
    await stack.caller_to_queue(ani="13900000002", display_name="Second")


async def test_snapshot_has_every_queue_agent_and_the_waiting_callers(stack):
    await two_waiting(stack)
    supervisor, _, data = await stack.logged_in("9001")
    assert data["agent"]["role"] == "supervisor"
    snap = await supervisor.request("supervisor.snapshot")
    queues = {q["queue"]: q for q in snap["queues"]}
    assert set(queues) == {"sales", "support", "vip", "general"}
    general = queues["general"]
    assert general["waiting"] == 2 and general["offered"] == 2 and general["oldest_since"] is not None
    assert general["agents"]["not_ready"] == 2 and general["agents"]["available"] == 0
    assert general["sl_target"] == 0.8 and general["sl_seconds"] == 30
    agents = {a["agent_id"]: a for a in snap["agents"]}
    assert set(agents) == {"1001", "1002", "1003", "1004", "1005"}, "supervisors are not rows"
    assert agents["1002"]["state"] == "not_ready" and agents["1002"]["reason"] == "lunch"
    assert agents["1003"]["state"] == "logged_out"
    assert agents["1001"]["skills"] == {"en": 3, "sales": 5, "vip": 4, "zh": 5}
    assert snap["counters"] == {"blocked": 0, "arrived": 2, "repairs": 0}
    assert snap["thresholds"] == {"wait_amber_seconds": 60, "wait_red_seconds": 180, "sl_red_margin": 0.1}
    assert {s["queue"] for s in snap["staffing"]} == set(queues)
    await supervisor.close()


@pytest.fixture
async def quiet_stack(tmp_path):
    """No periodic refresh during the test: every push comes from a change."""
    s = Stack(tmp_path, sample_every=60)
    await s.start()
    yield s
    await s.stop()


async def test_changes_are_pushed_coalesced_and_only_the_rows_that_changed(quiet_stack):
    stack = quiet_stack
    supervisor, feed, _ = await stack.logged_in("9001")
    await supervisor.request("supervisor.snapshot")
    feed.clear()
    for _ in range(25):  # a burst: 50 state changes in one go
        stack.center.not_ready("1002", "break")
        stack.center.ready("1002")
    stack.center.not_ready("1002", "meeting")
    updates = await wait_for(lambda: [u for u in of_type(feed, "supervisor.update") if u.get("agents")])
    await asyncio.sleep(0.6)  # anything left over goes out within one push interval
    updates = [u for u in of_type(feed, "supervisor.update") if u.get("agents")]
    assert 1 <= len(updates) <= 3, f"51 changes were coalesced into {len(updates)} pushes"
    last = {a["agent_id"]: a for a in updates[-1]["agents"]}
    assert set(last) == {"1002"}, "only the agent that changed"
    assert last["1002"]["state"] == "not_ready" and last["1002"]["reason"] == "meeting"
    queues = {q["queue"] for u in updates for q in u.get("queues", [])}
    assert queues == {"support", "general"}, "the queues of that agent, for their agent counts"
    assert isinstance(updates[-1]["changed_mono"], float)
    assert len(of_type(feed, "agent.state")) == 51, "the raw agent.state feed is unchanged"
    await supervisor.close()


async def test_a_waiting_caller_reaches_the_feed_and_the_queue_detail_explains_the_wait(stack):
    supervisor, feed, _ = await stack.logged_in("9001")
    await supervisor.request("supervisor.snapshot")
    await two_waiting(stack)
    pushed = await wait_for(lambda: [q for u in of_type(feed, "supervisor.update") for q in u.get("queues", [])
                                     if q["queue"] == "general" and q["waiting"] == 2])
    assert pushed[-1]["offered"] == 2
    detail = await supervisor.request("queue.detail", queue="general")
    assert [c["ani"] for c in detail["callers"]] == ["+8613900000001", "+8613900000002"], "service order"
    assert [c["display_name"] for c in detail["callers"]] == ["First", "Second"]
    assert [c["position"] for c in detail["callers"]] == [1, 2]
    assert detail["callers"][0]["skills"] == {"zh": 1}, "the IVR's language requirement"
    why = detail["why"]
    assert why["summary"] == {"not_ready": 2}
    assert {v["agent_id"]: v["verdict"] for v in why["verdicts"]} == {"1001": "not_ready", "1002": "not_ready"}
    assert any("not ready (lunch)" in v["detail"] for v in why["verdicts"])
    with pytest.raises(CtiRequestError) as caught:
        await supervisor.request("queue.detail", queue="nope")
    assert caught.value.code == p.NOT_FOUND and "general" in caught.value.message
    await supervisor.close()


async def test_forced_states_change_the_acd_and_are_audited_with_the_supervisor(stack):
    supervisor, _, _ = await stack.logged_in("9001")
    done = await supervisor.request("agent.force_state", agent_id="1002", state="not_ready", reason="training")
    assert done["state"] == "not_ready" and done["reason"] == "training"
    assert stack.center.engine.agent_state("1002") == ("not_ready", "training")
    await supervisor.request("agent.force_state", agent_id="1002", state="ready")
    assert stack.center.engine.agent_state("1002") == ("available", None)
    await supervisor.request("agent.force_state", agent_id="1002", state="logged_out")
    assert stack.center.engine.agent_state("1002") == ("logged_out", None)
    rows = audit_rows(stack)
    assert [(a, act, t) for a, act, t, _ in rows] == [
        ("9001", "agent.not_ready", "agent:1002"), ("9001", "agent.ready", "agent:1002"),
        ("9001", "agent.logged_out", "agent:1002")]
    assert rows[0][3]["before"] == "available" and rows[0][3]["after"] == "not_ready"
    assert rows[0][3]["reason"] == "training"
    await supervisor.close()


async def test_invalid_actions_get_clear_errors_and_change_nothing(stack):
    supervisor, _, _ = await stack.logged_in("9001")
    before = {a: stack.center.engine.agent_state(a) for a in ("1001", "1002", "1003")}
    cases = [
        ({"agent_id": "1001", "state": "ready"}, p.REFUSED, "only a not-ready agent"),
        ({"agent_id": "1003", "state": "not_ready", "reason": "break"}, p.REFUSED, "logged out"),
        ({"agent_id": "1001", "state": "not_ready", "reason": "nap"}, p.REFUSED, "unknown not-ready reason"),
        ({"agent_id": "1001", "state": "not_ready"}, p.BAD_REQUEST, "give a 'reason'"),
        ({"agent_id": "1001", "state": "asleep"}, p.BAD_REQUEST, "must be one of"),
        ({"agent_id": "7777", "state": "ready"}, p.NOT_FOUND, "no agent"),
        ({"agent_id": "9001", "state": "ready"}, p.NOT_FOUND, "no agent"),
    ]
    for fields, code, words in cases:
        with pytest.raises(CtiRequestError) as caught:
            await supervisor.request("agent.force_state", **fields)
        assert caught.value.code == code and words in caught.value.message, (fields, caught.value.message)
    for skills, words in (({"sales": 9}, "from 1 to 5"), ({"sales": "high"}, "from 1 to 5"),
                          ({"en": 3, "sales": 5, "vip": 4, "zh": 5}, "already has"),
                          ({f"invented{i}": 3 for i in range(3000)}, "unknown skills 'invented0'"),
                          ({"x" * 1000: 3}, "unknown skill 'xxxxxxxx"), ({}, "at least one skill")):
        with pytest.raises(CtiRequestError) as caught:
            await supervisor.request("agent.set_skills", agent_id="1001", skills=skills)
        assert caught.value.code == p.REFUSED and words in caught.value.message
    assert {a: stack.center.engine.agent_state(a) for a in before} == before
    assert stack.center.engine.agent_skills("1001") == {"en": 3, "sales": 5, "vip": 4, "zh": 5}
    await stack.center.drain()
    assert audit_rows(stack) == [], "nothing refused is audited as done"
    await supervisor.close()


async def test_not_ready_waits_for_the_call_and_logging_out_ends_the_call_on_the_record(stack):
    supervisor, _, _ = await stack.logged_in("9001")
    stack.only_agent("1001")
    leg = await stack.caller_to_queue()
    agent_leg = await stack.answer("1001")
    assert stack.center.engine.agent_state("1001")[0] == "on_call"
    done = await supervisor.request("agent.force_state", agent_id="1001", state="not_ready", reason="meeting")
    assert done == {"agent_id": "1001", "state": "on_call", "reason": None, "pending": "meeting"}
    done = await supervisor.request("agent.force_state", agent_id="1001", state="logged_out")
    assert done["state"] == "logged_out"
    hung = {c.leg for c in stack.fake.sent(tp.Hangup)}
    assert {leg, agent_leg} <= hung, "the call is ended, not left to run with nobody on it"
    await stack.caller_hangs_up(leg, "1001")
    await stack.center.drain()
    assert [r[1] for r in audit_rows(stack)] == ["agent.not_ready", "agent.logged_out"]


async def test_changed_skills_route_calls_and_are_audited(stack):
    supervisor, _, _ = await stack.logged_in("9001")
    agent, _, _ = await stack.logged_in("1005")  # general only, zh 5
    stack.center.not_ready("1001", "break")
    stack.center.not_ready("1002", "break")
    await supervisor.request("agent.set_skills", agent_id="1005", skills={"sales": 1})  # no zh any more
    await stack.caller_to_queue()
    detail = await supervisor.request("queue.detail", queue="general")
    assert detail["waiting"] == 1, "the caller needs zh >= 1 and nobody free has it"
    verdicts = {v["agent_id"]: v["verdict"] for v in detail["why"]["verdicts"]}
    assert verdicts["1005"] == "missing_skill"
    done = await supervisor.request("agent.set_skills", agent_id="1005", skills={"zh": 4, "sales": 1})
    assert done["skills"] == {"sales": 1, "zh": 4}
    await wait_for(lambda: stack.center.engine.agent_state("1005")[0] == "reserved")
    rows = audit_rows(stack)
    assert [(r[0], r[1], r[2]) for r in rows] == [("9001", "agent.skills", "agent:1005")] * 2
    assert rows[0][3] == {"before": {"sales": 1, "support": 1, "zh": 5}, "after": {"sales": 1}}
    await supervisor.close()
    await agent.close()


async def test_agents_cannot_use_supervisor_requests_nor_log_in_as_supervisors(stack):
    agent, _, _ = await stack.logged_in("1001")
    for kind, fields in [("supervisor.snapshot", {}), ("queue.detail", {"queue": "general"}),
                         ("supervisor.trends", {}), ("agent.force_state", {"agent_id": "1002", "state": "ready"}),
                         ("agent.set_skills", {"agent_id": "1001", "skills": {"sales": 5}})]:
        with pytest.raises(CtiRequestError) as caught:
            await agent.request(kind, **fields)
        assert caught.value.code == p.FORBIDDEN, kind
    await agent.close()
    client = await stack.client()
    with pytest.raises(CtiAuthError) as caught:
        await client.login("1003", PINS["1003"], role="supervisor")
    assert caught.value.code == p.FORBIDDEN and "agent role, not supervisor" in caught.value.message
    assert stack.center.engine.agent_state("1003")[0] == "logged_out", "the refused login did not log 1003 in"
    await client.close()


async def test_blocked_calls_are_counted_and_pushed(stack):
    from callcenter.core import telephony_protocol as tp

    supervisor, feed, _ = await stack.logged_in("9001")
    await supervisor.request("supervisor.snapshot")
    stack.fake.inject(tp.CallRefused(worker="w1", call_id="sip-call-1", ani="+8613900000009", dnis="4008001234", status=503,
                                     reason="Service Unavailable", remote_address="127.0.0.1:5099"))
    blocked = await wait_for(lambda: of_type(feed, "call.blocked"))
    assert blocked[0]["status"] == 503
    counted = await wait_for(lambda: [u for u in of_type(feed, "supervisor.update")
                                      if u.get("counters", {}).get("blocked") == 1])
    assert counted
    assert (await supervisor.request("supervisor.snapshot"))["counters"]["blocked"] == 1
    await supervisor.close()


async def test_trends_and_staffing_come_from_the_sampled_history(stack):
    supervisor, feed, _ = await stack.logged_in("9001")
    stack.only_agent("1001")
    leg = await stack.caller_to_queue()
    await stack.answer("1001")
    await asyncio.sleep(0.3)
    await stack.caller_hangs_up(leg, "1001")
    await wait_for(lambda: [u for u in of_type(feed, "supervisor.update") if u.get("staffing")], timeout=3)
    await asyncio.sleep(0.5)
    trends = await supervisor.request("supervisor.trends", queue="general")
    assert sum(point["arrivals"] for point in trends["points"]) == 1
    assert trends["points"][-1]["offset"] <= 0
    total = await supervisor.request("supervisor.trends")
    assert total["queue"] is None and sum(point["arrivals"] for point in total["points"]) == 1
    staffing = {s["queue"]: s for s in (await supervisor.request("supervisor.snapshot"))["staffing"]}
    general = staffing["general"]
    assert general["arrivals"] == 1 and general["aht"] is not None and general["aht"] > 0
    assert general["recommended"] >= 1 and general["logged_in"] == 2
    assert staffing["sales"]["recommended"] == 0 and staffing["sales"]["note"] == "no arrivals in the window"
    with pytest.raises(CtiRequestError) as caught:
        await supervisor.request("supervisor.trends", queue="nope")
    assert caught.value.code == p.NOT_FOUND
    await supervisor.close()


async def test_a_stopped_feed_schedules_nothing_for_late_changes(stack):
    """While the server shuts down, the call flow still reports changes: no timer may outlive the feed."""
    from callcenter.cti.supervision import SupervisorFeed

    pushed: list[dict] = []
    feed = SupervisorFeed(stack.settings, push=pushed.append, listening=lambda: True, interval=0.01)
    feed.bind(stack.center)
    feed.start()
    feed.changed(queues=["sales"])
    await asyncio.sleep(0.05)
    assert len(pushed) == 1, "a running feed pushes"
    feed.stop()
    feed.changed(queues=["sales"], counters=True)
    await asyncio.sleep(0.05)
    assert len(pushed) == 1 and feed._handle is None and feed._sampler is None
