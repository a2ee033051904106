"""SIP load: SIPp callers through the SIP front, IVR -> queue -> SIPp agent phones at rising rates; and bare calls.

Run:  .venv/bin/python bench/sip_load.py [--quick] [--front auto|kamailio|none] [--workers N] [--talk-ms MS] [--keep]

Needs SIPp (Debian ``sip-tester``), pjsua2, espeak-ng (for the prompts) and, for the front, Kamailio,
like the end-to-end tests.

**Full flow.** For each step a ``callcenter serve --workers N`` on loopback, N sized for the step's
rate: a worker takes two callers, each holding its two legs for the IVR and the talk (about 11.6 s
with the default ``--talk-ms``), plus a quarter spare. With the front (``--front``, the default when
Kamailio is installed) callers send every INVITE to Kamailio's one address and it spreads them over
the workers (call-load dispatching); ``--front none`` makes SIPp spread them round-robin over the
workers' ports itself (``setdest`` from an injection file). The database (SQLite) and the prompts are
made once in a temporary folder; the configuration is derived from ``config/loopback.toml`` with as
many agents as the top rate needs, all reached on one SIPp UAS (``bench/scenarios/agent_phone.xml``:
rings 300 ms, answers, waits for the BYE). Callers are one SIPp run per step
(``bench/scenarios/caller_ivr.xml``, ACK and BYE along the record-routed path): they listen 8 s to
the greeting, key 1 (RFC 4733) in the main menu, reach the sales queue and an agent, and hang up
``--talk-ms`` after keying. Each step sends calls at one rate for ``--step-seconds`` and waits for
them to end; the ramp stops at the first step that is not clean. A step is *sustained* when SIPp
counts every caller successful and none failed, the agent phones count no failure, and every
caller's interaction row has outcome ``answered``.

**Bare.** ``--bare-workers`` media workers (``WorkerPool``, each at its highest rate limit, 50 new
calls/s), behind a ``KamailioFront`` when the front is used, driven from this process: each call is
answered and hung up as soon as it is answered (``bench/scenarios/caller_bare.xml`` waits for that
BYE). No IVR, no prompts, no agent: the limit of the SIP path as this project runs it. Rates rise
from 10/s up to 50/s per bare worker (``--bare-rates`` to choose), with the same 0-failure rule.

**Figures.** ``peak legs`` of a full-flow step comes from the database: every caller leg lives from
``arrived_at`` to ``ended_at`` and every agent leg from ``offered_at`` to ``ended_at``; the peak is the
largest overlap. It is checked against a live sample (every 0.5 s) of the sockets each worker holds
beyond its idle count, two (RTP and RTCP) per leg (``fd legs``). For the bare series it is the
largest sum of ``in_use`` (live legs) of the workers' ``CapacityChanged`` events. CPU comes from
``/proc/<pid>/stat`` (utime + stime) of the worker processes, Kamailio's processes, the control
process and the SIPp processes, before and after each step, as a percentage of one core over the
step; ``machine`` is the busy share of all cores from ``/proc/stat`` (other users of the machine
included). Memory is the largest PSS (``/proc/<pid>/smaps_rollup``) seen during the step: per
worker, and summed over Kamailio's processes (their shared memory counted once). The load average
is printed with the figures.

The last line is one JSON object: ``front``, ``cps_full_flow`` (highest sustained full-flow rate,
calls/s), ``cps_bare`` (the same for the bare series), ``ratio`` (full flow / bare, null when the
bare series sustained nothing), ``peak_legs`` (peak concurrent legs of the sustained full-flow
step), ``failed_calls`` (failed or unanswered calls over every step run, both series: the steps
that ended the ramps), and for the top sustained full-flow step ``worker_cpu_pct``, ``worker_mb``,
``front_cpu_pct`` and ``front_mb``.
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

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
LOOPBACK = REPO / "config" / "loopback.toml"
PCAPS = Path("/usr/share/sip-tester")
IVR_LISTEN_S = 8.0  # the caller's pause before keying, in caller_ivr.xml
WRAPUP_S = 2.0  # loopback.toml's queues.sales.wrapup_seconds
RTP_PER_WORKER = 80  # WorkerPool: 64 RTP ports and a gap of 16
TICK = os.sysconf("SC_CLK_TCK")

console = Console() if sys.stdout.isatty() else Console(width=170)
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


def free_block(size: int, low: int = 30000, high: int = 60000) -> int:
    """First of ``size`` consecutive ports free now for UDP and TCP, at a random place; not handed out
    again until released."""
    if size > 1000:
        low, high = 20000, 65000
    for _ in range(1000):
        base = random.randrange(low, high - size)
        ports = range(base, base + size)
        if any(p in _taken for p in ports):
            continue
        if all(_port_free(p) for p in ports):
            _taken.update(ports)
            return base
    raise RuntimeError(f"no block of {size} free ports between {low} and {high}")


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
    return SippRun(proc, workdir)


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
        sip.update(port=self.base_port, workers=workers, rtp_port_start=rtp_start,
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

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            reaper.kill(self.proc)


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


# ----------------------------------------------------------------------------- full flow

def workers_for(args, rate: float, holding: float) -> int:
    """Two callers per worker, each holding its two legs ``holding`` seconds, with a quarter spare."""
    return args.workers or max(2, math.ceil(rate * holding / 2 * 1.25))


def full_flow(args, tmp: Path, rates: list[float], progress: Progress, report, info: dict[str, Any],
              steps: list[Step]) -> None:
    top = max(rates)
    talk_s = args.talk_ms / 1000
    holding = IVR_LISTEN_S + talk_s + 0.6  # seconds a caller holds its worker's two legs
    agents = args.agents or max(5, math.ceil(top * (0.3 + talk_s + WRAPUP_S + 0.5) * 1.5) + 2)
    center = Center(tmp / "center", agents, free_block(1), front=args.front)
    info.update(agents=agents, holding_s=holding)
    setup = progress.add_task("full flow: prompts and database", total=2)
    center.run("prompts", "build")
    progress.advance(setup)
    center.run("db", "upgrade")
    progress.advance(setup)
    progress.remove_task(setup)
    for n, rate in enumerate(rates, 1):
        workers = workers_for(args, rate, holding)
        center.configure(workers)
        server = Server(center)
        task = progress.add_task(f"full flow {rate:g}/s: starting the server with {workers} workers", total=None)
        try:
            t0 = time.monotonic()
            try:
                server.start()
            except RuntimeError as exc:
                step = Step("full", rate, 0, workers=workers, notes=[f"! {exc}".splitlines()[0]])
                info["server_log"] = "".join(server.log[-30:])
                steps.append(step)
                report(step)
                break
            startup = time.monotonic() - t0
            time.sleep(1.0)
            pids = server.workers()
            if len(pids) != workers:
                raise RuntimeError(f"found {len(pids)} worker processes under the server, expected {workers}")
            front_pids = descendants(server.proc.pid, "kamailio") if args.front == "kamailio" else []
            if args.front == "kamailio" and not front_pids:
                raise RuntimeError("no Kamailio process under the server")
            idle = {p: open_sockets(p) for p in pids}
            quiet = CpuMark.take(pids)
            time.sleep(2.0)
            idle_cpu = cpu_percent(quiet, CpuMark.take(pids), pids)
            progress.remove_task(task)
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
            if sorted(server.workers()) != pids:
                step.notes.append("! a worker was restarted during the step")
            if server.proc.poll() is not None:
                step.notes.append(f"! the server exited (rc {server.proc.returncode})")
        finally:
            server.stop()
        if server.proc and server.proc.returncode not in (0, None):
            info["server_rc"] = server.proc.returncode
            info["server_log"] = "".join(server.log[-30:])
        steps.append(step)
        report(step)
        if not step.passed:
            break


def full_step(args, center: Center, server: Server, pids: list[int], front_pids: list[int], idle: dict[int, int],
              inf: Path, n: int, rate: float, holding: float, progress: Progress) -> Step:
    calls = max(2, round(rate * args.step_seconds))
    step = Step("full", rate, calls)
    ani = f"139{n:02d}{random.randrange(10**6):06d}"
    work = center.root / f"step{n}"
    expected = calls / rate + holding + 2
    limit = expected + 60
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
    while callers.running():
        caller_cpu = cpu_seconds(callers.proc.pid) or caller_cpu
        for pid in (*pids, *front_pids):
            memory[pid] = max(memory.get(pid, 0.0), pss_mb(pid) or 0.0)
        legs = sum(max(0, open_sockets(p) - idle.get(p, 0)) // 2 for p in pids)
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
    # Every row closed (the record writer is a thread of the server): at most 20 s.
    deadline = time.monotonic() + 20
    rows = db_rows(center.db_url, ani)
    while time.monotonic() < deadline and (len(rows) < calls or any(r[3] is None for r in rows)):
        time.sleep(0.5)
        rows = db_rows(center.db_url, ani)
    after = CpuMark.take(watched)
    step.load = load_average()
    progress.remove_task(task)
    step.seconds = after.at - before.at
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
    if len(rows) != calls:
        step.notes.append(f"{len(rows)} interaction rows for {calls} calls")
    arrivals = sorted(r[0] for r in rows)
    if len(arrivals) > 1:
        span = (arrivals[-1] - arrivals[0]).total_seconds()
        step.achieved = (len(arrivals) - 1) / span if span > 0 else None
        if step.achieved is not None and step.achieved < 0.9 * rate:
            step.notes.append(f"arrivals recorded at {step.achieved:.2f}/s only (the server or SIPp fell behind)")
    intervals = [(r[0], r[3]) for r in rows if r[3]]
    intervals += [(r[1], r[3]) for r in rows if r[1] and r[2] and r[3]]
    step.peak_legs = overlap_peak(intervals)
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
            step.notes.append(f"! worker died (rc {ev.returncode})")
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
    if refused:
        step.notes.append("refused: " + ", ".join(f"{k} x{v}" for k, v in sorted(refused.items())))
    if step.failed:
        step.notes.append(f"callers: {c.get('unexpected', 0)} unexpected responses "
                          f"({run.rejections() or 'none'}), {c.get('timeouts', 0)} timeouts")
    if c.get("retransmissions"):
        step.notes.append(f"{c['retransmissions']} SIP retransmissions")
    return step


# ----------------------------------------------------------------------------- output

def pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def table(steps: list[Step], info: dict[str, Any]) -> Table:
    t = Table(title="SIP load steps", title_justify="left")
    for name in ("series", "rate/s", "workers", "calls", "arrived/s", "SIPp ok/fail", "agent answered",
                 "peak legs db/fd",
                 "CPU/worker % (max)", "workers Σ %", "front %", "control %", "SIPp %", "machine %",
                 "PSS MB worker/front", "load 1m end", "result"):
        t.add_column(name, justify="left" if name in ("series", "result") else "right")
    for s in steps:
        w = s.worker_cpu
        t.add_row(s.series, f"{s.rate:g}", str(s.workers), str(s.calls),
                  "—" if s.achieved is None else f"{s.achieved:.2f}",
                  f"{s.ok}/{s.failed}", "—" if s.answered is None else f"{s.answered}/{s.calls}",
                  f"{s.peak_legs}/{s.peak_fd_legs}", f"{sum(w) / len(w):.1f} ({max(w):.1f})" if w else "—",
                  f"{sum(w):.1f}" if w else "—", pct(s.front_cpu), pct(s.control_cpu), f"{s.sipp_cpu:.1f}",
                  f"{s.machine:.0f}", f"{pct(s.worker_mb)}/{pct(s.front_mb)}",
                  s.load.split()[0] if s.load else "", "[green]ok[/]" if s.passed else "[red]FAIL[/]")
    notes = [f"{s.series} {s.rate:g}/s: " + "; ".join(n.lstrip("! ") for n in s.notes) for s in steps if s.notes]
    notes += [f"{s.series} {s.rate:g}/s outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items()))
              for s in steps if s.outcomes and set(s.outcomes) != {"answered"}]
    t.caption = "\n".join([
        f"SIP front: {info.get('front')}. "
        f"full flow: one server per step, workers sized for its rate (4 legs each), {info.get('agents')} agents "
        "on one SIPp phone, "
        f"callers talk until {info.get('talk_ms')} ms after keying "
        f"(each holds its worker ~{info.get('holding_s', 0):.1f} s); "
        f"bare: {info.get('bare_workers')} worker(s) answering and hanging up, rate limit "
        f"{info.get('bare_max_rate'):g}/s each. PSS: largest worker's, and Kamailio's processes summed.",
        f"CPU in % of one core over the step; machine = busy share of all {os.cpu_count()} cores, "
        "other users included.",
        *notes])
    t.caption_justify = "left"
    return t


def line(step: Step) -> str:
    w = step.worker_cpu
    cpu = f"workers {sum(w):.0f}% ({sum(w) / len(w):.1f}%/worker)" if w else ""
    ans = "" if step.answered is None else f", {step.answered}/{step.calls} answered by agents"
    return (f"{'✓' if step.passed else '✗'} {step.series} {step.rate:g}/s: {step.ok}/{step.calls} ok, "
            f"{step.failed} failed{ans}, peak legs {step.peak_legs}/{step.peak_fd_legs} (db/fd), {cpu}"
            + ("" if step.front_cpu is None else f", Kamailio {step.front_cpu:.1f}%")
            + ("" if step.control_cpu is None else f", control {step.control_cpu:.1f}%")
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter steps (about 3 minutes)")
    ap.add_argument("--full-rates", type=rates_of, help="full-flow rates in calls/s (default 1,2,4,6,8,10,12; "
                                                        "quick 2,4,8)")
    ap.add_argument("--bare-rates", type=rates_of, help="bare rates (default 10,20,30,40,45,50 and on up to 50/s per bare worker; quick 3 steps)")
    ap.add_argument("--step-seconds", type=float, help="seconds of full-flow arrivals per step (default 30; quick 15)")
    ap.add_argument("--bare-seconds", type=float, help="seconds of bare-worker arrivals per step (default 12; quick 8)")
    ap.add_argument("--talk-ms", type=int, default=3000, help="caller stays on this long after keying (queue + talk)")
    ap.add_argument("--workers", type=int,
                    help="media workers for every step (default: sized for each step's rate, 2 callers each)")
    ap.add_argument("--agents", type=int, help="agents (default: enough for the top rate)")
    ap.add_argument("--bare-max-rate", type=float, default=50.0, help="each bare worker's rate limit (at most 50)")
    ap.add_argument("--bare-workers", type=int, help="workers in the bare series (default 2 behind the front, else 1)")
    ap.add_argument("--front", choices=("auto", "kamailio", "none"), default="auto",
                    help="callers reach Kamailio in front of the workers (auto: when installed), or the workers")
    ap.add_argument("--skip-full", action="store_true", help="only the bare worker")
    ap.add_argument("--skip-bare", action="store_true", help="only the full flow")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (SIPp logs, database)")
    args = ap.parse_args()
    full_rates = args.full_rates or ([2.0, 4.0, 8.0] if args.quick else [1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0])
    args.step_seconds = args.step_seconds or (15 if args.quick else 30)
    args.bare_seconds = args.bare_seconds or (8 if args.quick else 12)
    sipp_binary()
    from callcenter.front import resolve_front

    args.front = resolve_front(args.front)
    args.bare_workers = args.bare_workers or (2 if args.front == "kamailio" else 1)
    # Up to every bare worker's own rate limit (50/s each), so the ramp ends at the path's limit.
    top = 50.0 * args.bare_workers
    bare_rates = args.bare_rates or ([10.0, top / 2, top * 0.8] if args.quick else
                                     sorted({10.0, 20.0, 30.0, 40.0, 45.0, 50.0, top * 0.6, top * 0.8, top}))

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _terminate)
    tmp = Path(tempfile.mkdtemp(prefix="cc-sipload-"))
    started = time.monotonic()
    load0 = load_average()
    err.print(f"load average at start: {load0} ({os.cpu_count()} cores); files in {tmp}", highlight=False)
    full: list[Step] = []
    bare: list[Step] = []
    info: dict[str, Any] = {"talk_ms": args.talk_ms, "bare_max_rate": args.bare_max_rate, "front": args.front,
                            "bare_workers": args.bare_workers}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                        transient=True)

    def report(step: Step) -> None:
        progress.console.print(line(step), highlight=False)

    interrupted = False
    error: str | None = None
    try:
        with progress:
            if not args.skip_full:
                full_flow(args, tmp, full_rates, progress, report, info, full)
            if not args.skip_bare:
                asyncio.run(bare_worker(args, tmp, bare_rates, progress, report, bare))
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

    console.print(table(full + bare, info))
    top_full, top_bare = best(full), best(bare)
    cps_full = top_full.rate if top_full else 0.0
    cps_bare = top_bare.rate if top_bare else 0.0
    ratio = round(cps_full / cps_bare, 4) if cps_bare and full else None
    failed = sum(s.lost for s in full + bare)
    def ceiling(steps: list[Step], top: Step | None) -> str:
        if top is not None and steps and steps[-1].passed:
            return " (the top of the ramp: the limit is higher)"
        failing = next((s for s in steps if not s.passed), None)
        return f" (failed at {failing.rate:g}/s)" if failing else ""

    if top_full:
        w = top_full.worker_cpu
        console.print(
            f"full flow: highest sustained {cps_full:g} calls/s{ceiling(full, top_full)} with {top_full.workers} "
            f"workers ({cps_full / top_full.workers:.3f}/s per worker), peak {top_full.peak_legs} legs, "
            f"{sum(w) / max(1, len(w)):.1f}% of a core per worker, control process {pct(top_full.control_cpu)}%"
            + (f", Kamailio {pct(top_full.front_cpu)}% and {pct(top_full.front_mb)} MB" if top_full.front_cpu is not None
               else "") + f"; {pct(top_full.worker_mb)} MB per worker (PSS)",
            highlight=False)
    else:
        console.print(f"full flow: no step sustained{ceiling(full, None)}", highlight=False)
    console.print(
        f"bare: highest sustained {cps_bare:g} calls/s{ceiling(bare, top_bare)} with {args.bare_workers} worker(s)"
        + (" behind Kamailio" if args.front == "kamailio" else "")
        + (f", {top_bare.worker_cpu[0]:.1f}% of a core" if top_bare and top_bare.worker_cpu else "")
        + f"; ratio full/bare {ratio if ratio is not None else '—'}", highlight=False)
    console.print(f"load average: {load0} at start, {load_average()} at the end ({os.cpu_count()} cores); "
                  f"{time.monotonic() - started:.0f} s" + (" (interrupted)" if interrupted else ""), highlight=False)
    if error:
        console.print(f"[red]the bench stopped on an error:[/] {error}", highlight=False)
    if info.get("server_rc") not in (0, None):
        console.print(f"server exit code {info['server_rc']}; its last lines:\n{info.get('server_log', '')}",
                      highlight=False)
    print(json.dumps({"front": args.front, "cps_full_flow": cps_full, "cps_bare": cps_bare, "ratio": ratio,
                      "peak_legs": top_full.peak_legs if top_full else 0, "failed_calls": failed,
                      "worker_cpu_pct": round(sum(top_full.worker_cpu) / len(top_full.worker_cpu), 2)
                      if top_full and top_full.worker_cpu else None,
                      "worker_mb": round(top_full.worker_mb, 1) if top_full and top_full.worker_mb else None,
                      "front_cpu_pct": round(top_full.front_cpu, 2) if top_full and top_full.front_cpu is not None
                      else None,
                      "front_mb": round(top_full.front_mb, 1) if top_full and top_full.front_mb else None}), flush=True)
    return 130 if interrupted else 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
