"""SIP load: a hold test, SIPp callers through the SIP front, IVR -> queue -> SIPp agent phones at rising rates, bare calls, and a bare pjsua2 reference.

Run:  .venv/bin/python bench/sip_load.py [--quick] [--front auto|kamailio|none] [--skip-hold] [--skip-full]
                                         [--skip-bare] [--skip-reference] [--hold-legs N] [--hold-seconds S]
                                         [--full-rates 5,10,15,20,25] [--workers N] [--talk-ms MS] [--keep]

Needs SIPp (Debian ``sip-tester``, built with RTP streaming: ``sipp -v`` says RTPSTREAM), pjsua2,
espeak-ng (for the prompts) and, for the front, Kamailio, like the end-to-end tests. The default
run takes about 17 minutes (more when steps fail slowly); ``--quick`` (shorter windows, fewer legs,
the same keys) about 5.
Everything (SIPp callers and phones included) runs on this machine, so SIPp's own CPU is part of
the load; it is shown per step.

**Contact center.** One temporary folder holds the database (SQLite), the prompts and the
configuration, derived from ``config/loopback.toml`` with enough agents for the top full-flow rate
and for every held conversation, all reached on one SIPp UAS, and ``sip.max_legs`` raised to 4 legs
per worker. Each series below starts its own ``callcenter serve --workers N`` (a fixed pool) on
fresh ports and stops it at the end. With the front (``--front``, the default when Kamailio is
installed) callers send every INVITE to Kamailio's one address and it spreads them over the workers
(call-load dispatching); ``--front none`` makes SIPp spread them round-robin over the workers' ports
itself (``setdest`` from an injection file). Call legs: a caller's leg on a worker and the agent's
leg the same worker places; a worker holds 4 legs (the pjsua2 wheel's limit), so 2 conversations.

**Idle workers** (``worker_idle_cpu_pct``). The first server of the run (the hold test's, else the
first full-flow step's) is left alone for 3 s, then its workers' CPU (``/proc/<pid>/stat`` utime +
stime, every thread) is measured over ``--idle-seconds`` (60 s; quick 15 s) before any call: the
mean per worker in % of one core (the window is printed and in ``worker_idle_window_s``). This
includes answering Kamailio's OPTIONS probe every second.

**Hold test** (on by default, ``--skip-hold``). ``--hold-legs`` legs (300; quick 60) are held at
once: half callers, half agents. The server has a fixed pool of ``--hold-workers`` workers (default:
two conversations per worker and a few spare: 79 for 300 legs). Callers
(``bench/scenarios/caller_ivr_hold.xml``) arrive at ``--hold-rate`` (10/s) and take the same IVR path
as the full flow: 8 s of greeting, key 1 (RFC 4733 pcap), the sales queue, an agent; then they
talk: SIPp streams its sample speech (``rtp_stream``, PCMU, looped) to the worker until the caller
hangs up. Agent phones (``bench/scenarios/agent_phone_hold.xml``) ring 300 ms, answer with PCMA and
stream the same speech (PCMA, looped) until the server's BYE. Callers stay on, after keying, for the
build-up (calls / rate) + ``--hold-seconds`` (60; quick 15) + 15 s, so every conversation is up
together for longer than the window. The window opens when the workers' live legs (sockets beyond
each worker's idle count, two per leg, sampled every 0.5 s) first reach the target, and closes
``--hold-seconds`` later. Over it: the workers' CPU, the control process's, Kamailio's and SIPp's;
the RTP packets per second per leg that reach SIPp's media ports from the workers (callers' side,
agents' side: SIPp never reads its media port, so the port's drop counter in ``/proc/net/udp``
counts the arrivals; about 50/s for 20 ms packets) and, as an estimate, the packets into the
workers (the loopback interface's total minus those two: it includes SIP and the machine's other
users). The test passes when every caller succeeds in SIPp, no phone fails, every interaction row
says ``answered``, the target was reached and the live legs never drop below it in the window, and
the RTP counted at SIPp (to the callers, to the agents' phones) is at least 25 packets/s per leg. If
the target is not reached 8 s after the last caller should have keyed, the window opens anyway on
the legs then up, so the figures say what was held (the test has failed). ``peak_legs`` comes from
the database as in the full flow; ``hold_seconds_held`` is the window's length, and the figures
table shows the longest time the records have at least the target of legs up.
``worker_cpu_per_leg_pct`` = (all workers' CPU over the window - idle per worker x workers) / the
mean of the live legs in the window.

**Full flow.** For each step a server with N workers sized for the step's rate: a worker takes two
callers, each holding its two legs for the IVR and the talk (about 11.6 s with the default
``--talk-ms``), plus a quarter spare. Callers are one SIPp run per step
(``bench/scenarios/caller_ivr.xml``, ACK and BYE along the record-routed path): they listen 8 s to
the greeting, key 1 (RFC 4733) in the main menu, reach the sales queue and an agent, and hang up
``--talk-ms`` after keying (they send no audio after the key). Agent phones
(``bench/scenarios/agent_phone.xml``) ring 300 ms, answer, play SIPp's 7 s PCMA sample once and wait
for the BYE. Each step sends calls at one rate for ``--step-seconds`` (60 s; quick 15 s) and waits
for them to end; rates are ``--full-rates`` (5, 10, 15, 20, 25; quick 2, 4, 8) and the ramp stops
at the first step that is not clean. A step is *sustained* when SIPp counts every caller successful
and none failed, the agent phones count no failure, and every caller's interaction row has outcome
``answered``.
Each step also has a *steady window*: from the time the first callers start to leave (the holding
time, at most a third of the arrivals) to the last arrival. Over it the control process's CPU
(``control_cpu_pct``) and its event loop's lag: the bench sends SIGUSR1 to ``serve`` at the start
(the loop's report window restarts) and at the end of the window, and reads the last line with
``loop-health {...}`` (``window_s``, ``samples``, ``p50_ms``, ``p99_ms``, ``max_ms``, ``cpu_pct``)
that ``serve`` logs in reply. SIGUSR1 is only sent when ``/proc/<pid>/status`` shows that ``serve``
catches it (the default action would kill it); otherwise the loop-lag keys are null and a note says
why. The JSON's control figures come from the 20 calls/s step, or else the highest step run.

**Bare.** ``--bare-workers`` media workers (``WorkerPool``, each at its highest rate limit, 25 new
calls/s: ``callcenter.telephony.worker.MAX_RATE``), behind a ``KamailioFront`` when the front is used, driven from this process: each call is
answered and hung up as soon as it is answered (``bench/scenarios/caller_bare.xml`` waits for that
BYE). No IVR, no prompts, no agent: the limit of the SIP path as this project runs it. Rates rise
from 10/s up to 25/s per bare worker (``--bare-rates`` to choose), with the same 0-failure rule.

**Bare pjsua2 reference** (``--skip-reference`` to skip). ``bench/pjsua_reference.py``: one pjsua2
process, no control plane, answering every call and playing a looping 8 kHz WAV to it, driven by
SIPp at 1 call/s up to the wheel's 4 calls, SIPp streaming speech back (PCMU). Its CPU idle over
``--reference-idle-seconds`` (15 s; quick 5 s), then with 4 calls up over ``--reference-seconds`` (30 s;
quick 10 s); per leg = (with calls - idle) / 4, the workers' rule. Run three times: with the media
settings the worker uses (``hasIoqueue = False``, media ``threadCnt = 0``, 8 kHz clock and sound
clock, ``ecTailLen = 0``, no VAD, no sound device while idle and the null device while calls are up)
for ``bare_pjsua_cpu_per_leg_pct``; with pjsua2's stock media settings (null sound device from the
start, 10 ms event loop) for ``bare_pjsua_default_cpu_per_leg_pct``; and with the worker's settings
but no WAV, the 4 calls bridged two by two both ways through the conference bridge as a worker
bridges caller and agent, for ``bare_pjsua_bridged_cpu_per_leg_pct``. ``layers_cpu_per_leg_pct`` =
``worker_cpu_per_leg_pct`` - ``bare_pjsua_cpu_per_leg_pct``: what the worker costs per leg beyond
pjsua2 answering and playing (IPC, admission, the Python loop and its bookkeeping, and the
bridging); ``layers_bridged_cpu_per_leg_pct`` is the same against the bridged reference, i.e. the
same media job, so it is as near as this bench gets to the cost of our layers alone. The reference's calls are PCMU on both sides, the hold
test bridges PCMU callers to PCMA agents (both are G.711: the conference bridge decodes and encodes
every leg either way).

**Other figures.** ``peak legs`` of a full-flow step comes from the database: every caller leg lives
from ``arrived_at`` to ``ended_at`` and every agent leg from ``offered_at`` to ``ended_at``; the peak
is the largest overlap. It is checked against the live sample of the workers' sockets (``fd
legs``). For the bare series it is the largest sum of ``in_use`` (live legs) of the workers'
``CapacityChanged`` events. CPU comes from ``/proc/<pid>/stat`` (utime + stime) of the worker
processes, Kamailio's processes, the control process and the SIPp processes, as a percentage of one
core over the step (the hold test: over its window); ``machine`` is the busy share of all cores from
``/proc/stat`` (other users of the machine included). Memory is the largest PSS
(``/proc/<pid>/smaps_rollup``) seen during the step: per worker, and summed over Kamailio's
processes (their shared memory counted once). The load average is printed with the figures.

The last line is one JSON object: ``front``; ``cps_full_flow`` (highest sustained full-flow rate,
calls/s), ``cps_bare`` (the same for the bare series), ``ratio`` (full flow / bare, null when the
bare series sustained nothing); ``peak_legs`` (the hold test's peak when it ran, else that of the top
sustained full-flow step) and ``peak_legs_full_flow``; ``failed_calls`` (failed or unanswered calls
over every step run: the hold test, both ramps, including the steps that ended the ramps); for the
top sustained full-flow step ``worker_cpu_pct``, ``worker_mb``, ``front_cpu_pct`` and ``front_mb``;
the hold test's ``hold_legs`` (target), ``hold_passed``, ``hold_legs_held`` (mean live legs in the
window), ``hold_seconds_held``, ``hold_failed_calls``, ``hold_workers``; ``worker_idle_cpu_pct`` and
``worker_idle_window_s``; ``worker_cpu_per_leg_pct``; ``control_cpu_pct`` and ``control_at_cps``;
``loop_lag_p50_ms``, ``loop_lag_p99_ms``, ``loop_lag_max_ms``; ``bare_pjsua_cpu_per_leg_pct``,
``bare_pjsua_default_cpu_per_leg_pct``, ``bare_pjsua_bridged_cpu_per_leg_pct``,
``bare_pjsua_idle_cpu_pct``, ``bare_pjsua_default_idle_cpu_pct``, ``layers_cpu_per_leg_pct`` and
``layers_bridged_cpu_per_leg_pct``. CPU figures are in % of one
core; a figure that was not measured (its series skipped, or not reported) is null.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: rtp_audio, pjsua_reference

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from rtp_audio import udp_drops, write_audio  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
LOOPBACK = REPO / "config" / "loopback.toml"
PCAPS = Path("/usr/share/sip-tester")
IVR_LISTEN_S = 8.0  # the caller's pause before keying, in caller_ivr.xml
WRAPUP_S = 2.0  # loopback.toml's queues.sales.wrapup_seconds
RTP_PER_WORKER = 80  # WorkerPool: 64 RTP ports and a gap of 16
TICK = os.sysconf("SC_CLK_TCK")

console = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=170)


# ----------------------------------------------------------------------------- processes

class Reaper:
    """Every process this bench starts, so that all of them end, even on Ctrl-C or an error."""

    def __init__(self) -> None:
        self.groups: list[subprocess.Popen] = []
        self.pids: dict[int, str] = {}  # workers found under the server (own sessions) -> their start time

    def watch(self, pid: int) -> None:
        self.pids[pid] = _started(pid)

    def add(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.groups.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def all_but(self, keep: subprocess.Popen | None) -> None:
        for proc in self.groups:
            if proc is not keep:
                self.kill(proc)

    def all(self) -> None:
        for proc in self.groups:
            self.kill(proc)
        for pid, started in self.pids.items():
            if started and _started(pid) == started:  # still that process, not a reused pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def _started(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return ""


reaper = Reaper()


def _terminate(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


# ----------------------------------------------------------------------------- ports

_taken: set[int] = set()


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_block(size: int) -> int:
    """First of ``size`` consecutive ports free now for UDP and TCP; not handed out again until released.

    Small blocks (SIPp ports, media pairs) come from 61000-65000 at random places; large ones (a
    server's SIP and RTP ranges) from 20000-61000, the lowest that fits, so scattered small blocks
    never leave the large ones without room (a 20 calls/s step needs about 12,000 RTP ports, and
    ports other programs hold are scattered through the kernel's ephemeral range). A block still held by the
    previous server's workers is waited for, up to 30 s.
    """
    if size <= 64:
        for _ in range(1000):
            base = random.randrange(61000, 65000 - size)
            ports = range(base, base + size)
            if not any(p in _taken for p in ports) and all(_port_free(p) for p in ports):
                _taken.update(ports)
                return base
        raise RuntimeError(f"no block of {size} free ports between 61000 and 65000")
    deadline = time.monotonic() + 30  # the previous server's workers may still hold theirs a moment
    while True:
        base = 20000
        while base + size <= 61000:
            clash = next((p for p in range(base, base + size) if p in _taken or not _port_free(p)), None)
            if clash is None:
                _taken.update(range(base, base + size))
                return base
            base = clash + 1
        if time.monotonic() > deadline:
            raise RuntimeError(f"no block of {size} free ports between 20000 and 61000")
        time.sleep(1.0)


def release(base: int, size: int) -> None:
    _taken.difference_update(range(base, base + size))


# ----------------------------------------------------------------------------- /proc

def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def open_sockets(pid: int) -> int:
    """Sockets the process holds (a worker's are UDP: SIP, then RTP and RTCP for each leg)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, PermissionError):
        return 0
    n = 0
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                n += 1
    return n


def machine_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def pss_mb(pid: int) -> float | None:
    """Proportional set size: shared pages (Kamailio's shared memory, the Python runtime) split fairly."""
    try:
        for row in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if row.startswith("Pss:"):
                return int(row.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def descendants(pid: int, name: str) -> list[int]:
    """Every process below ``pid`` whose command line contains ``name`` (Kamailio forks its workers)."""
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            todo.append(child)
            if name in cmdline(child):
                found.append(child)
    return sorted(found)


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):
                found += [int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class CpuMark:
    at: float
    per_pid: dict[int, float]
    machine: tuple[float, float]

    @classmethod
    def take(cls, pids: list[int]) -> CpuMark:
        return cls(time.monotonic(), {p: c for p in pids if (c := cpu_seconds(p)) is not None}, machine_times())


def cpu_percent(before: CpuMark, after: CpuMark, pids: list[int]) -> list[float]:
    wall = max(after.at - before.at, 1e-6)
    return [100 * (after.per_pid[p] - before.per_pid[p]) / wall
            for p in pids if p in before.per_pid and p in after.per_pid]


def machine_percent(before: CpuMark, after: CpuMark) -> float:
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    return 100 * busy / total if total else 0.0


# ----------------------------------------------------------------------------- SIPp

def sipp_binary() -> str:
    path = shutil.which("sipp")
    if not path:
        raise SystemExit("SIPp is missing: apt-get install sip-tester")
    return path


def pcap(name: str) -> str:
    path = PCAPS / name
    if not path.exists():
        raise SystemExit(f"SIPp's {name} is missing from {PCAPS}: apt-get install sip-tester")
    return str(path)


@dataclass
class SippRun:
    proc: subprocess.Popen
    workdir: Path
    media_port: int = 0  # -mp: where the other side sends RTP (SIPp never reads it: see rtp_audio.udp_drops)

    def running(self) -> bool:
        return self.proc.poll() is None

    def counts(self) -> dict[str, int]:
        """Cumulative counts from the last line of SIPp's statistics file (written every second and at exit)."""
        files = sorted(self.workdir.glob("*_.csv"))
        if not files:
            return {}
        try:
            rows = list(csv.reader(files[-1].read_text(errors="replace").splitlines(), delimiter=";"))
        except OSError:
            return {}
        if len(rows) < 2:
            return {}
        row = dict(zip(rows[0], rows[-1]))

        def num(key: str) -> int:
            try:
                return int(row.get(key, "0") or 0)
            except ValueError:
                return 0

        return {"created": num("TotalCallCreated"), "current": num("CurrentCall"),
                "successful": num("SuccessfulCall(C)"), "failed": num("FailedCall(C)"),
                "retransmissions": num("Retransmissions(C)"), "unexpected": num("FailedUnexpectedMessage(C)"),
                "timeouts": num("FailedTimeoutOnRecv(C)")}

    def rejections(self) -> str:
        """The unexpected responses in SIPp's error log, counted: ``503 Service Unavailable x12, ...``."""
        found: dict[str, int] = {}
        for path in self.workdir.glob("*_errors.log"):
            for m in re.finditer(r"received 'SIP/2\.0 (\d{3}) ([^\r\n']*)", path.read_text(errors="replace")):
                key = f"{m.group(1)} {m.group(2).strip()}"
                found[key] = found.get(key, 0) + 1
        return ", ".join(f"{k} x{v}" for k, v in sorted(found.items(), key=lambda kv: -kv[1]))


def sipp(workdir: Path, scenario: str, *, port: int, remote: str | None = None, calls: int | None = None,
         rate: float | None = None, duration_ms: int | None = None, keys: dict[str, str] | None = None,
         inf: Path | None = None, timeout_s: float = 300, service: str = "4008001234") -> SippRun:
    workdir.mkdir(parents=True, exist_ok=True)
    media = free_block(8)
    args = [sipp_binary(), "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
            "-mi", "127.0.0.1", "-mp", str(media), "-nostdin", "-trace_err", "-trace_stat", "-fd", "1",
            "-timeout", f"{int(timeout_s)}s", "-s", service, "-max_recv_loops", "10000"]
    if calls is not None:
        args += ["-m", str(calls)]
    if rate is not None:
        args += ["-r", f"{rate:g}", "-rp", "1000"]
    if duration_ms is not None:
        args += ["-d", str(duration_ms)]
    if inf is not None:
        args += ["-inf", str(inf)]
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    if remote:
        args.append(remote)
    proc = reaper.add(subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True))
    return SippRun(proc, workdir, media)


# ----------------------------------------------------------------------------- configuration

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: dict[str, Any]) -> str:
    """TOML for the configuration's shapes: tables as [a.b] sections, the agents' skills inline."""
    out: list[str] = []

    def plain(v: Any) -> bool:
        return not isinstance(v, dict) or all(not isinstance(x, dict) for x in v.values())

    def table(path: list[str], body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict) or (path and plain(v) and k == "skills")}
        if path:
            out.append("[" + ".".join(json.dumps(p) if not p.replace("_", "").isalnum() else p for p in path) + "]")
        for k, v in scalars.items():
            out.append(f"{json.dumps(k) if not k.replace('_', '').isalnum() else k} = {_toml_value(v)}")
        out.append("")
        for k, v in body.items():
            if k not in scalars:
                table([*path, k], v)

    table([], data)
    return "\n".join(out)


@dataclass
class Center:
    """The temporary contact center: folder, database, prompts, agents; ports and workers set per step."""

    root: Path
    agents: int
    phone_port: int
    workers: int = 1
    front: str = "none"
    base_port: int = 0
    front_port: int = 0
    rtp_start: int = 0
    config: Path = field(init=False)
    db_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = self.root / "callcenter.toml"
        self.db_url = f"sqlite:///{self.root / 'cc.db'}"
        self.configure(self.workers)

    def configure(self, workers: int) -> None:
        """Write the configuration for ``workers`` media workers on fresh ports."""
        if self.base_port:  # the previous server has stopped: its ports are free again
            release(self.base_port, self.workers)
            release(self.rtp_start, self.workers * RTP_PER_WORKER + 16)
            if self.front_port:
                release(self.front_port, 1)
        self.workers = workers
        self.base_port = free_block(workers)
        self.front_port = free_block(1) if self.front == "kamailio" else 0
        self.rtp_start = rtp_start = free_block(workers * RTP_PER_WORKER + 16)
        data = tomllib.loads(LOOPBACK.read_text())
        sip = data["sip"]
        # max_legs follows the worker count, so a pool that sizes itself within max_legs may start them all.
        sip.update(port=self.base_port, workers=workers, max_legs=max(int(sip.get("max_legs", 0)), workers * 4),
                   rtp_port_start=rtp_start,
                   rtp_port_end=rtp_start + workers * RTP_PER_WORKER + 16,
                   queue_log=str(self.root / "queue_log"), front=self.front)
        if self.front == "kamailio":
            # Callers reach Kamailio; every caller comes from SIPp's one address, so no flood limit.
            sip.update(port=self.front_port, worker_base_port=self.base_port, front_pike_density=0)
        data["database"]["url"] = self.db_url
        for queue in data["queues"].values():  # the phones have nobody at a desk: a timed wrap-up
            queue["after_call_work"] = "timed"
        data["ivr"].update(menu_file=str(REPO / "config" / "ivr.toml"), prompts_dir=str(self.root / "prompts"))
        data.setdefault("recording", {})["directory"] = str(self.root / "recordings")
        agents = data["agents"]
        model = dict(agents["1001"])
        for n in range(1, self.agents + 1):
            aid = f"{1000 + n}"
            agent = dict(agents.get(aid, model))
            agent["name"] = agents.get(aid, {}).get("name", f"Agent {aid}")
            agent["phone"] = f"sip:{aid}@127.0.0.1:{self.phone_port}"
            agent["auto_login"] = True
            agents[aid] = agent
        for aid in [a for a in agents if int(a) > 1000 + self.agents]:
            del agents[aid]
        self.config.write_text("# Derived from config/loopback.toml by bench/sip_load.py\n" + dump_toml(data))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "callcenter", "--config", str(self.config), *args]

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}

    def run(self, *args: str, timeout: float = 300) -> None:
        done = subprocess.run(self.command(*args), cwd=self.root, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"callcenter {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


class Server:
    """``callcenter serve --workers N --quiet`` in its own process group."""

    def __init__(self, center: Center) -> None:
        self.center = center
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []
        self.ready = threading.Event()
        self.usr1_sent = 0

    def start(self, timeout: float = 180) -> None:
        self.proc = reaper.add(subprocess.Popen(
            self.center.command("serve", "--workers", str(self.center.workers), "--quiet"), cwd=self.center.root,
            env=self.center.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True))

        def read() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.log.append(line)
                if "serving on" in line:
                    self.ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + "".join(self.log[-40:]))

    def workers(self) -> list[int]:
        assert self.proc
        pids = [p for p in children(self.proc.pid) if "callcenter.telephony.worker" in cmdline(p)]
        for pid in pids:
            reaper.watch(pid)
        return sorted(pids)

    def catches_usr1(self) -> bool:
        """Whether ``serve`` has a SIGUSR1 handler (``SigCgt`` in ``/proc``): without one the signal would kill it."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        return catches_signal(self.proc.pid, signal.SIGUSR1)

    def loop_mark(self) -> int | None:
        """Close the control loop's loop-health window and start the next (SIGUSR1: ``serve`` logs one
        ``loop-health {...}`` line for the time since the previous one). Returns where in the log to look
        for that line, or None when ``serve`` does not handle SIGUSR1 (then nothing is sent)."""
        if not self.catches_usr1():
            return None
        # The line answering the previous SIGUSR1 first (at most 1 s), so it cannot pass for this one's.
        deadline = time.monotonic() + 1.0
        while sum("loop-health" in text for text in self.log) < self.usr1_sent and time.monotonic() < deadline:
            time.sleep(0.05)
        mark = len(self.log)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGUSR1)
        self.usr1_sent += 1
        return mark

    def loop_health(self, mark: int | None, timeout: float = 3.0) -> dict[str, Any] | None:
        """The ``loop-health`` object logged at or after log line ``mark`` (waits up to ``timeout``), or None."""
        if mark is None:
            return None
        deadline = time.monotonic() + timeout
        while True:
            for text in reversed(self.log[mark:]):
                found = parse_loop_health(text)
                if found is not None:
                    return found
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            reaper.kill(self.proc)


def catches_signal(pid: int, sig: int) -> bool:
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("SigCgt:"):
                return bool((int(row.split()[1], 16) >> (sig - 1)) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


LOOP_KEYS = ("window_s", "samples", "p50_ms", "p99_ms", "max_ms", "cpu_pct")


def parse_loop_health(text: str) -> dict[str, Any] | None:
    """The JSON object after the word ``loop-health`` in one log line, or None."""
    at = text.find("loop-health")
    if at < 0:
        return None
    start = text.find("{", at)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ----------------------------------------------------------------------------- results

@dataclass
class Step:
    series: str
    rate: float
    calls: int
    workers: int = 1
    ok: int = 0
    failed: int = 0
    answered: int | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    achieved: float | None = None
    peak_legs: int = 0
    peak_fd_legs: int = 0
    worker_cpu: list[float] = field(default_factory=list)
    control_cpu: float | None = None
    sipp_cpu: float = 0.0
    machine: float = 0.0
    seconds: float = 0.0
    load: str = ""
    notes: list[str] = field(default_factory=list)

    front_cpu: float | None = None
    worker_mb: float | None = None
    front_mb: float | None = None
    loop: dict[str, Any] | None = None  # the control loop's loop-health over the step's steady window
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def unanswered(self) -> int:
        return 0 if self.answered is None else max(0, self.calls - self.answered)

    @property
    def passed(self) -> bool:
        clean = self.failed == 0 and self.ok == self.calls and not any(n.startswith("!") for n in self.notes)
        return clean and (self.answered is None or self.answered == self.calls)

    @property
    def lost(self) -> int:
        """Calls counted against the step: SIPp failures, calls that never completed, unanswered rows."""
        return max(self.failed + max(0, self.calls - self.ok - self.failed), self.unanswered)


def overlap_peak(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda x: (x[0], x[1]))
    peak = now = 0
    for _, d in points:
        now += d
        peak = max(peak, now)
    return peak


def overlap_span(intervals: list[tuple[dt.datetime, dt.datetime]], level: int) -> float:
    """Longest stretch of seconds during which at least ``level`` intervals overlap."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda x: (x[0], x[1]))
    best = 0.0
    now = 0
    since: dt.datetime | None = None
    for at, d in points:
        now += d
        if now >= level and since is None:
            since = at
        elif now < level and since is not None:
            best = max(best, (at - since).total_seconds())
            since = None
    return best


