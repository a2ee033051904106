"""Running `callcenter serve` and SIPp peers on loopback for end-to-end tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "callcenter" / "scenarios"
AGENT_SCENARIOS = REPO / "tests" / "telephony" / "scenarios"
LOOPBACK = REPO / "config" / "loopback.toml"
DTMF = Path("/usr/share/sip-tester")
# The loopback center keeps agents in wrap-up until a disposition is saved; these servers' phones
# have nobody at a desk, so their agents wrap up for loopback.toml's wrapup_seconds instead.
TIMED_WRAP_UP = {f"queues.{queue}.after_call_work": "timed" for queue in tomllib.loads(LOOPBACK.read_text())["queues"]}


def sipp_binary() -> str:
    path = shutil.which("sipp")
    assert path, "SIPp is missing: make test installs it (apt-get install sip-tester)"
    return path


def dtmf_pcap(key: str) -> str:
    name = {"*": "star", "#": "pound"}.get(key, key)
    for folder in (DTMF,):
        path = folder / f"dtmf_2833_{name}.pcap"
        if path.exists():
            return str(path)
    raise AssertionError(f"no RFC 4733 pcap for {key!r}: install sip-tester")


def free_udp_port(span: int = 1) -> int:
    """A port whose next ``span`` - 1 neighbours are free too, for UDP and TCP."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span > 60000:
            continue
        try:
            for port in range(base, base + span):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port block")


@dataclass
class Server:
    """A `callcenter serve` subprocess on the loopback configuration."""

    workdir: Path
    port: int
    database_url: str
    prompts_dir: Path
    agent_ports: dict[str, int]
    workers: int = 1
    front: str = "auto"  # Kamailio in front when installed (make test installs it), as in production
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)

    def args(self) -> list[str]:
        sets = {
            "sip.port": str(self.port),
            "sip.front": self.front,
            "sip.worker_base_port": str(self.port + 1),  # behind the front; at most 2 workers (port + 3 is CTI)
            "sip.queue_log": str(self.workdir / "queue_log"),
            "ivr.prompts_dir": str(self.prompts_dir),
            "ivr.menu_file": str(REPO / "config" / "ivr.toml"),
            "cti.listen": f"ws://127.0.0.1:{self.port + 3}",
            "sip.rtp_port_start": str(20000 + (self.port % 40) * 240),
            "sip.rtp_port_end": str(20000 + (self.port % 40) * 240 + 239),
        }
        for agent, port in self.agent_ports.items():
            sets[f"agents.{agent}.phone"] = f"sip:{agent}@127.0.0.1:{port}"
        sets.update(TIMED_WRAP_UP)
        out = [sys.executable, "-m", "callcenter", "--config", str(LOOPBACK)]
        for key, value in sets.items():
            out += ["--set", f"{key}={value}"]
        return out + self.extra

    @property
    def worker_port(self) -> int:
        """The first media worker's port: behind the front, or the trunk port itself without one."""
        return self.port + 1 if self.front != "none" else self.port

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
        env["CALLCENTER_DATABASE__URL"] = self.database_url
        return env

    def run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.args(), *command], cwd=self.workdir, env=self.env(), capture_output=True,
                              text=True, timeout=timeout)

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [*self.args(), "serve", "--workers", str(self.workers), "--quiet"], cwd=self.workdir, env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.log.append(line)
                if "serving on" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.is_set():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the server did not start:\n" + "".join(self.log[-60:]))
            time.sleep(0.1)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("the server did not stop on SIGINT:\n" + "".join(self.log[-60:]))

    def text(self) -> str:
        return "".join(self.log)


@dataclass
class Sipp:
    """One SIPp run, bounded by ``-m`` and ``-timeout``."""

    proc: subprocess.Popen
    workdir: Path

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"SIPp did not finish in {timeout} s:\n{self.errors()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def errors(self) -> str:
        return "".join(p.read_text(errors="replace")[-3000:] for p in self.workdir.glob("*error*"))

    def stats(self) -> dict[str, int]:
        """Successful and failed call counts from SIPp's statistics file."""
        files = sorted(self.workdir.glob("*_.csv"))
        if not files:
            return {}
        lines = files[-1].read_text().strip().splitlines()
        header, last = lines[0].split(";"), lines[-1].split(";")
        row = dict(zip(header, last))
        return {"successful": int(row.get("SuccessfulCall(C)", 0)), "failed": int(row.get("FailedCall(C)", 0))}


def sipp(workdir: Path, scenario: Path, *, remote: int | None = None, port: int, calls: int, rate: float | None = None,
         limit: int | None = None, keys: dict[str, str] | None = None, service: str = "4000",
         timeout: float = 120, duration_ms: int | None = None) -> Sipp:
    workdir.mkdir(parents=True, exist_ok=True)
    media = free_udp_port(8)
    args = [sipp_binary(), "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
            "-mp", str(media), "-m", str(calls), "-timeout", f"{int(timeout)}s", "-nostdin", "-trace_err",
            "-trace_stat", "-fd", "1", "-s", service]
    if rate is not None:
        args += ["-r", f"{rate:g}"]
    if limit is not None:
        args += ["-l", str(limit)]
    if duration_ms is not None:
        args += ["-d", str(duration_ms)]
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    if remote is not None:
        args.append(f"127.0.0.1:{remote}")
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    return Sipp(proc, workdir)


async def until(predicate, timeout: float, what: str, explain=lambda: "", step: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` and ``explain()`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{explain()}")
        await asyncio.sleep(step)
