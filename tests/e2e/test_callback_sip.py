"""Kept-place callbacks over real SIP: `callcenter serve` (Kamailio front, pjsua2 workers) on
loopback, a SIPp caller who keys 1 (sales) and then the queue's callback key 9, and a SIPp phone
for agent 1001, who logs in over CTI only once the callback is asked for (every agent starts
logged out). The database (interactions, queue_events, callbacks) and the agent's ACD state (a
supervisor's CTI view) are checked once the calls are over (docs/call-flow.md, "queue_log: every
call ends exactly once" and "Kept-place callbacks")."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.core import queue_log as ql
from callcenter.cti.client import CtiClient
from callcenter.db import Database
from callcenter.db.models import Callback, Interaction, QueueEvent
from tests.e2e.sip_support import AGENT_SCENARIOS, Server, dtmf_pcap, free_udp_port, sipp, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CALLER_SCENARIOS = Path(__file__).resolve().parent / "scenarios"
AUDIO = "/usr/share/sip-tester/g711a.pcap"
NUMBER = "+8613912345678"
PIN = "1234"
AGENTS = ("1001", "1002", "1003", "1004", "1005")
CLOSING = ql.CLOSING  # each call that entered a queue gets exactly one of these


@pytest.fixture
def center(tmp_path, prompts):
    """Every agent logged out at the start; 1001's phone on a free port; the customer side of a
    callback (``sip.outbound_uri``) on a port where nobody answers."""
    nobody = free_udp_port()
    server = Server(tmp_path, free_udp_port(4), f"sqlite:///{tmp_path / 'cc.db'}", prompts, {"1001": free_udp_port()},
                    extra=["-v", "--set", f"sip.outbound_uri=sip:{{number}}@127.0.0.1:{nobody}",
                           *[arg for agent in AGENTS for arg in ("--set", f"agents.{agent}.auto_login=false")]])
    assert server.run("db", "upgrade").returncode == 0
    yield server
    server.stop()


# ------------------------------------------------------------------ what the database holds


def records(server: Server) -> dict:
    db = Database(server.database_url)
    with db.session() as s:
        found = {
            "interactions": [dict(call_id=r.call_id, direction=r.direction, outcome=r.outcome, agent_id=r.agent_id,
                                  queue=r.queue, ani=r.ani, answered_at=r.answered_at, ended_at=r.ended_at)
                             for r in s.scalars(select(Interaction).order_by(Interaction.id))],
            "events": [(e.event, e.call_id, e.agent_id, e.data)
                       for e in s.scalars(select(QueueEvent).order_by(QueueEvent.id))],
            "callbacks": [dict(id=c.id, number=c.number, queue=c.queue, status=c.status, attempts=c.attempts,
                               source=c.source, result=c.result)
                          for c in s.scalars(select(Callback).order_by(Callback.id))],
        }
    db.dispose()
    return found


def calls_events(found: dict) -> dict[str, list[str]]:
    """queue_events per call id (agent events such as AGENTLOGIN have none), in order."""
    out: dict[str, list[str]] = {}
    for event, call_id, _agent, _data in found["events"]:
        if call_id and event not in ("AGENTLOGIN", "AGENTLOGOFF", "PAUSE", "UNPAUSE", "ADDMEMBER", "REMOVEMEMBER"):
            out.setdefault(call_id, []).append(event)
    return out


def describe(server: Server, *peers) -> str:
    """Rows, events and the server's log tail for a failure message."""
    found = records(server)
    lines = ["interactions:"] + [f"  {r}" for r in found["interactions"]]
    lines += ["queue_events:"] + [f"  {e}" for e in found["events"]]
    lines += ["callbacks:"] + [f"  {c}" for c in found["callbacks"]]
    for peer in peers:
        if peer is not None and peer.errors():
            lines += [f"SIPp errors ({peer.workdir.name}):", peer.errors()]
    return "\n".join(lines) + "\nserver log:\n" + server.text()[-6000:]


def one_callback_call(found: dict) -> tuple[dict, dict]:
    """The caller's inbound interaction and the callback's outbound contact."""
    inbound = [r for r in found["interactions"] if r["direction"] == "inbound"]
    outbound = [r for r in found["interactions"] if r["direction"] == "outbound"]
    assert len(inbound) == 1 and len(outbound) == 1, found["interactions"]
    return inbound[0], outbound[0]


# ------------------------------------------------------------------ CTI


def cti_url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port + 3}"


