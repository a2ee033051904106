"""The fault mix, through the real front: 150 callers over about three minutes with every behaviour
a caller has (completing the IVR, hanging up in the IVR, in the queue and while an agent's phone
rings, asking to be called back and staying on or leaving) against agent phones with every
behaviour a phone has (talking, hanging up at once, ringing out, answering busy), and a supervisor
who keeps putting the paused agents back to ready. Afterwards the records must hold:

- no agent stuck: every agent settles available or not ready, with no call, and can be logged out;
- no phantom missed offer: a phone that answers is never charged ``RINGNOANSWER``, and no agent
  has more ``RINGNOANSWER`` than INVITEs its phone received;
- the miss limit (``acd.max_missed_offers``) applies to callback offers as to calls: after that
  many misses in a row the agent is paused before being offered anything else;
- every interaction closed with an outcome, every callback settled (none left ``in_progress``);
- every call that entered a queue has one queue_log story: ENTERQUEUE first, exactly one closing
  event, and it is the last (docs/call-flow.md, "queue_log: every call ends exactly once").
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from callcenter.core import queue_log as ql
from callcenter.db.models import Callback, QueueEvent
from tests.front.front_support import AGENT_SCENARIOS, free_block, pcap, running_center
from tests.front.test_front_sip import require_tools, tree_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CALLS = 150
RATE = 0.85  # calls/s: 150 calls in about 3 minutes
PHONES = {  # agent -> how their phone behaves
    "2001": "agent_answer.xml",  # talks until the caller or the worker hangs up
    "2002": "agent_answer.xml",
    "2003": "agent_answer_hangup.xml",  # answers and hangs up at once
    "2004": "agent_noanswer.xml",  # rings out
    "2005": "agent_busy.xml",  # 486 Busy Here
}
ANSWERING = ("2001", "2002", "2003")
AGENT_EVENTS = {ql.AGENTLOGIN, ql.AGENTLOGOFF, ql.PAUSE, ql.UNPAUSE, "ADDMEMBER", "REMOVEMEMBER"}


def _incoming(run) -> int:
    """INVITEs a SIPp UAS took (its statistics file's cumulative incoming calls)."""
    files = sorted(run.workdir.glob("*_.csv"))
    if not files:
        return 0
    lines = files[-1].read_text().strip().splitlines()
    row = dict(zip(lines[0].split(";"), lines[-1].split(";")))
    return int(row.get("IncomingCall(C)", 0) or 0)


async def test_fault_mix_leaves_every_record_closed_and_no_agent_stuck(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, agents=len(PHONES), front_pike_density=0)
    phone_ports = {agent: free_block(1) for agent in PHONES}
    for agent, port in phone_ports.items():
        tree["agents"][agent]["phone"] = f"sip:{agent}@127.0.0.1:{port}"
    customer_port = free_block(1)
    tree["sip"]["outbound_uri"] = f"sip:{{number}}@127.0.0.1:{customer_port}"
    max_missed = tree["acd"]["max_missed_offers"]
    async with running_center(tree, workers=6) as running:
        center = running.server.center
        phones = {agent: sipps.start(f"phone-{agent}", AGENT_SCENARIOS / scenario, calls=10_000, port=phone_ports[agent],
                                     keys={"audio_pcap": pcap("g711a.pcap")}, timeout=480)
                  for agent, scenario in PHONES.items()}
        customers = sipps.start("customers", SCENARIOS / "customer_talk.xml", calls=10_000, port=customer_port,
                                keys={"audio_pcap": pcap("g711a.pcap")}, timeout=480)
        callers = sipps.start("callers", SCENARIOS / "caller_fault_mix.xml", remote=running.address, calls=CALLS,
                              rate=RATE, limit=40, timeout=420,
                              keys={"ani": "1391234", "display": "Fault Mix", "key1": pcap("dtmf_2833_1.pcap"),
                                    "key0": pcap("dtmf_2833_0.pcap"), "key9": pcap("dtmf_2833_9.pcap")})

        resets = Counter()

        async def supervisor() -> None:
            """Every 15 s: agents paused for missed offers are put back to ready (more misses to count)."""
            while True:
                await asyncio.sleep(15)
                for agent in PHONES:
                    state, reason = center.engine.agent_state(agent)
                    if state == "not_ready" and reason == "no_answer":
                        center.force_state("9001", agent, "ready")
                        resets[agent] += 1

        resetting = asyncio.create_task(supervisor())
        try:
            await callers.finished(420)
        finally:
            resetting.cancel()

        # what is left (kept-place callbacks to customers, wrap-ups) settles
        def settled() -> bool:
            states = [center.engine.agent_state(agent)[0] for agent in PHONES]
            return not center.calls and all(s in ("available", "not_ready") for s in states)

        deadline = time.monotonic() + 120
        quiet_since = None
        while True:
            now = time.monotonic()
            quiet_since = (quiet_since or now) if settled() else None
            if quiet_since and now - quiet_since > 5:
                break
            assert now < deadline, (
                f"not settled in 120 s: calls={ {k: (c.phase, c.agent_id) for k, c in center.calls.items()} } "
                f"agents={ {a: center.engine.agent_state(a) for a in PHONES} }\n{running.describe()}")
            await asyncio.sleep(0.5)
        await center.drain()

        # ---------------------------------------------------------------- what the records hold
        with running.server.db.session() as s:
            events = [(e.event, e.call_id, e.agent_id) for e in s.scalars(select(QueueEvent).order_by(QueueEvent.id))]
            callbacks = [(c.id, c.status, c.attempts, c.source) for c in s.scalars(select(Callback))]
        interactions = running.rows()
        invites = {agent: _incoming(run) for agent, run in phones.items()}
        snapshots = {agent: center.agent_snapshot(agent) for agent in PHONES}

        per_call: dict[str, list[str]] = {}
        per_agent: dict[str, list[str]] = {agent: [] for agent in PHONES}
        for event, call_id, agent in events:
            if call_id and event not in AGENT_EVENTS:
                per_call.setdefault(call_id, []).append(event)
            if agent in per_agent:
                per_agent[agent].append(event)
        misses = {agent: names.count(ql.RINGNOANSWER) for agent, names in per_agent.items()}
        callback_calls = {r.call_id for r in interactions if r.direction == "outbound"}
        callback_misses = sum(per_call.get(c, []).count(ql.RINGNOANSWER) for c in callback_calls)

        table = Table(title=f"fault mix: {CALLS} callers at {RATE}/s, 6 workers, agents {', '.join(PHONES)}")
        for column in ("figure", "value"):
            table.add_column(column)
        table.add_row("callers (SIPp)", f"{callers.stats()} {dict(callers.outcomes())}")
        table.add_row("interactions by outcome", str(dict(Counter(r.outcome for r in interactions))))
        table.add_row("queue calls", str(len(per_call)))
        table.add_row("callbacks by status", str(dict(Counter(c[1] for c in callbacks))))
        table.add_row("INVITEs per phone", str(invites))
        table.add_row("RINGNOANSWER per agent", str(misses))
        table.add_row("RINGNOANSWER on callback offers", str(callback_misses))
        table.add_row("supervisor resets", str(dict(resets)))
        table.add_row("agents at the end", str({a: (s["state"], s["reason"]) for a, s in snapshots.items()}))
        Console(width=160).print(table)

        explain = f"\n{running.describe()}\ncallers: {callers.report()}"
        # every caller got a final answer and ended (0 SIPp timeouts, no unexpected message)
        assert callers.stats().get("failed") == 0, callers.report()
        outcomes = callers.outcomes()
        assert outcomes["ANSWERED"] + outcomes["REFUSED"] == CALLS, callers.report()
        assert outcomes["ANSWERED"] >= CALLS // 2, callers.report()
        # the mix really happened: talks, abandons, kept-place callbacks, misses on both bad phones
        by_outcome = Counter(r.outcome for r in interactions)
        assert by_outcome["answered"] > 10 and by_outcome["abandoned"] > 5, by_outcome
        assert callback_calls, "no kept-place callback was ever dialled"
        assert misses["2004"] > 0 and misses["2005"] > 0, misses

        # no agent stuck
        for agent, snap in snapshots.items():
            assert snap["call"] is None, (agent, snap)
            assert snap["state"] in ("available", "not_ready"), (agent, snap)
            if snap["state"] == "not_ready":
                assert snap["reason"] == "no_answer" and agent not in ANSWERING, (agent, snap)
        # no phantom missed offers
        for agent in ANSWERING:
            assert misses[agent] == 0, (agent, per_agent[agent], explain)
        for agent in PHONES:
            assert misses[agent] <= invites[agent], (agent, misses[agent], invites[agent])
        # the miss limit, callback offers included: never more than max_missed misses before a pause
        for agent, names in per_agent.items():
            run = 0
            for name in names:
                if name == ql.RINGNOANSWER:
                    run += 1
                    assert run <= max_missed, (agent, names)
                elif name in (ql.PAUSE, ql.CONNECT):
                    run = 0
        # every record closed
        open_rows = [(r.call_id, r.direction, r.outcome, r.agent_id) for r in interactions
                     if r.ended_at is None or not r.outcome]
        assert not open_rows, open_rows
        assert not [c for c in callbacks if c[1] == "in_progress"], callbacks
        for call_id, names in per_call.items():
            assert names[0] == ql.ENTERQUEUE, (call_id, names)
            assert sum(n in ql.CLOSING for n in names) == 1, (call_id, names)
            assert names[-1] in ql.CLOSING, (call_id, names)
        # and anyone can still be logged out by a supervisor
        for agent in PHONES:
            center.force_state("9001", agent, "logged_out")
            assert center.engine.agent_state(agent)[0] == "logged_out"
        customers.kill()