def db_rows(url: str, ani: str) -> list[Any]:
    from sqlalchemy import select

    from callcenter.db import Database
    from callcenter.db.models import Interaction

    db = Database(url)
    try:
        with db.session() as s:
            return [
                (r.arrived_at, r.offered_at, r.answered_at, r.ended_at, r.outcome, r.agent_id)
                for r in s.scalars(select(Interaction).where(Interaction.ani.like(f"%{ani}")))
            ]
    finally:
        db.dispose()


def closed_rows(url: str, ani: str, calls: int, wait_s: float = 20.0) -> list[Any]:
    """The step's interaction rows once every one is closed (the record writer is a thread of the server)."""
    deadline = time.monotonic() + wait_s
    rows = db_rows(url, ani)
    while time.monotonic() < deadline and (len(rows) < calls or any(r[3] is None for r in rows)):
        time.sleep(0.5)
        rows = db_rows(url, ani)
    return rows


def leg_intervals(rows: list[Any]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Every caller leg from ``arrived_at`` to ``ended_at``, every agent leg from ``offered_at`` to ``ended_at``."""
    intervals = [(r[0], r[3]) for r in rows if r[3]]
    return intervals + [(r[1], r[3]) for r in rows if r[1] and r[2] and r[3]]


def loopback_packets() -> int | None:
    """Packets received so far on the loopback interface (every packet between local processes)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for row in Path("/proc/net/dev").read_text().splitlines()[2:]:
            name, _, rest = row.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[1])
    return None