async def log_in(server: Server, agent_id: str) -> tuple[CtiClient, dict]:
    client = CtiClient(cti_url(server))
    await client.connect()
    return client, await client.login(agent_id, PIN)


async def acd_states(server: Server) -> tuple[dict, dict[str, str]]:
    """Agent 1001's snapshot and every agent's state, as a supervisor (9001) sees them."""
    supervisor, _ = await log_in(server, "9001")
    try:
        snapshot = (await supervisor.request("agent.snapshot", agent_id="1001"))["snapshot"]
        states = {a["agent_id"]: a["state"] for a in (await supervisor.request("agents.list"))["agents"]}
    finally:
        await supervisor.close()
    return snapshot, states


async def settled_agent(server: Server) -> tuple[dict, dict[str, str]]:
    """Agent 1001 once no longer ringing or talking (wrap-up is 2 s, then available)."""
    deadline = time.monotonic() + 15
    while True:
        snapshot, states = await acd_states(server)
        if snapshot["state"] in ("wrap_up", "available") or time.monotonic() > deadline:
            return snapshot, states
        await asyncio.sleep(0.5)


# ------------------------------------------------------------------ SIPp peers


def caller(server: Server, tmp: Path, scenario: str):
    return sipp(tmp / "caller", CALLER_SCENARIOS / scenario, remote=server.port, port=free_udp_port(), calls=1,
                limit=1, timeout=90,
                keys={"key_pcap": dtmf_pcap("1"), "callback_pcap": dtmf_pcap("9"), "ani": "13912345678",
                      "display": "Zhang San"})


def phone(server: Server, tmp: Path, scenario: str):
    return sipp(tmp / "phone-1001", AGENT_SCENARIOS / scenario, port=server.agent_ports["1001"], calls=1,
                keys={"audio_pcap": AUDIO}, timeout=90)


def check_every_call_ends_once(found: dict, explain) -> dict[str, list[str]]:
    per_call = calls_events(found)
    for call_id, names in per_call.items():
        assert names[0] == "ENTERQUEUE", (call_id, names, explain())
        assert sum(n in CLOSING for n in names) == 1, (call_id, names, explain())
        assert names[-1] in CLOSING, (call_id, names, explain())
    return per_call


# ------------------------------------------------------------------ the tests


async def test_agent_who_answers_during_the_confirmation_gets_the_caller_on_their_own_line(center, tmp_path):
    center.start()
    agent_phone = phone(center, tmp_path, "agent_answer.xml")
    run = caller(center, tmp_path, "caller_callback_stay.xml")
    agent = None
    explain = lambda: describe(center, run, agent_phone)  # noqa: E731
    try:
        # The caller pressed 9 in the queue: EXITWITHKEY, a callback row; the confirmation plays (about 11 s).
        await until(lambda: records(center)["callbacks"], 45, "the callback key was taken", explain)
        agent, login = await log_in(center, "1001")
        # logged in: available, or already offered the waiting callback (reserved)
        assert login["snapshot"]["state"] in ("available", "reserved", "on_call"), login["snapshot"]
        await until(lambda: any(r["direction"] == "outbound" and r["outcome"] == "callback_answered"
                                for r in records(center)["interactions"]),
                    15, "the agent was connected to the caller on their line", explain)
        # The caller hangs up 16 s after pressing 9: had the confirmation run out and hung up on them
        # first, SIPp would have got an unexpected BYE and failed.
        assert run.wait(60) == 0, explain()

        def settled():
            found = records(center)
            return (len(found["interactions"]) == 2 and all(r["ended_at"] for r in found["interactions"])
                    and found["callbacks"] and found["callbacks"][0]["status"] == "done"
                    and all(sum(n in CLOSING for n in names) >= 1 for names in calls_events(found).values())
                    and found)

        found = await until(settled, 20, "both contacts ended, the callback done", explain)
        snapshot, states = await settled_agent(center)
    finally:
        for peer in (run, agent_phone):
            peer.kill()
        if agent is not None:
            await agent.close()

    assert snapshot["state"] in ("wrap_up", "available"), (snapshot, explain())
    assert snapshot["call"] is None, snapshot
    assert all(state != "on_call" for state in states.values()), states

    inbound, outbound = one_callback_call(found)
    assert inbound["outcome"] == "callback_requested" and inbound["queue"] == "sales", found["interactions"]
    assert outbound["outcome"] == "callback_answered" and outbound["agent_id"] == "1001", found["interactions"]
    assert outbound["answered_at"] and outbound["ani"] == NUMBER, outbound
    assert all(r["ended_at"] for r in found["interactions"]), found["interactions"]

    per_call = check_every_call_ends_once(found, explain)
    assert per_call[inbound["call_id"]] == ["ENTERQUEUE", "EXITWITHKEY"], (per_call, explain())
    callback_events = per_call[outbound["call_id"]]
    assert callback_events[:2] == ["ENTERQUEUE", "CONNECT"] and len(callback_events) == 3, (per_call, explain())
    assert callback_events[2] in ("COMPLETECALLER", "COMPLETEAGENT"), (per_call, explain())
    assert set(per_call) == {inbound["call_id"], outbound["call_id"]}, per_call

    (callback,) = found["callbacks"]
    assert callback["status"] == "done" and callback["attempts"] == 1, callback
    assert callback["source"] == "ivr" and callback["number"] == NUMBER and callback["queue"] == "sales", callback

    assert center.stop() == 0, center.text()[-3000:]
    after = records(center)
    assert calls_events(after) == per_call, "the shutdown wrote no second closing event"
    assert after["callbacks"] == found["callbacks"] and after["interactions"] == found["interactions"]


