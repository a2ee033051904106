"""`make demo`'s live step end to end: `demo-calls` on config/loopback.toml against a database with
demo data, on free ports. Callers present demo customers' numbers, the simulated desks dispose of
every call they get (the queues keep agents in wrap-up until then), and nothing is left open.
Also the caller mix, and the customer names that end up in SIP headers."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.db import Database
from callcenter.db.models import Disposition, Interaction, Order
from callcenter.traffic import display_field, mix_callers
from tests.e2e.sip_support import LOOPBACK, REPO, free_udp_port


WORKERS = 4
RTP_PER_WORKER = 80  # the pool's 64 ports and 16 of gap


def command(tmp: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """``callcenter --config config/loopback.toml ...`` for ``tmp``: its own database, prompts and ports."""
    port, rtp = free_udp_port(WORKERS + 1), free_udp_port(WORKERS * RTP_PER_WORKER)
    sets = {
        "sip.port": port, "sip.worker_base_port": port + 1, "sip.queue_log": tmp / "queue_log",
        "sip.rtp_port_start": rtp, "sip.rtp_port_end": rtp + WORKERS * RTP_PER_WORKER - 1,
        "ivr.prompts_dir": tmp / "prompts", "ivr.menu_file": REPO / "config" / "ivr.toml",
        "cti.listen": f"ws://127.0.0.1:{free_udp_port()}",
        **{f"agents.100{n}.phone": f"sip:100{n}@127.0.0.1:{free_udp_port()}" for n in range(1, 6)},
    }
    command = [sys.executable, "-m", "callcenter", "--config", str(LOOPBACK),
               "--database-url", f"sqlite:///{tmp / 'cc.db'}"]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["COLUMNS"] = "120"
    return [*command, *args], env


def demo(tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    argv, env = command(tmp, *args)
    return subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)


def row(summary: str, label: str) -> int:
    found = re.search(rf"│\s*{re.escape(label)}\s*│\s*(\d+)\s*│", summary)
    assert found, f"no {label!r} row in the summary:\n{summary}"
    return int(found.group(1))


def test_caller_names_cannot_break_out_of_the_sip_header_or_the_csv_line():
    assert display_field("Li Wei") == '"Li Wei" '
    assert display_field("李伟") == '"李伟" '
    assert display_field(None) == display_field("") == display_field('";\\<>') == ""
    evil = display_field('Eve" <sip:x@evil>;tag=1\r\nVia: x\x1b[31m')
    assert evil.startswith('"') and evil.endswith('" ') and not set(evil[1:-2]) & set('";\\<>\r\n\x1b')


def test_caller_mix_is_deterministic_and_mostly_known():
    known = [(f"+86139{n:08d}", f"Customer {n}") for n in range(40)]
    unknown = [f"+86158{n:08d}" for n in range(8)]
    first = [("+8613700000001", "VIP"), ("+8613700000002", "Blacklisted")]
    mix = mix_callers(known, unknown, first=first, length=400, seed=3)
    assert mix == mix_callers(known, unknown, first=first, length=400, seed=3)
    assert mix[1] == first[0] and mix[4] == first[1]
    share = sum(1 for number, _ in mix if number in unknown) / len(mix)
    assert 0.08 < share < 0.22 and all(name is None for number, name in mix if number in unknown)
    assert mix_callers([], unknown, length=5) == [(n, None) for n in unknown[:5]]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_calls_pop_real_customers_and_the_desks_dispose_of_every_call(tmp_path):
    done = demo(tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [command(tmp_path, *step) for step in (["demo-data", "--customers", "200", "--seed", "7"],
                                                   ["prompts", "build"])]
    procs = [subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for argv, env in steps]  # side by side: they touch different things
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)

    run = demo(tmp_path, "demo-calls", "--duration", "25", "--rate", "0.5", "--talk", "4", "--workers", str(WORKERS),
               "--seed", "7")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = run.stdout
    assert "Take agent 1001's calls yourself" in run.stderr
    assert row(summary, "with orders") >= 1, "a pop showed a known customer with orders"
    assert row(summary, "screen pops") >= row(summary, "a known customer") >= row(summary, "with orders")
    saved = sum(int(n) for n in re.findall(r"│\s*disposition \w+\s*│\s*(\d+)\s*│", summary))

    db = Database(f"sqlite:///{tmp_path / 'cc.db'}")
    try:
        with db.session() as s:
            calls = list(s.scalars(select(Interaction).where(Interaction.arrived_at >= started)))
            assert len(calls) >= 5, "callers kept arriving for 25 s"
            assert all(c.ended_at is not None and c.outcome for c in calls), \
                [(c.call_id, c.outcome, c.ended_at) for c in calls if c.ended_at is None or not c.outcome]
            taken = [c for c in calls if c.agent_id and c.answered_at is not None]
            assert taken, "agents answered calls"
            disposed = {i for (i,) in s.execute(select(Disposition.interaction_id)
                                                .where(Disposition.interaction_id.in_([c.id for c in taken])))}
            assert {c.id for c in taken} <= disposed, "every call the desks got has its disposition"
            assert saved == len(taken), summary
            with_orders = [c for c in taken if c.customer_id is not None and
                           s.scalar(select(func.count()).where(Order.customer_id == c.customer_id))]
            assert with_orders, "a known customer with orders reached an agent"
            assert any(c.outcome == "blacklisted" for c in calls), "the blacklisted caller heard the message"
            assert any(c.customer_id is None for c in taken), "some callers are unknown numbers"
    finally:
        db.dispose()