def live_legs(pids: list[int], idle: dict[int, int]) -> int:
    """Legs up now in the workers: sockets beyond each worker's idle count, two (RTP, RTCP) per leg."""
    return sum(max(0, open_sockets(p) - idle.get(p, 0)) // 2 for p in pids)


def collect(step: Step, callers: SippRun, phones: SippRun, rows: list[Any]) -> None:
    """A step's outcome from SIPp's counts and the interaction rows (the peak of legs included)."""
    end = time.monotonic() + 5
    while phones.running() and time.monotonic() < end:
        time.sleep(0.2)
    if phones.running():
        time.sleep(1.2)  # one more statistics line
        reaper.kill(phones.proc)
    c, pc = callers.counts(), phones.counts()
    step.ok, step.failed = c.get("successful", 0), c.get("failed", 0)
    if c.get("retransmissions"):
        step.notes.append(f"{c['retransmissions']} SIP retransmissions (callers)")
    if pc.get("failed"):
        step.notes.append(f"! agent phones: {pc['failed']} failed")
    if callers.proc.returncode not in (0, None) and step.failed == 0:
        step.notes.append(f"! callers SIPp rc={callers.proc.returncode}")
    if step.failed:
        step.notes.append(f"callers: {c.get('unexpected', 0)} unexpected responses "
                          f"({callers.rejections() or 'none'}), {c.get('timeouts', 0)} timeouts")
    step.outcomes = {}
    for r in rows:
        step.outcomes[r[4] or "open"] = step.outcomes.get(r[4] or "open", 0) + 1
    step.answered = sum(1 for r in rows if r[4] == "answered")
    if len(rows) != step.calls:
        step.notes.append(f"{len(rows)} interaction rows for {step.calls} calls")
    arrivals = sorted(r[0] for r in rows)
    if len(arrivals) > 1:
        span = (arrivals[-1] - arrivals[0]).total_seconds()
        step.achieved = (len(arrivals) - 1) / span if span > 0 else None
        if step.achieved is not None and step.achieved < 0.9 * step.rate:
            step.notes.append(f"arrivals recorded at {step.achieved:.2f}/s only (the server or SIPp fell behind)")
    step.peak_legs = overlap_peak(leg_intervals(rows))


def wait_progress(progress: Progress, seconds: float, label: str) -> None:
    task = progress.add_task(label, total=seconds)
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        progress.update(task, completed=elapsed)
        time.sleep(min(0.5, seconds - elapsed))
    progress.remove_task(task)


def measure_idle(seconds: float, server: Server, pids: list[int], front_pids: list[int], progress: Progress,
                 label: str) -> dict[str, Any]:
    """CPU of the server's workers (and of the control process and Kamailio) before any call, over ``seconds``."""
    time.sleep(3.0)  # the workers' start-up and Kamailio's first probes are not idle cost
    watched = [*pids, *front_pids, server.proc.pid]
    before = CpuMark.take(watched)
    wait_progress(progress, seconds, f"{label}: {len(pids)} idle workers, measuring {seconds:g} s")
    after = CpuMark.take(watched)
    per = cpu_percent(before, after, pids)
    ctrl = cpu_percent(before, after, [server.proc.pid])
    return {"window_s": after.at - before.at, "workers": len(per), "per_worker": sum(per) / len(per) if per else None,
            "max": max(per, default=None), "control": ctrl[0] if ctrl else None,
            "front": sum(cpu_percent(before, after, front_pids)) if front_pids else None,
            "machine": machine_percent(before, after), "load": load_average(), "at": label}


def start_server(center: Center, workers: int, progress: Progress, label: str, args,
                 info: dict[str, Any]) -> tuple[Server, list[int], list[int], float]:
    """``serve --workers N`` started and checked: (server, worker pids, Kamailio pids, start-up seconds)."""
    center.configure(workers)
    server = Server(center)
    task = progress.add_task(f"{label}: starting the server with {workers} workers", total=None)
    try:
        t0 = time.monotonic()
        server.start()
        startup = time.monotonic() - t0
        time.sleep(1.0)
        pids = server.workers()
        if len(pids) != workers:
            raise RuntimeError(f"found {len(pids)} worker processes under the server, expected {workers}")
        front_pids = descendants(server.proc.pid, "kamailio") if args.front == "kamailio" else []
        if args.front == "kamailio" and not front_pids:
            raise RuntimeError("no Kamailio process under the server")
        if not server.catches_usr1() and not info.get("usr1_warned"):
            info["usr1_warned"] = True
            progress.console.print(f"{label}: serve has no SIGUSR1 handler yet, so no loop-health report "
                                   "(loop lag not measured)", highlight=False, style="yellow")
        info["usr1"] = server.catches_usr1()
        return server, pids, front_pids, startup
    except BaseException:
        server.stop()
        raise
    finally:
        progress.remove_task(task)


def agents_needed(args, full_rates: list[float]) -> int:
    """Enough agents for the top full-flow rate (ring, talk, wrap-up) and for every held conversation."""
    if args.agents:
        return args.agents
    talk_s = args.talk_ms / 1000
    need = 5
    if not args.skip_full:
        need = max(need, math.ceil(max(full_rates) * (0.3 + talk_s + WRAPUP_S + 0.5) * 1.5) + 2)
    if not args.skip_hold:
        need = max(need, hold_conversations(args) + max(5, math.ceil(hold_conversations(args) * 0.05)))
    return need


def prepare_center(args, tmp: Path, agents: int, progress: Progress, info: dict[str, Any]) -> Center:
    center = Center(tmp / "center", agents, free_block(1), front=args.front)
    info.update(agents=agents)
    setup = progress.add_task("contact center: prompts and database", total=2)
    center.run("prompts", "build")
    progress.advance(setup)
    center.run("db", "upgrade")
    progress.advance(setup)
    progress.remove_task(setup)
    return center


# ----------------------------------------------------------------------------- hold test

HOLD_MARGIN_S = 15.0
"""Seconds of talk beyond the build-up and the held window: the queue, ringing and slack."""
HOLD_GIVE_UP_S = 8.0
"""When the target is not reached this long after the last caller should have keyed, the window opens
anyway on the legs then up (the test has failed; the figures say what was held)."""


def hold_conversations(args) -> int:
    return max(1, math.ceil(args.hold_legs / 2))


def hold_test(args, center: Center, audio: dict[str, Path], progress: Progress, report, info: dict[str, Any],
              steps: list[Step]) -> None:
    """Callers through the IVR into the queue, answered by agent phones, all kept up: ``--hold-legs`` legs for
    ``--hold-seconds`` with RTP both ways. The server's idle workers are measured first (``--idle-seconds``)."""
    conv = hold_conversations(args)
    workers = args.hold_workers or math.ceil(conv / 2) + max(2, math.ceil(conv / 40))
    step = Step("hold", args.hold_rate, conv, workers=workers)
    try:
        server, pids, front_pids, startup = start_server(center, workers, progress, "hold", args, info)
    except RuntimeError as exc:
        step.notes.append(f"! {exc}".splitlines()[0])
        info["server_log"] = "".join(str(exc).splitlines(True)[-30:])
        steps.append(step)
        report(step)
        return
    try:
        info["idle"] = measure_idle(args.idle_seconds, server, pids, front_pids, progress, "hold")
        step.extra["idle_per_worker"] = info["idle"]["per_worker"]
        idle_fds = {p: open_sockets(p) for p in pids}
        try:
            hold_run(args, center, audio, server, pids, front_pids, idle_fds, step, progress)
        except BaseException:
            reaper.all_but(server.proc)
            raise
        step.notes.insert(0, f"server up with {workers} workers in {startup:.1f} s")
        check_server(server, pids, step)
    finally:
        server.stop()
    close_step(server, step, steps, info, report)


def check_server(server: Server, pids: list[int], step: Step) -> None:
    """Notes (failing the step) when a worker was restarted or the server died during it."""
    if sorted(server.workers()) != pids:
        step.notes.append("! a worker was restarted during the step")
    if server.proc.poll() is not None:
        step.notes.append(f"! the server exited (rc {server.proc.returncode})")


def close_step(server: Server, step: Step, steps: list[Step], info: dict[str, Any], report) -> None:
    """After the server stopped: keep its log if it failed, then record and print the step."""
    if server.proc and server.proc.returncode not in (0, None):
        info["server_rc"] = server.proc.returncode
        info["server_log"] = "".join(server.log[-30:])
    steps.append(step)
    report(step)


def hold_run(args, center: Center, audio: dict[str, Path], server: Server, pids: list[int], front_pids: list[int],
             idle_fds: dict[int, int], step: Step, progress: Progress) -> None:
    conv, rate, target = step.calls, step.rate, 2 * step.calls
    build_s = conv / rate
    talk_s = build_s + args.hold_seconds + HOLD_MARGIN_S  # after keying: holds past the last caller's arrival
    limit = build_s + IVR_LISTEN_S + talk_s + 60
    ani = f"138{random.randrange(10**7):07d}"
    work = center.root / "hold"
    phones = sipp(work / "phones", "agent_phone_hold.xml", port=center.phone_port, calls=conv, timeout_s=limit + 30,
                  keys={"audio_stream": f"{audio['alaw']},-1,8"})
    time.sleep(0.5)
    inf = center.root / "workers-hold.csv"
    targets = [center.front_port] if center.front_port else [center.base_port + i for i in range(len(pids))]
    inf.write_text("SEQUENTIAL\n" + "".join(f"127.0.0.1;{port};\n" for port in targets))
    callers = sipp(work / "callers", "caller_ivr_hold.xml", port=free_block(1),
                   remote=f"127.0.0.1:{center.front_port or center.base_port}", calls=conv, rate=rate,
                   duration_ms=int(talk_s * 1000) - 500, inf=inf, timeout_s=limit,
                   keys={"key_pcap": pcap("dtmf_2833_1.pcap"), "caller_stream": f"{audio['ulaw']},-1,0",
                         "ani": ani, "display": "Hold"})
    watched = [*pids, *front_pids, server.proc.pid, phones.proc.pid, callers.proc.pid]
    step.extra.update(target_legs=target, talk_s=talk_s)
    task = progress.add_task(f"hold: {conv} callers at {rate:g}/s", total=build_s + IVR_LISTEN_S + args.hold_seconds)
    started = time.monotonic()
    w0 = w1 = None
    opened_at = target
    marks: list[int | None] = []
    probe0: tuple = ()
    probe1: tuple = ()
    samples: list[int] = []
    memory: dict[int, float] = {}
    while callers.running():
        now = time.monotonic()
        legs = live_legs(pids, idle_fds)
        step.peak_fd_legs = max(step.peak_fd_legs, legs)
        short = w0 is None and legs < target and now - started >= build_s + IVR_LISTEN_S + HOLD_GIVE_UP_S
        if w0 is None and (legs >= target or short and legs > 0):
            if short:
                step.notes.append(f"! the target of {target} legs was not reached: the window opened on the "
                                  f"{legs} legs up {now - started:.0f} s after the first caller")
            opened_at = legs
            w0 = CpuMark.take(watched)
            probe0 = (udp_drops(callers.media_port), udp_drops(phones.media_port), loopback_packets())
            marks.append(server.loop_mark())
        elif w0 is not None and w1 is None:
            samples.append(legs)
            for pid in (*pids, *front_pids):
                memory[pid] = max(memory.get(pid, 0.0), pss_mb(pid) or 0.0)
            if now - w0.at >= args.hold_seconds:
                w1 = CpuMark.take(watched)
                probe1 = (udp_drops(callers.media_port), udp_drops(phones.media_port), loopback_packets())
                marks.append(server.loop_mark())
        c = callers.counts()
        held = ("" if w0 is None else
                f", held {min(args.hold_seconds, (w1.at if w1 else now) - w0.at):.0f}/{args.hold_seconds:g} s")
        progress.update(task, completed=min(build_s + IVR_LISTEN_S + args.hold_seconds, now - started),
                        description=f"hold: {c.get('created', 0)}/{conv} callers, {c.get('failed', 0)} failed, "
                                    f"{legs}/{target} legs{held}")
        if now - started > limit:
            step.notes.append("! callers still running at the test's time limit")
            reaper.kill(callers.proc)
            break
        time.sleep(0.5)
    progress.remove_task(task)
    rows = closed_rows(center.db_url, ani, conv)
    step.load = load_average()
    collect(step, callers, phones, rows)
    step.extra["held_db_s"] = overlap_span(leg_intervals(rows), target)
    if w0 is None or w1 is None:
        step.notes.append(f"! no window of {args.hold_seconds:g} s with {target} legs "
                          f"(at most {step.peak_fd_legs} live legs)")
        return
    if len(marks) == 2:
        step.loop = server.loop_health(marks[1])
    step.seconds = wall = w1.at - w0.at
    step.worker_cpu = cpu_percent(w0, w1, pids)
    ctrl = cpu_percent(w0, w1, [server.proc.pid])
    step.control_cpu = ctrl[0] if ctrl else None
    if front_pids:
        step.front_cpu = sum(cpu_percent(w0, w1, front_pids))
        step.front_mb = sum(memory.get(p, 0.0) for p in front_pids)
    step.worker_mb = max((memory.get(p, 0.0) for p in pids), default=None)
    step.sipp_cpu = sum(cpu_percent(w0, w1, [phones.proc.pid, callers.proc.pid]))
    step.machine = machine_percent(w0, w1)
    legs_mean = sum(samples) / len(samples) if samples else float(target)
    step.extra.update(legs_mean=legs_mean, legs_min=min(samples, default=0), window_s=wall)
    if min(samples, default=0) < opened_at:
        step.notes.append(f"! live legs fell to {min(samples)} during the held window")
    idle = step.extra.get("idle_per_worker")
    if idle is not None and legs_mean:
        step.extra["cpu_per_leg"] = (sum(step.worker_cpu) - idle * len(step.worker_cpu)) / legs_mean
    if None not in probe0 + probe1 and legs_mean:
        held = legs_mean / 2  # conversations: one caller leg, one agent leg each
        to_callers = (probe1[0] - probe0[0]) / wall / held
        to_phones = (probe1[1] - probe0[1]) / wall / held
        loopback = (probe1[2] - probe0[2]) / wall
        into_workers = (loopback - (to_callers + to_phones) * held) / legs_mean
        step.extra.update(rtp_to_callers=to_callers, rtp_to_phones=to_phones, rtp_into_workers_est=into_workers)
        for who, pps in (("callers", to_callers), ("agent phones", to_phones)):
            if pps < 25:
                step.notes.append(f"! only {pps:.0f} RTP packets/s per leg reached the {who}")
            elif pps < 45:
                step.notes.append(f"{pps:.0f} RTP packets/s per leg reached the {who} (50 expected)")
    else:
        step.notes.append("RTP to SIPp not counted (its media sockets were not found in /proc/net/udp)")
    if step.machine >= 95:
        step.notes.append(f"the machine's {os.cpu_count()} cores were {step.machine:.0f}% busy")


# ----------------------------------------------------------------------------- full flow

def workers_for(args, rate: float, holding: float) -> int:
    """Two callers per worker, each holding its two legs ``holding`` seconds, with a quarter spare."""
    return args.workers or max(2, math.ceil(rate * holding / 2 * 1.25))


def full_flow(args, center: Center, rates: list[float], progress: Progress, report, info: dict[str, Any],
              steps: list[Step]) -> None:
    talk_s = args.talk_ms / 1000
    holding = IVR_LISTEN_S + talk_s + 0.6  # seconds a caller holds its worker's two legs
    info.update(holding_s=holding)
    for n, rate in enumerate(rates, 1):
        workers = workers_for(args, rate, holding)
        try:
            server, pids, front_pids, startup = start_server(center, workers, progress, f"full flow {rate:g}/s", args,
                                                               info)
        except RuntimeError as exc:
            step = Step("full", rate, 0, workers=workers, notes=[f"! {exc}".splitlines()[0]])
            info["server_log"] = "".join(exc.args[0].splitlines(True)[-30:]) if exc.args else ""
            steps.append(step)
            report(step)
            break
        try:
            if "idle" not in info:  # no hold test before: this is the first server of the run
                info["idle"] = measure_idle(args.idle_seconds, server, pids, front_pids, progress,
                                            f"full flow {rate:g}/s")
            idle = {p: open_sockets(p) for p in pids}
            quiet = CpuMark.take(pids)
            time.sleep(2.0)
            idle_cpu = cpu_percent(quiet, CpuMark.take(pids), pids)
            inf = center.root / f"workers-{n}.csv"
            # Through the front every caller goes to its one address; without it, round-robin over the workers.
            targets = [center.front_port] if center.front_port else [center.base_port + i for i in range(workers)]
            inf.write_text("SEQUENTIAL\n" + "".join(f"127.0.0.1;{port};\n" for port in targets))
            try:
                step = full_step(args, center, server, pids, front_pids, idle, inf, n, rate, holding, progress)
            except BaseException:
                reaper.all_but(server.proc)  # callers and phones first, then the server stops below
                raise
            step.workers = workers
            step.notes.insert(0, f"server up with {workers} workers in {startup:.1f} s, "
                                 f"idle {sum(idle_cpu) / max(1, len(idle_cpu)):.1f}% of a core per worker")
            check_server(server, pids, step)
        finally:
            server.stop()
        close_step(server, step, steps, info, report)
        if not step.passed:
            break


def full_step(args, center: Center, server: Server, pids: list[int], front_pids: list[int], idle: dict[int, int],
              inf: Path, n: int, rate: float, holding: float, progress: Progress) -> Step:
    calls = max(2, round(rate * args.step_seconds))
    step = Step("full", rate, calls)
    ani = f"139{n:02d}{random.randrange(10**6):06d}"
    work = center.root / f"step{n}"
    arrivals_s = calls / rate
    expected = arrivals_s + holding + 2
    limit = expected + 60
    # The steady window: from the time the first callers start to leave (the flow is full) to the last arrival.
    warm_s = min(holding, arrivals_s / 3)
    phones = sipp(work / "phones", "agent_phone.xml", port=center.phone_port, calls=calls, timeout_s=limit + 30,
                  keys={"audio_pcap": pcap("g711a.pcap")})
    time.sleep(0.5)
    caller_port = free_block(1)
    watched = [*pids, *front_pids, server.proc.pid, phones.proc.pid]
    before = CpuMark.take(watched)
    callers = sipp(work / "callers", "caller_ivr.xml", port=caller_port,
                   remote=f"127.0.0.1:{center.front_port or center.base_port}",
                   calls=calls, rate=rate, duration_ms=args.talk_ms, inf=inf, timeout_s=limit,
                   keys={"key_pcap": pcap("dtmf_2833_1.pcap"), "ani": ani, "display": f"Load {n}"})
    before.per_pid[callers.proc.pid] = 0.0
    task = progress.add_task(f"full flow {rate:g}/s: {calls} calls", total=expected)
    started = time.monotonic()
    caller_cpu: float | None = None
    memory: dict[int, float] = {}
    steady: list[CpuMark] = []
    marks: list[int | None] = []
    while callers.running():
        elapsed = time.monotonic() - started
        if len(steady) == 0 and elapsed >= warm_s or len(steady) == 1 and elapsed >= arrivals_s:
            steady.append(CpuMark.take([server.proc.pid, *pids]))
            marks.append(server.loop_mark())
        caller_cpu = cpu_seconds(callers.proc.pid) or caller_cpu
        for pid in (*pids, *front_pids):
            memory[pid] = max(memory.get(pid, 0.0), pss_mb(pid) or 0.0)
        legs = live_legs(pids, idle)
        step.peak_fd_legs = max(step.peak_fd_legs, legs)
        c = callers.counts()
        progress.update(task, completed=min(expected, time.monotonic() - started),
                        description=f"full flow {rate:g}/s: {c.get('created', 0)}/{calls} sent, "
                                    f"{c.get('successful', 0)} done, {c.get('failed', 0)} failed, {legs} legs")
        if time.monotonic() - started > limit:
            step.notes.append("! callers still running at the step's time limit")
            reaper.kill(callers.proc)
            break
        time.sleep(0.5)
    rows = closed_rows(center.db_url, ani, calls)
    after = CpuMark.take(watched)
    step.load = load_average()
    progress.remove_task(task)
    step.seconds = after.at - before.at
    collect(step, callers, phones, rows)
    if len(steady) == 2:
        ctrl = cpu_percent(steady[0], steady[1], [server.proc.pid])
        step.extra.update(control_steady=ctrl[0] if ctrl else None, steady_s=steady[1].at - steady[0].at,
                          workers_steady=sum(cpu_percent(steady[0], steady[1], pids)))
        step.loop = server.loop_health(marks[1])
    step.worker_cpu = cpu_percent(before, after, pids)
    if front_pids:
        step.front_cpu = sum(cpu_percent(before, after, front_pids))
        step.front_mb = sum(memory.get(p, 0.0) for p in front_pids)
    step.worker_mb = max((memory.get(p, 0.0) for p in pids), default=None)
    ctrl = cpu_percent(before, after, [server.proc.pid])
    step.control_cpu = ctrl[0] if ctrl else None
    wall = max(step.seconds, 1e-6)
    sipp_cpu = sum(cpu_percent(before, after, [phones.proc.pid]))
    if caller_cpu is not None:
        sipp_cpu += 100 * caller_cpu / wall
    step.sipp_cpu = sipp_cpu
    step.machine = machine_percent(before, after)
    if step.machine >= 95:
        step.notes.append(f"the machine's {os.cpu_count()} cores were {step.machine:.0f}% busy")
    return step


# ----------------------------------------------------------------------------- bare worker

async def bare_worker(args, tmp: Path, rates: list[float], progress: Progress, report, steps: list[Step]) -> None:
    from callcenter.core import telephony_protocol as p
    from callcenter.telephony.pool import WorkerPool

    count = args.bare_workers
    port, rtp = free_block(count), free_block(count * RTP_PER_WORKER + 16)
    pool = WorkerPool(count, address="127.0.0.1", base_port=port, rtp_start=rtp, max_rate=args.bare_max_rate, legs=4)
    front = None
    await pool.start()
    try:
        if args.front == "kamailio":
            from callcenter.front import KamailioFront

            front = KamailioFront(listen_address="127.0.0.1", port=free_block(1), workers=lambda: pool.workers,
                                  max_load=2, trunk_allow=["127.0.0.1/32"], pike_density=0)
            await front.start()
        pids = [w.pid for w in pool.workers]
        front_pids = descendants(os.getpid(), "kamailio")
        for pid in pids:
            reaper.watch(pid)
        await asyncio.sleep(0.5)
        idle = {pid: open_sockets(pid) for pid in pids}
        target = front.address if front is not None else f"127.0.0.1:{pool.workers[0].port}"
        for n, rate in enumerate(rates, 1):
            step = await bare_step(args, tmp, pool, p, pids, front_pids, idle, target, n, rate, progress)
            step.workers = count
            steps.append(step)
            report(step)
            if [w.pid for w in pool.workers] != pids or not all(w.alive for w in pool.workers):
                step.notes.append("! a worker died")
            if front is not None and not front.alive:
                step.notes.append("! Kamailio died")
            if not step.passed:
                break
            await asyncio.sleep(1.0)  # the stack's closed sockets stay blocked for 500 ms
    finally:
        if front is not None:
            await front.stop_following_workers()
        await pool.stop()
        if front is not None:
            await front.stop()


async def bare_step(args, tmp: Path, pool, p, pids: list[int], front_pids: list[int], idle: dict[int, int],
                    target: str, n: int, rate: float, progress: Progress) -> Step:
    calls = max(2, round(rate * args.bare_seconds))
    step = Step("bare", rate, calls)
    expected = calls / rate + 1
    limit = expected + 40
    before = CpuMark.take([*pids, *front_pids])
    memory: dict[int, float] = {}
    run = sipp(tmp / "bare" / f"step{n}", "caller_bare.xml", port=free_block(1),
               remote=target, calls=calls, rate=rate, timeout_s=limit,
               keys={"ani": f"1380{n:02d}00000", "display": "Bare"})
    before.per_pid[run.proc.pid] = 0.0
    task = progress.add_task(f"bare worker {rate:g}/s: {calls} calls", total=expected)
    started = time.monotonic()
    refused: dict[str, int] = {}
    deaths: dict[str, int] = {}
    in_use: dict[str, int] = {}
    next_sample = 0.0
    caller_cpu: float | None = None
    while run.running() or not pool.events.empty():
        try:
            ev = await asyncio.wait_for(pool.events.get(), 0.05)
        except asyncio.TimeoutError:
            ev = None
        if isinstance(ev, p.CallArrived):
            pool.send(p.AnswerCall(leg=ev.leg))
        elif isinstance(ev, p.LegAnswered):
            pool.send(p.Hangup(leg=ev.leg))
        elif isinstance(ev, p.CapacityChanged):
            in_use[ev.worker] = ev.in_use
            step.peak_legs = max(step.peak_legs, sum(in_use.values()))
        elif isinstance(ev, p.CallRefused):
            refused[f"{ev.status} {ev.reason}"] = refused.get(f"{ev.status} {ev.reason}", 0) + 1
        elif isinstance(ev, p.WorkerDied):
            why = ""
            with contextlib.suppress(Exception):  # the worker's last words, e.g. pjsua2's failed assertion
                lines = [x for x in pool.worker_log(ev.worker).splitlines() if x.strip()]
                why = next((x for x in reversed(lines) if "ssert" in x), lines[-1] if lines else "").strip()[:160]
            deaths[f"rc {ev.returncode}" + (f": {why}" if why else "")] = deaths.get(
                f"rc {ev.returncode}" + (f": {why}" if why else ""), 0) + 1
        now = time.monotonic()
        if now >= next_sample:
            next_sample = now + 0.25
            caller_cpu = cpu_seconds(run.proc.pid) or caller_cpu
            step.peak_fd_legs = max(step.peak_fd_legs,
                                    sum(max(0, open_sockets(pid) - idle[pid]) // 2 for pid in pids))
            for pid in (*pids, *front_pids):
                memory[pid] = max(memory.get(pid, 0.0), pss_mb(pid) or 0.0)
            c = run.counts()
            progress.update(task, completed=min(expected, now - started),
                            description=f"bare worker {rate:g}/s: {c.get('created', 0)}/{calls} sent, "
                                        f"{c.get('successful', 0)} done, {c.get('failed', 0)} failed")
        if now - started > limit:
            step.notes.append("! SIPp still running at the step's time limit")
            reaper.kill(run.proc)
            break
    after = CpuMark.take([*pids, *front_pids])
    step.load = load_average()
    progress.remove_task(task)
    step.seconds = after.at - before.at
    c = run.counts()
    step.ok, step.failed = c.get("successful", 0), c.get("failed", 0)
    step.worker_cpu = cpu_percent(before, after, pids)
    step.worker_mb = max((memory.get(pid, 0.0) for pid in pids), default=None)
    if front_pids:
        step.front_cpu = sum(cpu_percent(before, after, front_pids))
        step.front_mb = sum(memory.get(pid, 0.0) for pid in front_pids)
    step.sipp_cpu = 100 * caller_cpu / max(step.seconds, 1e-6) if caller_cpu is not None else 0.0
    step.machine = machine_percent(before, after)
    for why, count in deaths.items():
        step.notes.append(f"! a worker died x{count} ({why})")
    if refused:
        step.notes.append("refused: " + ", ".join(f"{k} x{v}" for k, v in sorted(refused.items())))
    if step.failed:
        step.notes.append(f"callers: {c.get('unexpected', 0)} unexpected responses "
                          f"({run.rejections() or 'none'}), {c.get('timeouts', 0)} timeouts")
    if c.get("retransmissions"):
        step.notes.append(f"{c['retransmissions']} SIP retransmissions")
    return step


# ----------------------------------------------------------------------------- bare pjsua2 reference

def reference(args, tmp: Path, audio: dict[str, Path], progress: Progress, results: list[dict[str, Any]]) -> None:
    """``bench/pjsua_reference.py`` in both media set-ups: one pjsua2 process answering and playing a WAV."""
    import pjsua_reference as ref

    for mode in ref.MODES:
        ua_port, rtp, sipp_port, media = free_block(1), free_block(48), free_block(1), free_block(4)
        task = progress.add_task(f"pjsua2 reference ({mode})", total=None)
        try:
            r = ref.measure(mode, tmp / "reference" / mode, audio, ua_port=ua_port, rtp_start=rtp,
                            sipp_port=sipp_port, media_port=media, idle_s=args.reference_idle_seconds,
                            hold_s=args.reference_seconds, calls=4, rate=1.0, register=reaper.add,
                            status=lambda text, task=task: progress.update(task, description=text))
        finally:
            progress.remove_task(task)
        progress.console.print(ref.describe(r), highlight=False)
        results.append(r)


# ----------------------------------------------------------------------------- output

def pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def lag(loop: dict[str, Any] | None) -> str:
    if not loop:
        return "—"
    return f"{pct(loop.get('p50_ms'))}/{pct(loop.get('p99_ms'))}"


def table(steps: list[Step], info: dict[str, Any]) -> Table:
    t = Table(title="SIP load steps", title_justify="left")
    for name in ("series", "rate/s", "workers", "calls", "arrived/s", "SIPp ok/fail", "agent answered",
                 "peak legs db/fd",
                 "CPU/worker % (max)", "workers Σ %", "front %", "control % (steady)", "loop p50/p99 ms",
                 "SIPp %", "machine %", "PSS MB worker/front", "load 1m end", "result"):
        t.add_column(name, justify="left" if name in ("series", "result") else "right")
    for s in steps:
        w = s.worker_cpu
        steady = s.extra.get("control_steady")
        t.add_row(s.series, f"{s.rate:g}", str(s.workers), str(s.calls),
                  "—" if s.achieved is None else f"{s.achieved:.2f}",
                  f"{s.ok}/{s.failed}", "—" if s.answered is None else f"{s.answered}/{s.calls}",
                  f"{s.peak_legs}/{s.peak_fd_legs}", f"{sum(w) / len(w):.1f} ({max(w):.1f})" if w else "—",
                  f"{sum(w):.1f}" if w else "—", pct(s.front_cpu),
                  pct(s.control_cpu) + ("" if steady is None else f" ({steady:.1f})"), lag(s.loop),
                  f"{s.sipp_cpu:.1f}", f"{s.machine:.0f}", f"{pct(s.worker_mb)}/{pct(s.front_mb)}",
                  s.load.split()[0] if s.load else "", "[green]ok[/]" if s.passed else "[red]FAIL[/]")
    notes = [f"{s.series} {s.rate:g}/s: " + "; ".join(n.lstrip("! ") for n in s.notes) for s in steps if s.notes]
    notes += [f"{s.series} {s.rate:g}/s outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items()))
              for s in steps if s.outcomes and set(s.outcomes) != {"answered"}]
    series = {s.series for s in steps}
    what = [f"SIP front: {info.get('front')}."]
    if "hold" in series:
        what.append(f"hold: {info.get('hold_legs')} legs ({info.get('hold_conversations')} callers with their agents) "
                    f"held {info.get('hold_seconds'):g} s, RTP both ways, one server with a fixed pool, CPU over the "
                    "held window.")
    if "full" in series:
        what.append(f"full flow: one server per step, workers sized for its rate (4 legs each), "
                    f"{info.get('agents')} agents on one SIPp phone, callers talk until {info.get('talk_ms')} ms "
                    f"after keying (each holds its worker ~{info.get('holding_s', 0):.1f} s).")
    if "bare" in series:
        what.append(f"bare: {info.get('bare_workers')} worker(s) answering and hanging up, rate limit "
                    f"{info.get('bare_max_rate'):g}/s each.")
    t.caption = "\n".join([
        " ".join(what) + " PSS: largest worker's, and Kamailio's processes summed.",
        f"CPU in % of one core over the step (steady: control process from the time the flow is full to the "
        f"last arrival, the window of its loop lag); machine = busy share of all {os.cpu_count()} cores, "
        "other users included.",
        *notes])
    t.caption_justify = "left"
    return t


def figures_table(fig: dict[str, Any], info: dict[str, Any]) -> Table:
    t = Table(title="Capacity figures (issue 15)", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("how")
    idle = info.get("idle") or {}
    hold = info.get("hold_step")

    def row(name: str, value: Any, how: str) -> None:
        t.add_row(name, "—" if value is None else (f"{value:g}" if isinstance(value, (int, float)) else str(value)),
                  how)

    row("cps_full_flow", fig["cps_full_flow"], f"highest full-flow rate sustained for {info.get('step_seconds'):g} s "
        "with 0 failed calls (target ≥ 20)")
    row("peak_legs", fig["peak_legs"], "from the hold test when it ran (target ≥ 300, held "
        f"{info.get('hold_seconds')} s), else the full flow's")
    if hold is not None:
        row("hold: legs held / time", f"{hold.extra.get('legs_mean', 0):.0f} / {hold.extra.get('window_s', 0):.0f} s",
            f"live legs over the measured window; {hold.extra.get('held_db_s', 0):.0f} s at ≥ "
            f"{hold.extra.get('target_legs')} legs in the records; {hold.lost} failed")
        if "rtp_to_callers" in hold.extra:
            row("hold: RTP packets/s per leg", f"{hold.extra['rtp_to_callers']:.0f} / {hold.extra['rtp_to_phones']:.0f}"
                f" / ~{hold.extra['rtp_into_workers_est']:.0f}",
                "to the callers / to the agents' phones (drops at SIPp's media ports) / into the workers "
                "(loopback total minus those: an estimate)")
    row("worker_idle_cpu_pct", fig["worker_idle_cpu_pct"],
        f"mean of {idle.get('workers', '—')} idle workers over {idle.get('window_s', 0):.0f} s before any call "
        f"(max {pct(idle.get('max'), 2)}; target ≤ 0.3)")
    row("worker_cpu_per_leg_pct", fig["worker_cpu_per_leg_pct"],
        "hold window: all workers' CPU minus their idle cost, per live leg")
    row("bare_pjsua_cpu_per_leg_pct", fig["bare_pjsua_cpu_per_leg_pct"],
        "one pjsua2 process with the worker's media settings, 4 calls playing a WAV, above its idle")
    row("bare_pjsua_default_cpu_per_leg_pct", fig["bare_pjsua_default_cpu_per_leg_pct"],
        "the same with pjsua2's stock media settings")
    row("bare_pjsua_bridged_cpu_per_leg_pct", fig["bare_pjsua_bridged_cpu_per_leg_pct"],
        "the worker's media settings, the 4 calls bridged two by two both ways (no WAV)")
    row("layers_cpu_per_leg_pct", fig["layers_cpu_per_leg_pct"],
        "worker_cpu_per_leg_pct - bare_pjsua_cpu_per_leg_pct: what our layers (and bridging) add per leg")
    row("layers_bridged_cpu_per_leg_pct", fig["layers_bridged_cpu_per_leg_pct"],
        "worker_cpu_per_leg_pct - bare_pjsua_bridged_cpu_per_leg_pct: our layers alone, same media job")
    row("control_cpu_pct", fig["control_cpu_pct"],
        f"control process at the {pct(fig['control_at_cps'], 0)} calls/s full-flow step, steady window")
    row("loop_lag_p50_ms / p99", f"{pct(fig['loop_lag_p50_ms'])} / {pct(fig['loop_lag_p99_ms'])}",
        "the control process's own loop-health report (SIGUSR1) over the same window"
        + ("" if fig["loop_lag_p99_ms"] is not None else f": {info.get('loop_note', 'not reported')}"))
    t.caption = f"CPU in % of one core; load average {info.get('load0')} at the start."
    t.caption_justify = "left"
    return t


def line(step: Step) -> str:
    w = step.worker_cpu
    cpu = f"workers {sum(w):.0f}% ({sum(w) / len(w):.1f}%/worker)" if w else ""
    ans = "" if step.answered is None else f", {step.answered}/{step.calls} answered by agents"
    held = ""
    if step.series == "hold" and "window_s" in step.extra:
        held = (f", {step.extra['legs_mean']:.0f} legs held {step.extra['window_s']:.0f} s"
                + (f", {step.extra['cpu_per_leg']:.3f}% per leg above idle" if "cpu_per_leg" in step.extra else ""))
    steady = step.extra.get("control_steady")
    return (f"{'✓' if step.passed else '✗'} {step.series} {step.rate:g}/s: {step.ok}/{step.calls} ok, "
            f"{step.failed} failed{ans}, peak legs {step.peak_legs}/{step.peak_fd_legs} (db/fd){held}"
            + (f", {cpu}" if cpu else "")
            + ("" if step.front_cpu is None else f", Kamailio {step.front_cpu:.1f}%")
            + ("" if step.control_cpu is None else f", control {step.control_cpu:.1f}%")
            + ("" if steady is None else f" ({steady:.1f}% steady)")
            + ("" if step.loop is None else f", loop lag p50/p99 {lag(step.loop)} ms")
            + f", machine {step.machine:.0f}%, load {step.load}"
            + (f" — {'; '.join(n.lstrip('! ') for n in step.notes)}" if step.notes else ""))


def best(steps: list[Step]) -> Step | None:
    ok = [s for s in steps if s.passed]
    return max(ok, key=lambda s: s.rate) if ok else None


def rates_of(text: str) -> list[float]:
    values = sorted({float(x) for x in text.split(",") if x.strip()})  # noqa: C403
    if not values or values[0] <= 0:
        raise argparse.ArgumentTypeError("give positive rates, e.g. 0.5,1,2")
    return values


def control_step(full: list[Step]) -> Step | None:
    """The full-flow step the control-process figures come from: 20 calls/s, else the top step run."""
    measured = [s for s in full if s.calls]
    return next((s for s in measured if s.rate == 20), None) or max(measured, key=lambda s: s.rate, default=None)


def rounded(v: Any, digits: int = 3) -> Any:
    return round(v, digits) if isinstance(v, float) else v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="shorter windows, fewer steps and legs, same keys (about 5 minutes)")
    ap.add_argument("--full-rates", type=rates_of, help="full-flow rates in calls/s (default 5,10,15,20,25; "
                                                        "quick 2,4,8)")
    ap.add_argument("--bare-rates", type=rates_of, help="bare rates (default 10,20,30,40,... up to 25/s per bare worker; quick 3 steps)")
    ap.add_argument("--step-seconds", type=float, help="seconds of full-flow arrivals per step (default 60; quick 15)")
    ap.add_argument("--bare-seconds", type=float, help="seconds of bare-worker arrivals per step (default 12; quick 8)")
    ap.add_argument("--talk-ms", type=int, default=3000, help="caller stays on this long after keying (queue + talk)")
    ap.add_argument("--workers", type=int,
                    help="media workers for every full-flow step (default: sized for each step's rate, 2 callers each)")
    ap.add_argument("--agents", type=int, help="agents (default: enough for the top rate and the hold test)")
    ap.add_argument("--hold-legs", type=int, help="legs the hold test holds at once, half callers, half agents "
                                                  "(default 300; quick 60)")
    ap.add_argument("--hold-seconds", type=float, help="how long they are held (default 60; quick 15)")
    ap.add_argument("--hold-rate", type=float, default=10.0,
                    help="the hold test's callers per second while it builds up")
    ap.add_argument("--hold-workers", type=int,
                    help="workers of the hold test (default: 2 callers each, and a few spare)")
    ap.add_argument("--idle-seconds", type=float, help="window of the idle workers' CPU before any call "
                                                       "(default 60; quick 15)")
    ap.add_argument("--reference-seconds", type=float, help="window of the bare pjsua2 reference with 4 calls up "
                                                            "(default 30; quick 10)")
    ap.add_argument("--reference-idle-seconds", type=float, help="the reference's idle window (default 15; quick 5)")
    ap.add_argument("--bare-max-rate", type=float, default=25.0, help="each bare worker's rate limit (at most 25)")
    ap.add_argument("--bare-workers", type=int, help="workers in the bare series (default 4 behind the front, else 1)")
    ap.add_argument("--front", choices=("auto", "kamailio", "none"), default="auto",
                    help="callers reach Kamailio in front of the workers (auto: when installed), or the workers")
    ap.add_argument("--skip-hold", action="store_true", help="no hold test")
    ap.add_argument("--skip-full", action="store_true", help="no full-flow ramp")
    ap.add_argument("--skip-bare", action="store_true", help="no bare series")
    ap.add_argument("--skip-reference", action="store_true", help="no bare pjsua2 reference")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (SIPp logs, database)")
    args = ap.parse_args()
    q = args.quick
    full_rates = args.full_rates or ([2.0, 4.0, 8.0] if q else [5.0, 10.0, 15.0, 20.0, 25.0])
    args.step_seconds = args.step_seconds or (15 if q else 60)
    args.bare_seconds = args.bare_seconds or (8 if q else 12)
    args.hold_legs = args.hold_legs or (60 if q else 300)
    args.hold_seconds = args.hold_seconds or (15 if q else 60)
    args.idle_seconds = args.idle_seconds or (15 if q else 60)
    args.reference_seconds = args.reference_seconds or (10 if q else 30)
    args.reference_idle_seconds = args.reference_idle_seconds or (5 if q else 15)
    sipp_binary()
    from callcenter.front import resolve_front

    args.front = resolve_front(args.front)
    args.bare_workers = args.bare_workers or (4 if args.front == "kamailio" else 1)
    # Up to every bare worker's own rate limit, so the ramp ends at the path's limit.
    top = args.bare_max_rate * args.bare_workers
    bare_rates = args.bare_rates or ([10.0, top / 2, top * 0.8] if q else
                                     sorted(r for r in {10.0, 20.0, 30.0, 40.0, 60.0, 80.0, top * 0.6, top * 0.8, top}
                                            if r <= top))

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _terminate)
    tmp = Path(tempfile.mkdtemp(prefix="cc-sipload-"))
    started = time.monotonic()
    load0 = load_average()
    err.print(f"load average at start: {load0} ({os.cpu_count()} cores); files in {tmp}", highlight=False)
    full: list[Step] = []
    bare: list[Step] = []
    hold: list[Step] = []
    refs: list[dict[str, Any]] = []
    info: dict[str, Any] = {"talk_ms": args.talk_ms, "bare_max_rate": args.bare_max_rate, "front": args.front,
                            "bare_workers": args.bare_workers, "hold_legs": args.hold_legs,
                            "hold_conversations": hold_conversations(args), "hold_seconds": args.hold_seconds,
                            "step_seconds": args.step_seconds, "load0": load0}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                        transient=True)

    def report(step: Step) -> None:
        progress.console.print(line(step), highlight=False)

    interrupted = False
    error: str | None = None
    try:
        with progress:
            audio = write_audio(tmp / "audio")
            if not (args.skip_hold and args.skip_full):
                center = prepare_center(args, tmp, agents_needed(args, full_rates), progress, info)
                if not args.skip_hold:
                    hold_test(args, center, audio, progress, report, info, hold)
                if not args.skip_full:
                    full_flow(args, center, full_rates, progress, report, info, full)
            if not args.skip_bare:
                asyncio.run(bare_worker(args, tmp, bare_rates, progress, report, bare))
            if not args.skip_reference:
                reference(args, tmp, audio, progress, refs)
    except KeyboardInterrupt:
        interrupted = True
        err.print("[yellow]interrupted: stopping every process[/]")
    except Exception as exc:  # noqa: BLE001 - report what was measured, then the error
        error = f"{type(exc).__name__}: {exc}"
        err.print_exception(show_locals=False)
    finally:
        reaper.all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    console.print(table(hold + full + bare, info))
    top_full, top_bare = best(full), best(bare)
    hold_step = hold[0] if hold else None
    info["hold_step"] = hold_step
    cps_full = top_full.rate if top_full else 0.0
    cps_bare = top_bare.rate if top_bare else 0.0
    ratio = round(cps_full / cps_bare, 4) if cps_bare and full else None
    failed = sum(s.lost for s in hold + full + bare)

    def ceiling(steps: list[Step], top: Step | None) -> str:
        if top is not None and steps and steps[-1].passed:
            return " (the top of the ramp: the limit is higher)"
        failing = next((s for s in steps if not s.passed), None)
        return f" (failed at {failing.rate:g}/s)" if failing else ""

    # The figures of issue 15.
    idle = info.get("idle") or {}
    ref_by_mode = {r["mode"]: r for r in refs}
    bare_leg = ref_by_mode.get("worker", {}).get("cpu_per_leg_pct")
    bridged_leg = ref_by_mode.get("bridged", {}).get("cpu_per_leg_pct")
    worker_leg = hold_step.extra.get("cpu_per_leg") if hold_step else None
    ctl = control_step(full)
    loop = ctl.loop if ctl else None
    if ctl is not None and loop is None:
        info["loop_note"] = ("serve does not handle SIGUSR1 yet (no loop-health report)" if not info.get("usr1")
                             else "serve caught SIGUSR1 but logged no loop-health line")
    fig = {
        "worker_idle_cpu_pct": rounded(idle.get("per_worker")),
        "worker_idle_window_s": rounded(idle.get("window_s"), 1),
        "worker_cpu_per_leg_pct": rounded(worker_leg),
        "control_cpu_pct": rounded(ctl.extra.get("control_steady") if ctl else None, 2),
        "control_at_cps": ctl.rate if ctl else None,
        "loop_lag_p50_ms": rounded((loop or {}).get("p50_ms"), 2),
        "loop_lag_p99_ms": rounded((loop or {}).get("p99_ms"), 2),
        "loop_lag_max_ms": rounded((loop or {}).get("max_ms"), 2),
        "bare_pjsua_cpu_per_leg_pct": rounded(bare_leg),
        "bare_pjsua_default_cpu_per_leg_pct": rounded(ref_by_mode.get("default", {}).get("cpu_per_leg_pct")),
        "bare_pjsua_bridged_cpu_per_leg_pct": rounded(bridged_leg),
        "bare_pjsua_idle_cpu_pct": rounded(ref_by_mode.get("worker", {}).get("idle_cpu_pct")),
        "bare_pjsua_default_idle_cpu_pct": rounded(ref_by_mode.get("default", {}).get("idle_cpu_pct")),
        "layers_cpu_per_leg_pct": rounded(worker_leg - bare_leg) if worker_leg is not None and bare_leg is not None
        else None,
        "layers_bridged_cpu_per_leg_pct": rounded(worker_leg - bridged_leg)
        if worker_leg is not None and bridged_leg is not None else None,
    }
    peak = hold_step.peak_legs if hold_step else (top_full.peak_legs if top_full else 0)
    fig.update(cps_full_flow=cps_full, peak_legs=peak)
    console.print(figures_table(fig, info))

    if hold_step is not None:
        h = hold_step
        console.print(
            f"hold: {'held' if h.passed else 'did NOT hold'} {h.extra.get('target_legs')} legs "
            f"({h.calls} callers with their agents) for {args.hold_seconds:g} s with {h.workers} workers: "
            f"{h.extra.get('legs_mean', 0):.0f} live legs over {h.extra.get('window_s', 0):.0f} s, peak "
            f"{h.peak_legs} (records), {h.lost} failed; workers {sum(h.worker_cpu):.0f}% of a core in all, "
            f"{pct(worker_leg, 3)}% per leg above idle; control {pct(h.control_cpu)}%"
            + (f", loop lag p99 {pct(h.loop.get('p99_ms'))} ms" if h.loop else ""), highlight=False)
    if top_full:
        w = top_full.worker_cpu
        console.print(
            f"full flow: highest sustained {cps_full:g} calls/s{ceiling(full, top_full)} with {top_full.workers} "
            f"workers ({cps_full / top_full.workers:.3f}/s per worker), peak {top_full.peak_legs} legs, "
            f"{sum(w) / max(1, len(w)):.1f}% of a core per worker, control process {pct(top_full.control_cpu)}%"
            + (f", Kamailio {pct(top_full.front_cpu)}% and {pct(top_full.front_mb)} MB" if top_full.front_cpu is not None
               else "") + f"; {pct(top_full.worker_mb)} MB per worker (PSS)",
            highlight=False)
    elif full:
        console.print(f"full flow: no step sustained{ceiling(full, None)}", highlight=False)
    if ctl is not None:
        console.print(f"control process at {ctl.rate:g} calls/s (steady window {ctl.extra.get('steady_s', 0):.0f} s): "
                      f"{pct(ctl.extra.get('control_steady'))}% of a core; loop lag "
                      + (f"p50 {pct(loop.get('p50_ms'))} ms, p99 {pct(loop.get('p99_ms'))} ms, max "
                         f"{pct(loop.get('max_ms'))} ms over {loop.get('samples')} samples (its own CPU figure "
                         f"{pct(loop.get('cpu_pct'))}%)" if loop else f"not measured: {info.get('loop_note')}"),
                      highlight=False)
    if bare:
        console.print(
            f"bare: highest sustained {cps_bare:g} calls/s{ceiling(bare, top_bare)} with {args.bare_workers} worker(s)"
            + (" behind Kamailio" if args.front == "kamailio" else "")
            + (f", {top_bare.worker_cpu[0]:.1f}% of a core" if top_bare and top_bare.worker_cpu else "")
            + f"; ratio full/bare {ratio if ratio is not None else '—'}", highlight=False)
    if worker_leg is not None and bare_leg is not None:
        console.print(f"per leg: our worker {worker_leg:.3f}% of a core, bare pjsua2 with the same media settings "
                      f"{bare_leg:.3f}%: our layers cost {worker_leg - bare_leg:+.3f}% of a core per leg "
                      f"(against bare pjsua2 bridging the same way: "
                      f"{pct(fig['layers_bridged_cpu_per_leg_pct'], 3)}%; pjsua2's stock settings playing the WAV: "
                      f"{pct(fig['bare_pjsua_default_cpu_per_leg_pct'], 3)}%)",
                      highlight=False)
    console.print(f"load average: {load0} at start, {load_average()} at the end ({os.cpu_count()} cores); "
                  f"{time.monotonic() - started:.0f} s" + (" (interrupted)" if interrupted else ""), highlight=False)
    if error:
        console.print(f"[red]the bench stopped on an error:[/] {error}", highlight=False)
    if info.get("server_rc") not in (0, None):
        console.print(f"server exit code {info['server_rc']}; its last lines:\n{info.get('server_log', '')}",
                      highlight=False)
    out = {"front": args.front, "cps_full_flow": cps_full, "cps_bare": cps_bare, "ratio": ratio,
           "peak_legs": peak, "failed_calls": failed,
           "worker_cpu_pct": round(sum(top_full.worker_cpu) / len(top_full.worker_cpu), 2)
           if top_full and top_full.worker_cpu else None,
           "worker_mb": round(top_full.worker_mb, 1) if top_full and top_full.worker_mb else None,
           "front_cpu_pct": round(top_full.front_cpu, 2) if top_full and top_full.front_cpu is not None else None,
           "front_mb": round(top_full.front_mb, 1) if top_full and top_full.front_mb else None,
           "peak_legs_full_flow": top_full.peak_legs if top_full else 0,
           "hold_legs": args.hold_legs if hold_step else None,
           "hold_passed": hold_step.passed if hold_step else None,
           "hold_legs_held": rounded(hold_step.extra.get("legs_mean"), 1) if hold_step else None,
           "hold_seconds_held": rounded(hold_step.extra.get("window_s"), 1) if hold_step else None,
           "hold_failed_calls": hold_step.lost if hold_step else None,
           "hold_workers": hold_step.workers if hold_step else None,
           **{k: v for k, v in fig.items() if k not in ("cps_full_flow", "peak_legs")}}
    print(json.dumps(out), flush=True)
    return 130 if interrupted else 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