async def test_agent_who_hangs_up_at_once_leaves_the_callback_to_do(center, tmp_path):
    center.start()
    run = caller(center, tmp_path, "caller_callback_leave.xml")
    agent_phone = agent = None
    explain = lambda: describe(center, run, agent_phone)  # noqa: E731
    try:
        # The caller presses 9 and listens to the confirmation until the server hangs up.
        assert run.wait(60) == 0, explain()
        await until(lambda: any(r["direction"] == "inbound" and r["ended_at"]
                                for r in records(center)["interactions"]),
                    15, "the caller's own call ended", explain)
        before = records(center)
        assert [c["status"] for c in before["callbacks"]] == ["pending"], explain()
        assert before["callbacks"][0]["attempts"] == 0, before["callbacks"]

        agent_phone = phone(center, tmp_path, "agent_answer_hangup.xml")
        agent, login = await log_in(center, "1001")
        # logged in: available, or already offered the waiting callback (reserved)
        assert login["snapshot"]["state"] in ("available", "reserved", "on_call"), login["snapshot"]

        def settled():
            found = records(center)
            _, outbound = one_callback_call(found)
            callback = found["callbacks"][0]
            return (callback["attempts"] >= 1 and callback["status"] == "pending"
                    and all(r["ended_at"] for r in found["interactions"])
                    and any(n in CLOSING for n in calls_events(found).get(outbound["call_id"], []))
                    and found)

        found = await until(settled, 30, "the callback offered, hung up, and left to do", explain)
        assert agent_phone.wait(20) == 0, explain()
        snapshot, states = await settled_agent(center)
    finally:
        for peer in (run, agent_phone):
            if peer is not None:
                peer.kill()
        if agent is not None:
            await agent.close()

    assert snapshot["state"] in ("wrap_up", "available"), (snapshot, explain())
    assert snapshot["call"] is None, snapshot
    assert all(state != "on_call" for state in states.values()), states

    inbound, outbound = one_callback_call(found)
    assert inbound["outcome"] == "callback_requested", found["interactions"]
    # Not reached: the agent hung up first (the customer leg that could not be dialled any more, or was
    # cancelled, must not overwrite that).
    assert outbound["outcome"] == "callback_agent_hung_up", found["interactions"]
    assert outbound["agent_id"] == "1001", found["interactions"]
    assert all(r["ended_at"] for r in found["interactions"]), "no interaction left open"

    per_call = check_every_call_ends_once(found, explain)
    assert per_call[inbound["call_id"]] == ["ENTERQUEUE", "EXITWITHKEY"], (per_call, explain())
    assert per_call[outbound["call_id"]] == ["ENTERQUEUE", "ABANDON"], (per_call, explain())
    (abandon,) = [e for e in found["events"] if e[1] == outbound["call_id"] and e[0] == "ABANDON"]
    assert abandon[2] == "1001" and abandon[3].get("reason") == "callback_agent_hung_up", abandon

    (callback,) = found["callbacks"]
    assert callback["status"] == "pending" and callback["attempts"] == 1, callback

    assert center.stop() == 0, center.text()[-3000:]
    after = records(center)
    assert calls_events(after) == per_call, "the shutdown wrote no second closing event"
    assert after["callbacks"] == found["callbacks"] and after["interactions"] == found["interactions"]
