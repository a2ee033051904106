"""Phone faults: a real center run for a few minutes with broken agent phones, killed phones and worker events
lost on purpose, then its records checked and the reconciliation sweep's repairs timed.

Run:  .venv/bin/python bench/phone_faults.py [--duration 240] [--rate 0.3] [--quit-rate 0.067] [--workers 8]
                                             [--settle 40] [--keep]

Needs SIPp (Debian ``sip-tester``, with RTP streaming: ``sipp -v`` says RTPSTREAM), Kamailio, pjsua2 and
espeak-ng (the IVR prompts), like ``tests/front``. About 6 minutes with the defaults (2 cores).

**The center.** ``bootstrap.Server`` in this process (as ``tests/front/front_support.running_center`` runs it):
``config/loopback.toml`` with the real Kamailio front, ``--workers`` pjsua2 workers (a fixed pool), timed 2 s
wrap-up, and short dead-call settings so that the run takes minutes: ``sip.rtp_timeout_seconds`` 8 (a talking
leg without RTP for 8 s is hung up), ``repair.sweep_seconds`` 2, ``repair.grace_seconds`` 3. SIP ports are taken
in 19000-19999, RTP ports in 48000-60000. Every event the workers deliver is recorded with its time (the pool's
event queue is tapped), and the center's log goes to ``center.log`` in the run folder.

**Callers** (``bench/scenarios/phone_caller.xml``, one SIPp through the front): ``--rate`` calls/s for
``--duration`` s. Each streams speech (SIPp ``rtp_stream``, PCMU) from its answer to its end, keys 1 (sales)
8 s into the greeting and stays on 25 s more (hanging up in the queue or while talking). A second SIPp
("quitters", ``--quit-rate``) hangs up 5 s into the greeting.

**Agent phones**: one SIPp UAS per agent, each at a fixed URI (``sip:AGENT@127.0.0.1:PORT``):

| agent | phone |
|---|---|
| 2001-2003 | talks: rings 2 s, answers, streams speech until the BYE (``phone_talk.xml``) |
| 2004 | goes silent once it answered: no RTP, never answers the BYE (``phone_silent.xml``) |
| 2005 | talks but never answers a BYE (``phone_nobye.xml``) |
| 2006 / 2007 | rejects after ringing 1.5 s: 486 / 603 (``phone_busy.xml``, ``phone_decline.xml``) |
| 2008 | rings out: 180, then 487 to the CANCEL (``tests/telephony/scenarios/agent_noanswer.xml``) |
| 2009 | talks, and is killed (SIGKILL) while its offer rings, started again 20 s later |
| 2010 | talks, and is killed 2 s into a conversation, started again 35 s later |

A supervisor puts agents paused for missed offers (``not_ready``, ``no_answer``) back to ready every 10 s.

**Lost events** (``WorkerPool.drop_next``: the event never reaches the control process, the pool records
when it was lost in ``pool.dropped``), spread over the run, each armed as soon as a target exists:

| kind | event lost | what the center believes | repair expected |
|---|---|---|---|
| ``caller_bye_talking`` | ``LegEnded`` of the caller leg of a conversation with 2001-2003 | the call still talks | ``leg_lost`` |
| ``caller_bye_ivr`` | ``LegEnded`` of a quitter's leg in the IVR | the caller still listens | ``leg_lost`` |
| ``agent_bye_talking`` | ``LegEnded`` of 2004's leg (its RTP timeout) | the agent still talks | ``leg_lost`` |
| ``agent_reject_ringing`` | ``LegFailed`` (486/603) of a ringing offer to 2006/2007 | the agent's phone rings | ``offer_without_leg`` |
| ``call_arrived`` | ``CallArrived`` of the next caller | nothing: the worker holds a leg no contact owns | none: the worker's own 5 s decision timeout answers 503 and the front hands the caller to another worker (the sweep leaves undecided legs alone) |
| ``agent_answer_ringing`` | ``LegAnswered`` of a ringing offer to 2001-2003 | the phone still rings | ``answer_unseen``: the call connects (before the ACD's 8 s ring timeout) |

**Afterwards** the callers finish, the center gets ``--settle`` s (40; transaction timeouts are 32 s), then:
calls placed and answered; faults injected per kind; repairs by kind (``audit_log`` rows of actor
``reconciliation``); for each lost event the time to its repair (the audit row's time minus the moment the event
was lost; matched by leg), max and p95, and each repair's own ``lasted``; when the center let go of the leg;
repairs no lost event explains. Checks (exit code 1 when one fails): no agent reserved or on a call (every
logged-in agent available, not ready or in wrap-up, with no call in the ACD); no interaction left open
(``ended_at`` NULL); queue_log: every call that entered a queue has ENTERQUEUE first and exactly one closing
event, the last (``tests/front/test_fault_mix.py``'s rule); no contact left in the call flow or call in the
ACD; no leg left on any worker (``pool.live_legs()`` all empty, every worker answering). Timing is reported,
not asserted; whether every repair came within 10 s is printed.

Also printed, as findings rather than checks: offers that never reached a phone (``RINGCANCELED`` "not dialled":
the Dial on the caller's worker failed, typically because pjsua still holds a call slot for a cancelled dial or a
BYE a phone never answers), per caller and in all; the workers' "no free call slot" episodes with the hangups that
may hold the slots; and the center log lines of any repair no lost event explains. The run folder (``center.log``,
``cc.db``, ``queue_log``, SIPp logs, ``events.jsonl`` with every event delivered or lost and its time,
``faults.json`` with the injections, kills and lost events) is kept with ``--keep``, when a check fails, or when a
repair is unexplained or a lost event unrepaired.

The last line is one JSON object: ``calls_placed``, ``calls_answered`` (by the center), ``calls_refused``,
``calls_talked`` (interactions answered by an agent), ``outcomes``, ``faults`` (per kind), ``lost_events``,
``repairs`` (per kind), ``repair_seconds_max``, ``repair_seconds_p95``, ``repair_lasted_max``,
``repairs_within_10s``, ``lost_events_unrepaired``, ``unexplained_repairs``, ``agents_wrong_state``,
``interactions_open``, ``queue_log_bad_calls``, ``contacts_left``, ``acd_calls_left``, ``worker_legs_left``,
``workers_not_answering``, ``refused_by_status``, ``offers_not_dialled``, ``callers_with_offers_not_dialled``,
``not_dialled_longest_s``, ``abandoned_after_offers_not_dialled``, ``no_slot_episodes``,
``no_slot_episodes_uncounted``, ``checks_passed``, ``run_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: rtp_audio

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from rtp_audio import write_audio  # noqa: E402
from tests.front.front_support import (  # noqa: E402
    LOOPBACK,
    free_block,
    pcap,
    require_kamailio,
    require_pjsua2,
    require_sipp,
    settings_tree,
)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
AGENT_SCENARIOS = REPO / "tests" / "telephony" / "scenarios"
SIP_LOW, SIP_HIGH = 19000, 20000
RTP_LOW, RTP_HIGH = 48000, 60000
RTP_PER_WORKER = 80  # WorkerPool: 64 RTP ports and a gap of 16

RTP_TIMEOUT_S = 8.0
SWEEP_S = 2.0
GRACE_S = 3.0
WITHIN_S = 10.0  # printed: was every repair this quick
SUPERVISOR_EVERY_S = 10.0
TARGET_WAIT_S = 45.0  # how long an injection waits for a call to inject into

TALKERS = ("2001", "2002", "2003")
SILENT, NOBYE, BUSY, DECLINE, RINGOUT, KILL_RINGING, KILL_TALKING = "2004", "2005", "2006", "2007", "2008", "2009", \
    "2010"
PHONES: dict[str, tuple[str, Path]] = {  # agent -> (behaviour, scenario)
    "2001": ("talks", SCENARIOS / "phone_talk.xml"),
    "2002": ("talks", SCENARIOS / "phone_talk.xml"),
    "2003": ("talks", SCENARIOS / "phone_talk.xml"),
    SILENT: ("goes silent after answering (no RTP, BYE unanswered)", SCENARIOS / "phone_silent.xml"),
    NOBYE: ("talks, never answers a BYE", SCENARIOS / "phone_nobye.xml"),
    BUSY: ("rejects: 486 after 1.5 s of ringing", SCENARIOS / "phone_busy.xml"),
    DECLINE: ("rejects: 603 after 1.5 s of ringing", SCENARIOS / "phone_decline.xml"),
    RINGOUT: ("rings out (180, 487 to the CANCEL)", AGENT_SCENARIOS / "agent_noanswer.xml"),
    KILL_RINGING: ("talks; killed while its offer rings", SCENARIOS / "phone_talk.xml"),
    KILL_TALKING: ("talks; killed 2 s into a conversation", SCENARIOS / "phone_talk.xml"),
}
STREAMING = {a for a, (_, s) in PHONES.items() if s.name in ("phone_talk.xml", "phone_nobye.xml")}

DROPS = {  # kind -> (how many, what is lost, the repair expected)
    "caller_bye_talking": (4, "LegEnded of a talking caller's leg (agents 2001-2003)", "leg_lost"),
    "agent_reject_ringing": (3, "LegFailed 486/603 of a ringing offer (agents 2006/2007)", "offer_without_leg"),
    "call_arrived": (3, "CallArrived of the next caller", None),
    "caller_bye_ivr": (2, "LegEnded of a quitter's leg in the IVR", "leg_lost"),
    "agent_bye_talking": (2, "LegEnded of agent 2004's leg (its RTP timeout)", "leg_lost"),
    "agent_answer_ringing": (2, "LegAnswered of a ringing offer (agents 2001-2003)", "answer_unseen"),
}
KILLS = (("ringing", 0.25), ("talking", 0.4), ("ringing", 0.6), ("talking", 0.75))  # (when, share of the run)

console = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=170)


# ----------------------------------------------------------------------------- SIPp

class Sipp:
    """One SIPp role (a phone, the callers); restarted phones get a new run folder, counts add up."""

    def __init__(self, root: Path, name: str, scenario: Path, *, port: int, keys: dict[str, str],
                 remote: str | None = None, calls: int = 100_000, rate: float | None = None, limit: int | None = None,
                 timeout_s: float = 3600, service: str = "4008001234") -> None:
        self.root, self.name, self.scenario, self.port, self.keys = root, name, scenario, port, keys
        self.remote, self.calls, self.rate, self.limit, self.timeout_s, self.service = \
            remote, calls, rate, limit, timeout_s, service
        self.media = free_block(4, RTP_LOW, RTP_HIGH)
        self.control = free_block(1, SIP_LOW, SIP_HIGH)
        self.runs: list[tuple[subprocess.Popen, Path]] = []
        self.kills = 0

    def start(self) -> None:
        workdir = self.root / self.name / f"run{len(self.runs) + 1}"
        workdir.mkdir(parents=True, exist_ok=True)
        args = [require_sipp(), "-sf", str(self.scenario), "-i", "127.0.0.1", "-p", str(self.port), "-mi", "127.0.0.1",
                "-mp", str(self.media), "-cp", str(self.control), "-m", str(self.calls), "-timeout",
                f"{int(self.timeout_s)}s", "-nostdin", "-trace_err", "-trace_stat", "-fd", "1", "-trace_logs",
                "-s", self.service, "-max_recv_loops", "5000", "-max_sched_loops", "5000"]
        if self.rate is not None:
            args += ["-r", f"{self.rate:g}", "-rp", "1000"]
        if self.limit is not None:
            args += ["-l", str(self.limit)]
        for key, value in self.keys.items():
            args += ["-key", key, value]
        if self.remote:
            args.append(self.remote)
        proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.runs.append((proc, workdir))

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.runs[-1][0] if self.runs else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def counts(self) -> Counter:
        """Cumulative SIPp statistics summed over its runs (each run's last statistics line)."""
        total: Counter = Counter()
        for _, workdir in self.runs:
            for path in sorted(workdir.glob("*_.csv"))[-1:]:
                rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
                if len(rows) < 2:
                    continue
                row = dict(zip(rows[0], rows[-1]))
                for key, name in (("TotalCallCreated", "created"), ("IncomingCall(C)", "incoming"),
                                  ("SuccessfulCall(C)", "successful"), ("FailedCall(C)", "failed"),
                                  ("CurrentCall", "current")):
                    with contextlib.suppress(ValueError):
                        total[name] += int(row.get(key, "0") or 0)
        return total

    def log_lines(self) -> list[str]:
        return [line for _, workdir in self.runs for path in sorted(workdir.glob("*_logs.log"))
                for line in path.read_text(errors="replace").splitlines() if line.strip()]

    def log_words(self) -> Counter:
        """The first word of every ``<log>`` line (ANSWERED, REFUSED, BYE_IN, HUNGUP, CROSSED, BYE_IGNORED)."""
        return Counter(line.split()[0] for line in self.log_lines())

    def errors_tail(self, chars: int = 1500) -> str:
        return "".join(p.read_text(errors="replace")[-chars:] for _, w in self.runs for p in w.glob("*_errors.log"))


# ----------------------------------------------------------------------------- the center

class TapQueue(asyncio.Queue):
    """The pool's event queue: every event the control process is given, recorded with its time."""

    def __init__(self, record: list[tuple[float, Any]]) -> None:
        super().__init__()
        self._record = record

    def put_nowait(self, item) -> None:
        self._record.append((time.time(), item))
        super().put_nowait(item)


@contextlib.asynccontextmanager
async def running_center(tree: dict, *, workers: int, events: list[tuple[float, Any]]):
    """``bootstrap.Server`` for ``tree`` (database migrated first), started and always stopped."""
    from callcenter import bootstrap
    from callcenter.config import validate
    from callcenter.db import Database
    from callcenter.db.migrate import upgrade

    settings = validate(tree, "bench/phone_faults.py settings")
    db = Database(settings.database.url)
    upgrade(db)
    db.dispose()
    server = bootstrap.Server(settings, workers=workers)
    server.pool.events = TapQueue(events)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


def build_tree(args, tmp: Path, prompts: Path, phone_ports: dict[str, int]) -> dict:
    front_port = free_block(1, SIP_LOW, SIP_HIGH)
    worker_base = free_block(args.workers, SIP_LOW, SIP_HIGH)
    rtp_start = free_block(args.workers * RTP_PER_WORKER, RTP_LOW, RTP_HIGH)
    tree = settings_tree(port=front_port, worker_base_port=worker_base, prompts=prompts,
                         database_url=f"sqlite:///{tmp / 'cc.db'}", workdir=tmp, agent_port=phone_ports[TALKERS[0]],
                         agents=len(PHONES), rtp_start=rtp_start, rtp_timeout_seconds=RTP_TIMEOUT_S,
                         front_pike_density=0)
    tree["sip"]["rtp_port_end"] = rtp_start + args.workers * RTP_PER_WORKER
    tree["cti"]["listen"] = f"ws://127.0.0.1:{free_block(1, SIP_LOW, SIP_HIGH)}"
    tree["repair"] = {"sweep_seconds": SWEEP_S, "grace_seconds": GRACE_S}
    for agent, port in phone_ports.items():
        tree["agents"][agent]["phone"] = f"sip:{agent}@127.0.0.1:{port}"
    return tree


def build_prompts(folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "callcenter", "--config", str(LOOPBACK), "--set", f"ivr.prompts_dir={folder}",
         "--set", f"ivr.menu_file={REPO / 'config' / 'ivr.toml'}", "prompts", "build"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")})
    if result.returncode != 0:
        raise SystemExit(f"recording the prompts failed (espeak-ng installed?):\n{result.stderr[-2000:]}")


# ----------------------------------------------------------------------------- what happens during the run

@dataclass
class Injection:
    kind: str
    planned_at: float  # seconds into the run
    armed_at: float | None = None  # epoch
    leg: str | None = None
    call_id: str | None = None
    agent: str | None = None
    note: str = ""


@dataclass
class Lost:
    """One event the pool discarded (``pool.dropped``), as the observer saw the center right after."""

    at: float  # epoch, when it was lost
    event: Any
    kind: str = "?"
    call_id: str | None = None
    phase: str | None = None  # the center's phase of the call that owned the leg then
    agent: str | None = None
    owned: bool = False  # the center held the leg when the event was lost
    released_at: float | None = None  # when the center no longer held the leg


@dataclass
class Kill:
    mode: str
    agent: str
    at: float
    call_id: str | None = None
    leg: str | None = None
    restarted_at: float | None = None


@dataclass
class Run:
    server: Any
    phones: dict[str, Sipp]
    t0: float
    events: list[tuple[float, Any]]
    injections: list[Injection] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    targeted: set[str] = field(default_factory=set)
    leg_agent: dict[str, str] = field(default_factory=dict)
    rung: set[str] = field(default_factory=set)  # dialled legs whose LegRinging the center got
    resets: Counter = field(default_factory=Counter)

    @property
    def center(self):
        return self.server.center


def find_target(run: Run, kind: str):
    """A call to inject ``kind`` into now: (leg, call) or None."""
    now = time.time()
    for c in list(run.center.calls.values()):
        if kind == "caller_bye_talking" and c.phase == "connected" and c.agent_id in TALKERS and c.leg:
            leg = c.leg
        elif kind == "caller_bye_ivr" and c.phase == "ivr" and c.display_name == "Quitter" and c.leg:
            leg = c.leg
        elif kind == "agent_bye_talking" and c.phase == "connected" and c.agent_id == SILENT and c.agent_leg \
                and c.queued_at is not None and now - c.queued_at.timestamp() < 12:
            leg = c.agent_leg  # the caller stays long enough for the phone's RTP timeout to end the leg
        elif kind == "agent_reject_ringing" and c.phase == "ringing" and c.agent_id in (BUSY, DECLINE) \
                and c.agent_leg in run.rung:
            leg = c.agent_leg
        elif kind == "agent_answer_ringing" and c.phase == "ringing" and c.agent_id in TALKERS \
                and c.agent_leg in run.rung:
            leg = c.agent_leg
        else:
            continue
        if leg not in run.targeted:
            return leg, c
    return None


async def inject(run: Run, injection: Injection) -> None:
    from callcenter.core import telephony_protocol as tp

    await asyncio.sleep(max(0.0, run.t0 + injection.planned_at - time.time()))
    event_type = {"caller_bye_talking": tp.LegEnded, "caller_bye_ivr": tp.LegEnded, "agent_bye_talking": tp.LegEnded,
                  "agent_reject_ringing": tp.LegFailed, "agent_answer_ringing": tp.LegAnswered,
                  "call_arrived": tp.CallArrived}[injection.kind]
    if injection.kind == "call_arrived":
        run.server.pool.drop_next(event_type)
        injection.armed_at = time.time()
        return
    deadline = time.monotonic() + TARGET_WAIT_S
    while time.monotonic() < deadline:
        found = find_target(run, injection.kind)
        if found is not None:
            leg, call = found
            run.targeted.add(leg)
            run.server.pool.drop_next(event_type, leg)
            injection.armed_at, injection.leg, injection.call_id, injection.agent = \
                time.time(), leg, call.call_id, call.agent_id
            return
        await asyncio.sleep(0.02)
    injection.note = f"no target within {TARGET_WAIT_S:g} s"


def kind_of(lost: Lost, injections: list[Injection]) -> str:
    leg = getattr(lost.event, "leg", None)
    for inj in injections:
        if inj.leg is not None and inj.leg == leg:
            return inj.kind
    return "call_arrived" if type(lost.event).__name__ == "CallArrived" else "?"


async def observe(run: Run) -> None:
    """Every 20 ms: which agent each leg rings or talks to, what was lost and what the center then believed."""
    from callcenter.core import telephony_protocol as tp

    pool, center = run.server.pool, run.center
    seen = heard = 0
    while True:
        while heard < len(run.events):
            event = run.events[heard][1]
            heard += 1
            if isinstance(event, tp.LegRinging):
                run.rung.add(event.leg)
        for c in list(center.calls.values()):
            if c.agent_leg and c.agent_id:
                run.leg_agent.setdefault(c.agent_leg, c.agent_id)
        while seen < len(pool.dropped):
            at, event = pool.dropped[seen]
            seen += 1
            leg = getattr(event, "leg", None)
            lost = Lost(at, event)
            lost.kind = kind_of(lost, run.injections)
            owner = center.by_leg.get(leg) if leg else None
            if owner is not None:
                call = center.calls.get(owner)
                lost.owned, lost.call_id = True, owner
                lost.phase = call.phase if call is not None else None
                lost.agent = call.agent_id if call is not None else None
            run.lost.append(lost)
        now = time.time()
        for lost in run.lost:
            leg = getattr(lost.event, "leg", None)
            if lost.owned and lost.released_at is None and leg not in center.by_leg:
                lost.released_at = now
        await asyncio.sleep(0.02)


async def kill_phone(run: Run, mode: str, share: float, duration: float) -> None:
    agent = KILL_RINGING if mode == "ringing" else KILL_TALKING
    phone = run.phones[agent]
    await asyncio.sleep(max(0.0, run.t0 + share * duration - time.time()))
    deadline = time.monotonic() + TARGET_WAIT_S
    while time.monotonic() < deadline:
        call = next((c for c in list(run.center.calls.values()) if c.agent_id == agent and c.agent_leg
                     and (c.phase == "connected" if mode == "talking" else
                          c.phase == "ringing" and c.agent_leg in run.rung)), None)
        if call is not None and phone.running:
            leg = call.agent_leg
            await asyncio.sleep(0.2 if mode == "ringing" else 2.0)  # it rings (2 s before it answers) / they talk
            still = run.center.calls.get(call.call_id)
            if still is None or still.agent_leg != leg or still.phase != call.phase:
                continue
            phone.kill()
            phone.kills += 1
            kill = Kill(mode, agent, time.time(), call.call_id, leg)
            run.kills.append(kill)
            await asyncio.sleep(20 if mode == "ringing" else 35)
            phone.start()
            kill.restarted_at = time.time()
            return
        await asyncio.sleep(0.02)


async def supervisor(run: Run) -> None:
    """Agents paused for missed offers go back to ready, so the faulty phones keep being offered calls."""
    while True:
        await asyncio.sleep(SUPERVISOR_EVERY_S)
        for agent in PHONES:
            state, reason = run.center.engine.agent_state(agent)
            if state == "not_ready" and reason == "no_answer":
                with contextlib.suppress(Exception):
                    run.center.force_state("9001", agent, "ready")
                    run.resets[agent] += 1


# ----------------------------------------------------------------------------- the records

def as_epoch(value: dt.datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def queue_stories(events: list[tuple]) -> dict[str, list[str]]:
    agent_events = {"AGENTLOGIN", "AGENTLOGOFF", "PAUSE", "UNPAUSE", "ADDMEMBER", "REMOVEMEMBER"}
    per_call: dict[str, list[str]] = {}
    for event, call_id, *_ in events:
        if call_id and event not in agent_events:
            per_call.setdefault(call_id, []).append(event)
    return per_call


def bad_story(names: list[str]) -> str | None:
    """tests/front/test_fault_mix.py's rule: ENTERQUEUE first, exactly one closing event, and it is the last."""
    from callcenter.core import queue_log as ql

    if names[0] != ql.ENTERQUEUE:
        return f"starts with {names[0]}"
    closing = sum(n in ql.CLOSING for n in names)
    if closing != 1:
        return f"{closing} closing events"
    if names[-1] not in ql.CLOSING:
        return f"ends with {names[-1]}"
    return None


def save_trace(tmp: Path, run: Run) -> None:
    """events.jsonl (every event delivered or lost, with its time) and faults.json, for digging afterwards."""
    from dataclasses import asdict

    from callcenter.core import telephony_protocol as tp

    items = [(at, e, False) for at, e in run.events] + [(lost.at, lost.event, True) for lost in run.lost]
    with (tmp / "events.jsonl").open("w") as out:
        for at, event, lost in sorted(items, key=lambda x: x[0]):
            with contextlib.suppress(Exception):
                out.write(json.dumps({"t": round(at, 4), "lost": lost, **json.loads(tp.encode(event))}) + "\n")
    (tmp / "faults.json").write_text(json.dumps({
        "t0": run.t0, "injections": [asdict(i) for i in run.injections], "kills": [asdict(k) for k in run.kills],
        "lost": [{"at": x.at, "event": type(x.event).__name__, "leg": getattr(x.event, "leg", None), "kind": x.kind,
                  "call_id": x.call_id, "phase": x.phase, "agent": x.agent, "released_at": x.released_at}
                 for x in run.lost],
        "leg_agent": run.leg_agent}, indent=1))


def slot_episodes(log: str, run: Run) -> list[dict[str, Any]]:
    """Runs of 'pjsua has no free call slot' on one worker (failed dials less than 2.5 s apart), and what holds the
    slots.

    The worker keeps the slots out of its budget until its last cancel of an unanswered dial or dead-call hangup
    (rtp_timeout, session_timer) is 32 s old; the log line says for how long (``block_s``). ``holders``: agent legs
    it hung up itself (cause ``local``) in the 32 s before to a phone that never answers a BYE (2004, 2005, a
    killed phone): pjsua keeps such a slot until the BYE times out (32 s). ``uncounted``: a holder still holds its
    slot when the block ends.
    """
    from callcenter.core import telephony_protocol as tp

    hits: list[tuple[float, str, float]] = []
    for line in log.splitlines():
        if "has no free call slot" not in line or " callcenter.telephony.worker." not in line:
            continue
        with contextlib.suppress(ValueError, IndexError):
            at = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            worker = line.split(" callcenter.telephony.worker.", 1)[1].split(":", 1)[0]
            block = float(line.rsplit("budget for", 1)[1].split()[0])
            hits.append((at, worker, block))
    items = sorted([*((at, e) for at, e in run.events), *((x.at, x.event) for x in run.lost)], key=lambda x: x[0])
    deaf = {SILENT, NOBYE}
    killed = [(k.agent, k.at, k.restarted_at or float("inf")) for k in run.kills]
    episodes: list[dict[str, Any]] = []
    last: dict[str, dict[str, Any]] = {}
    for at, worker, block in sorted(hits):
        ep = last.get(worker)
        if ep is not None and at - ep["end"] < 2.5:
            ep["end"], ep["dials"] = at, ep["dials"] + 1
            continue
        holders = []
        for t, e in items:
            if at - 32.5 <= t <= at and getattr(e, "worker", None) == worker and isinstance(e, tp.LegEnded) \
                    and e.cause == "local":
                agent = run.leg_agent.get(e.leg)
                if agent in deaf or any(a == agent and down <= t <= up for a, down, up in killed):
                    holders.append((t, f"{e.leg} (agent {agent}, {at - t:.0f} s before)"))
        ep = last[worker] = {"worker": worker, "start": at, "end": at, "dials": 1, "block_s": block,
                             "holders": [h for _, h in holders],
                             "uncounted": any(t + 32 > at + block + 0.5 for t, _ in holders)}
        episodes.append(ep)
    return episodes


def fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


# ----------------------------------------------------------------------------- main

async def bench(args, tmp: Path, progress: Progress) -> dict[str, Any]:
    from sqlalchemy import select

    from callcenter.db.models import AuditEntry, Interaction, QueueEvent

    started = time.monotonic()
    audio = write_audio(tmp / "audio")
    setup = progress.add_task("prompts (espeak-ng)", total=None)
    prompts = tmp / "prompts"
    await asyncio.to_thread(build_prompts, prompts)
    progress.remove_task(setup)

    phone_ports = {agent: free_block(1, SIP_LOW, SIP_HIGH) for agent in PHONES}
    tree = build_tree(args, tmp, prompts, phone_ports)
    log_file = tmp / "center.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

    calls = max(1, round(args.rate * args.duration))
    quits = max(1, round(args.quit_rate * args.duration))
    total_s = args.duration + 60 + args.settle + 600
    events: list[tuple[float, Any]] = []
    info: dict[str, Any] = {"planned_calls": calls, "planned_quitters": quits}
    sipp_root = tmp / "sipp"
    starting = progress.add_task(f"center: Kamailio, {args.workers} workers", total=None)
    async with running_center(tree, workers=args.workers, events=events) as server:
        center = server.center
        progress.remove_task(starting)
        phones: dict[str, Sipp] = {}
        for agent, (_, scenario) in PHONES.items():
            keys = {"audio_stream": f"{audio['alaw']},-1,8"} if agent in STREAMING else {}
            phones[agent] = Sipp(sipp_root, f"phone-{agent}", scenario, port=phone_ports[agent], keys=keys,
                                 timeout_s=total_s)
            phones[agent].start()
        callers = quitters = None
        run = Run(server, phones, time.time() + 1.0, events)
        tasks: list[asyncio.Task] = []
        try:
            deadline = time.monotonic() + 20
            while any(center.engine.agent_state(a)[0] != "available" for a in PHONES):
                if time.monotonic() > deadline:
                    raise RuntimeError("agents not available 20 s after the start: "
                                       f"{ {a: center.engine.agent_state(a) for a in PHONES} }")
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            caller_keys = {"ani": "1391000", "key_pcap": pcap("dtmf_2833_1.pcap"),
                           "caller_stream": f"{audio['ulaw']},-1,0"}
            run.t0 = time.time()
            callers = Sipp(sipp_root, "callers", SCENARIOS / "phone_caller.xml", port=free_block(1, SIP_LOW, SIP_HIGH),
                           remote=server.address, calls=calls, rate=args.rate, limit=200, timeout_s=total_s,
                           keys={**caller_keys, "display": "Caller", "quit": "no"})
            quitters = Sipp(sipp_root, "quitters", SCENARIOS / "phone_caller.xml",
                            port=free_block(1, SIP_LOW, SIP_HIGH), remote=server.address, calls=quits,
                            rate=args.quit_rate, limit=50, timeout_s=total_s,
                            keys={**caller_keys, "ani": "1392000", "display": "Quitter", "quit": "yes"})
            callers.start()
            quitters.start()

            plan = []
            pool_of_kinds = {kind: count for kind, (count, _, _) in DROPS.items()}
            while any(pool_of_kinds.values()):
                for kind in DROPS:
                    if pool_of_kinds[kind]:
                        plan.append(kind)
                        pool_of_kinds[kind] -= 1
            first, last = 20.0, max(30.0, args.duration - 30.0)
            step = (last - first) / max(1, len(plan) - 1)
            run.injections = [Injection(kind, first + i * step) for i, kind in enumerate(plan)]
            tasks = [asyncio.create_task(observe(run), name="observe"),
                     asyncio.create_task(supervisor(run), name="supervisor")]
            tasks += [asyncio.create_task(inject(run, inj), name=f"inject-{inj.kind}") for inj in run.injections]
            tasks += [asyncio.create_task(kill_phone(run, mode, share, args.duration), name=f"kill-{mode}")
                      for mode, share in KILLS]

            placing = progress.add_task("callers", total=calls + quits)
            give_up = time.monotonic() + args.duration + 240
            while callers.running or quitters.running:
                if time.monotonic() > give_up:
                    callers.kill()
                    quitters.kill()
                    info["callers_killed"] = True
                    break
                created = callers.counts()["created"] + quitters.counts()["created"]
                lost = len(server.pool.dropped)
                repaired = center.counters.get("repairs", 0)
                progress.update(placing, completed=created, description=(
                    f"callers {created}/{calls + quits}, lost events {lost}, repairs {repaired}, "
                    f"phones killed {len(run.kills)}"))
                await asyncio.sleep(1.0)
            progress.remove_task(placing)
            # every killed phone back before the settling (its restart is at most 35 s after the kill)
            kill_tasks = [t for t in tasks if t.get_name().startswith("kill-")]
            for t in kill_tasks:
                if not t.done():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(t), timeout=40)
            for t in tasks:
                if t.get_name() != "observe":
                    t.cancel()
            for agent, phone in phones.items():
                if not phone.running:
                    phone.start()
            settle = progress.add_task(f"settling {args.settle:g} s", total=args.settle)
            settle_end = time.monotonic() + args.settle
            while time.monotonic() < settle_end:
                progress.update(settle, completed=args.settle - (settle_end - time.monotonic()))
                await asyncio.sleep(0.5)
            progress.remove_task(settle)

            # ------------------------------------------------------------ the state at the end
            legs = await server.pool.live_legs(timeout=3.0)
            agents_end = {a: (*center.engine.agent_state(a), center.engine.agent_call(a)) for a in PHONES}
            contacts_left = {k: (c.phase, c.agent_id, c.leg, c.agent_leg) for k, c in center.calls.items()}
            acd_left = list(center.engine.call_ids())
            await center.drain()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sipp in [*phones.values(), *(s for s in (callers, quitters) if s is not None)]:
                sipp.kill()
        counters = dict(center.counters)
        with server.db.session() as s:
            interactions = [(r.call_id, r.direction, r.outcome, r.agent_id, r.ended_at)
                            for r in s.scalars(select(Interaction).order_by(Interaction.id))]
            qevents = [(e.event, e.call_id, e.agent_id, as_epoch(e.at), dict(e.data or {}))
                       for e in s.scalars(select(QueueEvent).order_by(QueueEvent.id))]
            audits = [(as_epoch(a.at), a.action.removeprefix("repair."), a.target, dict(a.details or {}))
                      for a in s.scalars(select(AuditEntry).where(AuditEntry.actor == "reconciliation")
                                         .order_by(AuditEntry.id))]
    logging.getLogger().removeHandler(handler)
    handler.close()
    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    return {"run": run, "phones": phones, "callers": callers, "quitters": quitters, "legs": legs,
            "agents_end": agents_end, "contacts_left": contacts_left, "acd_left": acd_left, "counters": counters,
            "interactions": interactions, "qevents": qevents, "audits": audits, "log": log_text, "info": info,
            "bench_s": time.monotonic() - started}


def report(args, r: dict[str, Any], tmp: Path) -> tuple[dict[str, Any], bool]:
    from callcenter.core import telephony_protocol as tp

    run: Run = r["run"]
    phones: dict[str, Sipp] = r["phones"]
    callers, quitters = r["callers"], r["quitters"]
    events = run.events
    save_trace(tmp, run)

    # ------------------------------------------------------------------ calls
    cw, qw = callers.log_words(), quitters.log_words()
    cc, qc = callers.counts(), quitters.counts()
    placed = cc["created"] + qc["created"]
    answered = cw["ANSWERED"] + qw["ANSWERED"]
    refused = cw["REFUSED"] + qw["REFUSED"]
    outcomes = Counter(o for _, d, o, _, _ in r["interactions"] if d == "inbound")
    talked = outcomes.get("answered", 0)
    t = Table(title=f"calls: {args.rate:g}/s for {args.duration:g} s, quitters {args.quit_rate:g}/s, "
                    f"{args.workers} workers")
    for col in ("figure", "value"):
        t.add_column(col)
    t.add_row("callers (SIPp)", f"placed {cc['created']}, successful {cc['successful']}, failed {cc['failed']}; "
                                f"{dict(cw)}")
    t.add_row("quitters (SIPp)", f"placed {qc['created']}, successful {qc['successful']}, failed {qc['failed']}; "
                                 f"{dict(qw)}")
    refused_by = Counter(line.split()[2] if len(line.split()) > 2 else "?"
                         for line in [*callers.log_lines(), *quitters.log_lines()] if line.startswith("REFUSED"))
    t.add_row("answered by the center / refused", f"{answered} / {refused}"
              + (f" (by status: {dict(refused_by)})" if refused_by else ""))
    t.add_row("interactions by outcome", str(dict(outcomes)))
    t.add_row("talked to an agent", str(talked))
    t.add_row("center counters", ", ".join(f"{k} {v}" for k, v in sorted(r["counters"].items()) if v))
    t.add_row("supervisor resets (no_answer → ready)", str(dict(run.resets)))
    console.print(t)

    # ------------------------------------------------------------------ faults
    delivered_or_lost = sorted([*events, *((lost.at, lost.event) for lost in run.lost)], key=lambda x: x[0])
    rtp_ends = [(at, e) for at, e in delivered_or_lost if isinstance(e, tp.LegEnded) and e.cause == "rtp_timeout"]
    answers = {e.leg: at for at, e in events if isinstance(e, tp.LegAnswered)}
    silent_cut = [at - answers[e.leg] for at, e in rtp_ends
                  if run.leg_agent.get(e.leg) == SILENT and e.leg in answers]
    words = {a: p.log_words() for a, p in phones.items()}
    incoming = {a: p.counts()["incoming"] for a, p in phones.items()}
    faults: dict[str, int] = {}
    t = Table(title="faults injected")
    for col in ("fault", "count", "how it ended"):
        t.add_column(col)

    def fault(name: str, count: int, how: str) -> None:
        faults[name] = count
        t.add_row(name, str(count), how)

    fault("offers to the silent phone (2004)", incoming[SILENT],
          f"{len(silent_cut)} leg(s) cut for no RTP, {fmt(min(silent_cut, default=None), 1)}-"
          f"{fmt(max(silent_cut, default=None), 1)} s after the answer; BYEs ignored: {words[SILENT]['BYE_IGNORED']}")
    fault("offers to the BYE-dropping phone (2005)", incoming[NOBYE], f"BYEs ignored: {words[NOBYE]['BYE_IGNORED']}")
    fault("offers rejected 486 (2006)", incoming[BUSY], "")
    fault("offers rejected 603 (2007)", incoming[DECLINE], "")
    fault("offers rung out (2008)", incoming[RINGOUT], "")
    for mode in ("ringing", "talking"):
        done = [k for k in run.kills if k.mode == mode]
        hows = []
        for k in done:
            end = next(((at, e) for at, e in events if getattr(e, "leg", None) == k.leg and at >= k.at
                        and isinstance(e, (tp.LegEnded, tp.LegFailed))), None)
            if end is None:
                hows.append(f"{k.leg}: no end reported")
            else:
                at, e = end
                what = f"{type(e).__name__} {getattr(e, 'cause', '') or getattr(e, 'status', '')}"
                hows.append(f"{k.leg}: {what} {at - k.at:.1f} s after the kill")
        fault(f"phone killed while {mode}", len(done), "; ".join(hows))
    lost_by_kind = Counter(lost.kind for lost in run.lost)
    for kind, (count, what, _) in DROPS.items():
        armed = [i for i in run.injections if i.kind == kind and i.armed_at is not None]
        skipped = [i for i in run.injections if i.kind == kind and i.armed_at is None]
        fault(f"lost: {kind}", lost_by_kind.get(kind, 0),
              f"{what}; armed {len(armed)} of {count}" + (f", {len(skipped)} without a target" if skipped else ""))
    console.print(t)

    # ------------------------------------------------------------------ offers that never reached a phone
    not_dialled: dict[str, list[tuple[float, str, str]]] = {}
    for event, call_id, agent, at, data in r["qevents"]:
        if event == "RINGCANCELED" and str(data.get("reason", "")).startswith("not dialled") and call_id:
            not_dialled.setdefault(call_id, []).append((at, agent, str(data.get("reason"))))
    closing_of = {}
    for event, call_id, agent, at, data in r["qevents"]:
        if call_id in not_dialled and event in ("CONNECT", "ABANDON", "COMPLETECALLER", "COMPLETEAGENT", "EXITEMPTY",
                                                "EXITWITHTIMEOUT") and call_id not in closing_of:
            if at >= not_dialled[call_id][0][0]:
                closing_of[call_id] = (event, at)
    stuck = {c: (tries[-1][0] - tries[0][0], len(tries), len({a for _, a, _ in tries}), closing_of.get(c))
             for c, tries in not_dialled.items()}
    reasons = Counter(reason.removeprefix("not dialled: ") for tries in not_dialled.values() for _, _, reason in tries)
    t = Table(title="offers that never reached a phone (the Dial on the caller's worker failed; RINGCANCELED "
                    "'not dialled', retried every second)")
    for col in ("figure", "value"):
        t.add_column(col)
    t.add_row("offers not dialled", f"{sum(len(x) for x in not_dialled.values())}: {dict(reasons)}")
    t.add_row("callers affected", str(len(not_dialled)))
    longest = sorted(stuck.items(), key=lambda kv: -kv[1][0])[:6]
    t.add_row("longest (first to last failed offer, offers, agents reserved, what came next)",
              "; ".join(f"{c[:8]}: {span:.1f} s, {n} offers, {agents} agents, "
                        f"{nxt[0] + f' {nxt[1] - not_dialled[c][-1][0]:.1f} s later' if nxt else 'nothing'}"
                        for c, (span, n, agents, nxt) in longest))
    abandoned_stuck = [c for c, (_, _, _, nxt) in stuck.items() if nxt and nxt[0] == "ABANDON"]
    t.add_row("callers who abandoned after failed offers", str(len(abandoned_stuck)))
    gaps = [b[0] - a[0] for tries in not_dialled.values() for a, b in zip(tries, tries[1:])]
    t.add_row("failed offers of one call less than 0.6 s apart (more than one retry running for it)",
              str(sum(g < 0.6 for g in gaps)))
    episodes = slot_episodes(r["log"], run)
    unexplained_eps = [e for e in episodes if e["uncounted"]]
    t.add_row("worker: episodes of 'pjsua has no free call slot' (dials failing a second apart)",
              f"{len(episodes)}, {sum(e['dials'] for e in episodes)} dials; in {len(unexplained_eps)} the worker "
              "blocks its budget for less time than a slot held by an unanswered BYE of ours stays taken")
    for e in episodes[:12]:
        t.add_row(f"  {e['worker']} at {e['start'] - run.t0:.0f} s: {e['dials']} dials failed, budget blocked "
                  f"{e['block_s']:g} s", "our hangups in the 32 s before whose BYE the phone never answers: "
                  + (", ".join(e["holders"]) or "none (the slots are held by cancels or dead-call hangups the "
                                                  "worker counts)"))
    console.print(t)

    # ------------------------------------------------------------------ repairs
    audits = r["audits"]
    repairs = Counter(kind for _, kind, _, _ in audits)
    used: set[int] = set()
    rows = []
    for lost in run.lost:
        leg = getattr(lost.event, "leg", None)
        match = next((i for i, (at, _, _, d) in enumerate(audits)
                      if i not in used and d.get("leg") == leg and at >= lost.at - 1.0), None)
        decided = None
        if match is not None:
            used.add(match)
        if type(lost.event).__name__ == "CallArrived":
            decided = next((e for at, e in events if isinstance(e, tp.LegEnded) and e.leg == leg), None)
        rows.append((lost, match, decided))
    unexplained = [audits[i] for i in range(len(audits)) if i not in used]
    caller_saw: dict[str, str] = {}  # SIP Call-ID -> what the caller got (its SIPp log)
    for line in [*callers.log_lines(), *quitters.log_lines()]:
        words = line.split()
        if len(words) >= 2 and words[0] in ("ANSWERED", "REFUSED"):
            caller_saw[words[1]] = " ".join([words[0].lower(), *words[2:3]])

    t = Table(title=f"lost events and their repairs (sweep {SWEEP_S:g} s, grace {GRACE_S:g} s, "
                    f"RTP timeout {RTP_TIMEOUT_S:g} s)")
    for col in ("at s", "kind", "event lost", "leg", "center then", "repair", "lost → repaired s", "lasted s",
                "center let go s", "note"):
        t.add_column(col)
    to_repair: list[float] = []
    lasted: list[float] = []
    unrepaired: list[str] = []
    for lost, match, decided in rows:
        e = lost.event
        leg = getattr(e, "leg", None)
        what = type(e).__name__ + (f" {e.cause}" if isinstance(e, tp.LegEnded) else
                                   f" {e.status}" if isinstance(e, tp.LegFailed) else "")
        then = f"{lost.phase} (agent {lost.agent})" if lost.owned else "leg not held by the center"
        let_go = lost.released_at - lost.at if lost.released_at else None
        note = ""
        if match is not None:
            at, kind, _, d = audits[match]
            delay = at - lost.at
            to_repair.append(delay)
            lasted.append(float(d.get("lasted") or 0))
            repair, rep_s, last_s = kind, fmt(delay), fmt(d.get("lasted"))
            expected = DROPS.get(lost.kind, (0, "", None))[2]
            if expected and kind != expected:
                note = f"expected {expected}"
        else:
            repair, rep_s, last_s = "—", "—", "—"
            if decided is not None:
                note = f"the worker ended it itself: LegEnded {decided.cause} {decided.status}"
            elif lost.kind == "agent_answer_ringing":
                note = "not the sweep's: the ACD's ring timeout cancels the offer"
            elif lost.owned:
                note = "NOT REPAIRED"
                unrepaired.append(f"{lost.kind} {leg}")
        if isinstance(e, tp.CallArrived):
            note = "; ".join(x for x in (note, f"caller: {caller_saw.get(e.call_id, '?')}") if x)
        t.add_row(f"{lost.at - run.t0:.0f}", lost.kind, what, str(leg), then, repair, rep_s, last_s, fmt(let_go), note)
    console.print(t)
    log_lines = r["log"].splitlines()
    if unexplained:
        t = Table(title="repairs no lost event explains")
        for col in ("at", "kind", "target", "seen", "lasted s"):
            t.add_column(col)
        for at, kind, target, d in unexplained:
            t.add_row(f"{at - run.t0:.1f} s in", kind, str(target), str(d.get("seen")), fmt(d.get("lasted")))
        console.print(t)
        for at, kind, target, d in unexplained:
            ids = [x for x in (d.get("call_id"), d.get("leg")) if x]
            related = []
            for line in log_lines:
                if any(x in line for x in ids):
                    with contextlib.suppress(ValueError):
                        when = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                        if at - 6 <= when <= at + 1.5:
                            related.append(line)
            console.print(f"center log around the repair of {target} ({', '.join(ids)}):\n"
                          + "\n".join(line[:220] for line in related[-10:]), highlight=False)
    signals = {
        "offers that could not be dialled (call flow retries)": "could not be dialled",
        "pjsua had no free call slot (worker)": "has no free call slot",
        "Dial commands failed": "telephony command Dial",
        "ACD refusals": "ACD rejected",
        "worker decision timeouts (503)": "no answer/reject from the control process in time",
        "repairs logged": "repaired ",
        "events dropped on purpose": "dropped on purpose",
    }
    t = Table(title="center log signals")
    for col in ("signal", "lines"):
        t.add_column(col)
    for name, needle in signals.items():
        t.add_row(name, str(sum(needle in line for line in log_lines)))
    console.print(t)

    t = Table(title="repairs (audit_log, actor reconciliation)")
    for col in ("kind", "count", "explained by a lost event"):
        t.add_column(col)
    explained = Counter(audits[m][1] for _, m, _ in rows if m is not None)
    for kind, count in sorted(repairs.items()):
        t.add_row(kind, str(count), str(explained.get(kind, 0)))
    console.print(t)
    rep_max, rep_p95 = (max(to_repair) if to_repair else None), p95(to_repair)
    within = all(x <= WITHIN_S for x in to_repair)
    console.print(f"time from the lost event to its repair: {len(to_repair)} repairs, max {fmt(rep_max)} s, "
                  f"p95 {fmt(rep_p95)} s, median {fmt(sorted(to_repair)[len(to_repair) // 2] if to_repair else None)}"
                  f" s; each repair's own 'lasted': max {fmt(max(lasted) if lasted else None)} s. "
                  + (f"[green]every repair within {WITHIN_S:g} s[/]" if within else
                     f"[red]NOT every repair within {WITHIN_S:g} s[/]"), highlight=False)

    # ------------------------------------------------------------------ checks
    legs = r["legs"]
    legs_of_agent = Counter(run.leg_agent.get(leg) for held in legs.values() if held for leg in held)
    wrong = {a: (*s, f"{legs_of_agent[a]} leg(s) on a worker") if legs_of_agent[a] else s
             for a, s in r["agents_end"].items()
             if s[0] in ("reserved", "on_call") or s[2] is not None or legs_of_agent[a]
             or s[0] not in ("available", "not_ready", "wrap_up", "logged_out")}
    logged_out = [a for a, s in r["agents_end"].items() if s[0] == "logged_out"]
    open_rows = [(c, d, o, a) for c, d, o, a, ended in r["interactions"] if ended is None]
    stories = queue_stories(r["qevents"])
    bad_calls = {c: (why, names) for c, names in stories.items() if (why := bad_story(names))}
    legs_left = {w: held for w, held in legs.items() if held}
    silent_workers = [w for w, held in legs.items() if held is None]
    checks = [
        ("agents in a wrong state", len(wrong), 0, str(wrong) if wrong else
         ", ".join(f"{a} {s[0]}{f' ({s[1]})' if s[1] else ''}" for a, s in r["agents_end"].items())),
        ("interactions left open (ended_at NULL)", len(open_rows), 0, str(open_rows[:10])),
        ("queue_log calls with a bad story", len(bad_calls), 0,
         f"of {len(stories)} queue calls; " + str(dict(list(bad_calls.items())[:5]))),
        ("contacts left in the call flow", len(r["contacts_left"]), 0, str(r["contacts_left"])[:300]),
        ("calls left in the ACD", len(r["acd_left"]), 0, str(r["acd_left"])[:300]),
        ("legs left on the workers", sum(len(h) for h in legs_left.values()) + len(silent_workers), 0,
         (str(legs_left) if legs_left else "") + (f" workers not answering: {silent_workers}" if silent_workers
                                                  else "")),
    ]
    t = Table(title=f"checks after {args.settle:g} s of settling")
    for col in ("check", "value", "expected", "ok", "details"):
        t.add_column(col)
    passed = True
    for name, value, expected, details in checks:
        ok = value == expected
        passed &= ok
        t.add_row(name, str(value), str(expected), "[green]yes[/]" if ok else "[red]NO[/]", details[:400])
    if logged_out:
        t.add_row("agents logged out (not expected)", str(len(logged_out)), "0", "note", ", ".join(logged_out))
    console.print(t)
    lines = log_lines
    errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]
    console.print(f"center log: {sum(' WARNING ' in line for line in lines)} warnings, {len(errors)} errors"
                  + ("; first errors:\n" + "\n".join(e[:300] for e in errors[:8]) if errors else ""), highlight=False)
    if not passed:
        console.print(f"[red]consistency checks failed[/]; run folder kept: {tmp}", highlight=False)
    elif unexplained or unrepaired:
        console.print(f"repairs to look at (above); run folder kept: {tmp}", highlight=False)

    out = {
        "calls_placed": placed, "calls_answered": answered, "calls_refused": refused, "calls_talked": talked,
        "outcomes": dict(outcomes), "faults": faults, "lost_events": len(run.lost),
        "repairs": dict(repairs), "repair_seconds_max": round(rep_max, 3) if rep_max is not None else None,
        "repair_seconds_p95": round(rep_p95, 3) if rep_p95 is not None else None,
        "repair_lasted_max": round(max(lasted), 3) if lasted else None,
        "repairs_within_10s": within, "lost_events_unrepaired": unrepaired,
        "unexplained_repairs": [{"kind": k, "target": tg, "seen": d.get("seen")} for _, k, tg, d in unexplained],
        "agents_wrong_state": len(wrong), "interactions_open": len(open_rows), "queue_log_bad_calls": len(bad_calls),
        "contacts_left": len(r["contacts_left"]), "acd_calls_left": len(r["acd_left"]),
        "worker_legs_left": sum(len(h) for h in legs_left.values()), "workers_not_answering": len(silent_workers),
        "refused_by_status": dict(refused_by), "offers_not_dialled": sum(len(x) for x in not_dialled.values()),
        "callers_with_offers_not_dialled": len(not_dialled),
        "not_dialled_longest_s": round(max((v[0] for v in stuck.values()), default=0.0), 1),
        "abandoned_after_offers_not_dialled": len(abandoned_stuck),
        "no_slot_episodes": len(episodes), "no_slot_episodes_uncounted": len(unexplained_eps),
        "checks_passed": passed,
    }
    return out, passed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=240.0, help="seconds of arriving callers (default 240)")
    ap.add_argument("--rate", type=float, default=0.3, help="callers per second (default 0.3)")
    ap.add_argument("--quit-rate", type=float, default=1 / 15, help="quitters (hang up in the IVR) per second")
    ap.add_argument("--workers", type=int, default=8, help="media workers, a fixed pool (default 8)")
    ap.add_argument("--settle", type=float, default=40.0, help="seconds the center gets after the last caller")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (SIPp logs, database, center.log)")
    args = ap.parse_args()
    require_kamailio()
    require_sipp()
    require_pjsua2()

    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix="cc-phonefaults-"))
    started = time.monotonic()
    err.print(f"files in {tmp}", highlight=False)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                        transient=True)
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        with progress:
            result = asyncio.run(bench(args, tmp, progress))
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as exc:  # noqa: BLE001 - say what failed, with the JSON line all the same
        error = f"{type(exc).__name__}: {exc}"
        err.print_exception(show_locals=False)
    if result is None:
        console.print(f"[red]the bench stopped:[/] {error}; run folder kept: {tmp}", highlight=False)
        print(json.dumps({"error": error, "checks_passed": False,
                          "run_seconds": round(time.monotonic() - started, 1)}), flush=True)
        return 1
    out, passed = report(args, result, tmp)
    out["run_seconds"] = round(time.monotonic() - started, 1)
    console.print(f"{out['run_seconds']:.0f} s in all", highlight=False)
    if passed and not args.keep and not out["unexplained_repairs"] and not out["lost_events_unrepaired"]:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out), flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
