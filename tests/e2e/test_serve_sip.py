"""`callcenter serve` end to end on loopback: SIPp callers key through the IVR into a queue and reach
SIPp agent phones; hang-ups, ring-outs, rejections and a killed worker; every contact in the database."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.db import Database
from callcenter.db.models import Interaction, QueueEvent
from tests.e2e.sip_support import AGENT_SCENARIOS, SCENARIOS, Server, dtmf_pcap, free_udp_port, sipp

AUDIO = "/usr/share/sip-tester/g711a.pcap"


@pytest.fixture
def center(tmp_path, prompts):
    """A migrated database and a server whose five agents' phones are on free ports (no phone yet)."""
    agents = {f"100{n}": free_udp_port() for n in range(1, 6)}
    server = Server(tmp_path, free_udp_port(4), f"sqlite:///{tmp_path / 'cc.db'}", prompts, agents)
    assert server.run("db", "upgrade").returncode == 0
    yield server
    server.stop()


def rows(server: Server) -> list[Interaction]:
    db = Database(server.database_url)
    with db.session() as s:
        found = list(s.scalars(select(Interaction).order_by(Interaction.id)))
    db.dispose()
    return found


def events(server: Server) -> list[tuple[str, str | None, str | None]]:
    db = Database(server.database_url)
    with db.session() as s:
        found = [(e.event, e.call_id, e.agent_id) for e in s.scalars(select(QueueEvent).order_by(QueueEvent.id))]
    db.dispose()
    return found


def agent_phone(server: Server, tmp: Path, agent: str, scenario: str, calls: int):
    return sipp(tmp / f"phone-{agent}", AGENT_SCENARIOS / scenario, port=server.agent_ports[agent], calls=calls,
                keys={"audio_pcap": AUDIO}, timeout=180)


def callers(server: Server, tmp: Path, *, calls: int, key: str = "1", talk_ms: int = 8000, limit: int = 2,
            name: str = "callers"):
    return sipp(tmp / name, SCENARIOS / "caller_ivr.xml", remote=server.port, port=free_udp_port(), calls=calls,
                rate=0.5, limit=limit, timeout=180, duration_ms=talk_ms,
                keys={"key_pcap": dtmf_pcap(key), "ani": "13912345678", "display": "Zhang San"})


def test_callers_reach_agents_and_every_contact_is_recorded(center, tmp_path):
    center.start()
    phones = [agent_phone(center, tmp_path, a, "agent_answer.xml", 3) for a in center.agent_ports]
    run = callers(center, tmp_path, calls=3)
    assert run.wait(180) == 0, run.errors() + center.text()[-3000:]
    assert center.stop() == 0
    for phone in phones:
        phone.kill()
    found = rows(center)
    assert len(found) == 3
    for row in found:
        assert row.outcome == "answered", (row.outcome, center.text()[-2000:])
        assert row.queue == "sales" and row.agent_id in center.agent_ports
        assert row.ani == "+8613912345678" and row.display_name == "Zhang San"
        assert row.answered_at and row.ended_at and row.talk_seconds and row.talk_seconds > 1
        assert row.ivr_path, "the IVR path is kept"
    names = [e[0] for e in events(center) if e[1]]
    assert names.count("ENTERQUEUE") == 3 and names.count("CONNECT") == 3 and names.count("COMPLETECALLER") == 3
    queue_log = (tmp_path / "queue_log").read_text().splitlines()
    assert sum("|CONNECT|" in line for line in queue_log) == 3
    assert any("|AGENTLOGIN|" in line for line in queue_log)


def test_agent_phones_that_ring_out_or_reject_send_the_caller_to_another_agent(center, tmp_path):
    center.start()
    busy = agent_phone(center, tmp_path, "1001", "agent_busy.xml", 5)
    silent = agent_phone(center, tmp_path, "1002", "agent_noanswer.xml", 5)
    good = agent_phone(center, tmp_path, "1003", "agent_answer.xml", 5)
    # 1004 and 1005 have no phone at all: unreachable.
    run = callers(center, tmp_path, calls=1, talk_ms=30000, limit=1)
    assert run.wait(180) == 0, run.errors() + center.text()[-3000:]
    center.stop()
    for phone in (busy, silent, good):
        phone.kill()
    (row,) = rows(center)
    assert row.outcome == "answered" and row.agent_id == "1003", (row.outcome, row.agent_id)
    misses = [e for e in events(center) if e[0] == "RINGNOANSWER"]
    assert misses, "the failed offers are in the queue event log"


def test_caller_who_hangs_up_in_queue_is_an_abandon(center, tmp_path):
    center.start()
    # Nobody's phone answers (none is running): the caller waits, then gives up.
    run = callers(center, tmp_path, calls=1, talk_ms=6000, limit=1)
    run.wait(120)
    time.sleep(1)
    center.stop()
    (row,) = rows(center)
    assert row.outcome == "abandoned" and row.ended_at is not None and row.wait_seconds is not None
    assert "ABANDON" in [e[0] for e in events(center)]


def test_a_killed_worker_loses_only_its_calls_and_comes_back(center, tmp_path):
    center.workers = 1
    center.start()
    phone = agent_phone(center, tmp_path, "1001", "agent_answer.xml", 3)
    run = callers(center, tmp_path, calls=1, talk_ms=40000, limit=1, name="doomed")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r.answered_at for r in rows(center)):
        time.sleep(0.5)
    assert any(r.answered_at for r in rows(center)), center.text()[-3000:]
    worker_pids = [int(p) for p in os.popen(f"pgrep -f 'callcenter.telephony.worker.*--port {center.worker_port}'").read().split()]
    assert worker_pids, "worker process not found"
    for pid in worker_pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and rows(center)[0].ended_at is None:
        time.sleep(0.5)
    run.kill()
    (row,) = rows(center)
    assert row.outcome == "failed_worker" and row.ended_at is not None
    time.sleep(3)  # the pool restarts the worker
    phone2 = agent_phone(center, tmp_path, "1002", "agent_answer.xml", 1)
    again = callers(center, tmp_path, calls=1, talk_ms=4000, limit=1, name="after")
    assert again.wait(120) == 0, again.errors() + center.text()[-3000:]
    center.stop()
    phone.kill()
    phone2.kill()
    assert rows(center)[-1].outcome == "answered"
