"""Helpers for the telephony tests: free ports, SIPp runs, a pool harness that waits for events."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.core import telephony_protocol as p
from callcenter.telephony.pool import WorkerPool

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
PCAP_DIRS = (Path("/usr/share/sip-tester"),)
RFC4475 = Path(os.environ.get("CALLCENTER_TEST_RFC4475", Path(__file__).resolve().parents[1] / "data" / "rfc4475"))
SIPP = shutil.which("sipp") or "/usr/bin/sipp"

# Generous: the suite must pass on a loaded 2-core machine. Nothing asserts on timing.
EVENT_TIMEOUT = 20.0
TEST_TIMEOUT = 120.0


def require_sipp() -> str:
    if not os.path.exists(SIPP):
        raise AssertionError("SIPp is not installed: install Debian's sip-tester package (make test does)")
    return SIPP


def require_pjsua2() -> None:
    probe = subprocess.run([sys.executable, "-c", "import pjsua2"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise AssertionError(f"pjsua2 is not importable (pip install pjsua2-python): {probe.stderr.strip()[-300:]}")


def pcap(name: str) -> str:
    for folder in PCAP_DIRS:
        path = folder / name
        if path.exists():
            return str(path)
    raise AssertionError(f"SIPp's {name} not found in {', '.join(map(str, PCAP_DIRS))} (Debian sip-tester)")


# ------------------------------------------------------------------------------------- ports

_taken: set[int] = set()


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(size: int, low: int = 21000, high: int = 60000, align: int = 2) -> int:
    """First port of ``size`` consecutive UDP ports that are free now (randomised, never reused)."""
    for _ in range(400):
        base = random.randrange(low, high - size) // align * align
        ports = range(base, base + size)
        if any(x in _taken for x in ports):
            continue
        if all(_udp_free(x) for x in ports[:: max(1, size // 16)]) and _udp_free(base) and _udp_free(base + size - 1):
            _taken.update(ports)
            return base
    raise AssertionError("no free block of UDP ports found")


# --------------------------------------------------------------------------------------- SIPp

@dataclass
class SippRun:
    name: str
    proc: subprocess.Popen
    workdir: Path
    port: int

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"SIPp {self.name} still running after {timeout:.0f} s\n{self.report()}") from None

    async def finished(self, timeout: float = 60.0) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > end:
                self.kill()
                raise AssertionError(f"SIPp {self.name} still running after {timeout:.0f} s\n{self.report()}")
            await asyncio.sleep(0.1)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(5)

    def report(self) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*")):
            if path.suffix in (".log", ".txt") and path.stat().st_size:
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def logged(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.workdir.glob("*_logs.log"))


class Sipp:
    """Starts SIPp runs bounded by ``-m`` and ``-timeout``; kills whatever is left at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs: list[SippRun] = []
        self.count = 0

    def start(self, scenario: str, *, remote: int | None = None, calls: int = 1, rate: float | None = None,
              keys: dict[str, str] | None = None, service: str = "4000", timeout: float = 60.0,
              extra: tuple[str, ...] = (), duration_ms: int | None = None) -> SippRun:
        require_sipp()
        self.count += 1
        name = f"{self.count:02d}-{Path(scenario).stem}"
        workdir = self.tmp / f"sipp-{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_block(1, align=1)
        media = free_block(8)
        args = [
            SIPP, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
            "-mi", "127.0.0.1", "-mp", str(media), "-m", str(calls), "-timeout", f"{int(timeout)}s",
            "-nostdin", "-trace_err", "-error_file", str(workdir / "errors.log"),
            "-trace_logs", "-log_file", str(workdir / "scenario_logs.log"),
            "-trace_screen", "-screen_file", str(workdir / "screen.log"),
            "-s", service,
        ]
        if rate is not None:
            args += ["-r", f"{rate:g}"]
        if duration_ms is not None:
            args += ["-d", str(duration_ms)]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        args += list(extra)
        if remote is not None:
            args.append(f"127.0.0.1:{remote}")
        proc = subprocess.Popen(args, cwd=workdir, stdout=open(workdir / "stdout.txt", "wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        run = SippRun(name, proc, workdir, port)
        self.runs.append(run)
        return run

    def close(self) -> None:
        for run in self.runs:
            run.kill()


# ----------------------------------------------------------------------------------- the pool

@dataclass
class Harness:
    """A started pool plus helpers to wait for events; ``seen`` keeps every event received."""

    pool: WorkerPool
    seen: list[p.Event] = field(default_factory=list)
    pending: list[p.Event] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.pool.workers[0].port

    def port_of(self, worker: str) -> int:
        return next(w.port for w in self.pool.workers if w.name == worker)

    async def expect(self, kind: type[p.Event], timeout: float = EVENT_TIMEOUT, where=None, **match) -> p.Event:
        """The next event of ``kind`` whose fields equal ``match`` and that satisfies ``where``.

        Events that do not match are kept for later ``expect`` calls.
        """
        def fits(ev: p.Event) -> bool:
            return (isinstance(ev, kind) and all(getattr(ev, k) == v for k, v in match.items())
                    and (where is None or where(ev)))

        for i, ev in enumerate(self.pending):
            if fits(ev):
                return self.pending.pop(i)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {kind.__name__} {match} within {timeout:.0f} s; events so far:\n"
                    + "\n".join(map(repr, self.seen[-40:])) + self.logs())
            try:
                ev = await asyncio.wait_for(self.pool.events.get(), left)
            except asyncio.TimeoutError:
                continue
            self.seen.append(ev)
            if fits(ev):
                return ev
            self.pending.append(ev)

    async def settle(self, seconds: float) -> None:
        """Collect events for a while."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                ev = await asyncio.wait_for(self.pool.events.get(), left)
            except asyncio.TimeoutError:
                break
            self.seen.append(ev)
            self.pending.append(ev)

    def of(self, kind: type[p.Event]) -> list[p.Event]:
        return [ev for ev in self.seen if isinstance(ev, kind)]

    def logs(self) -> str:
        return "".join(f"\n--- stderr of {w.name}\n{self.pool.worker_log(w.name)[-4000:]}" for w in self.pool.workers)


def run_with_pool(body, *, workers: int = 1, legs: int = 4, timeout: float = TEST_TIMEOUT, **options) -> None:
    """Start a pool on free ports, run ``await body(harness)``, always stop the pool."""
    require_pjsua2()
    rtp_ports, rtp_gap = options.pop("rtp_ports", 64), options.pop("rtp_gap", 16)
    base_port = free_block(workers, align=1)
    rtp_start = free_block(workers * (rtp_ports + rtp_gap))
    options.setdefault("restart_backoff", (0.5, 5.0))

    async def main() -> None:
        pool = WorkerPool(workers, base_port=base_port, rtp_start=rtp_start, rtp_ports=rtp_ports,
                          rtp_gap=rtp_gap, legs=legs, **options)
        harness = Harness(pool)
        await pool.start(timeout=60)
        try:
            await asyncio.wait_for(body(harness), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"test body took more than {timeout:.0f} s; events:\n"
                                 + "\n".join(map(repr, harness.seen[-40:])) + harness.logs()) from None
        finally:
            await pool.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------------------- audio

def write_tone(path: Path, seconds: float = 0.6, hz: float = 440.0, rate: int = 8000) -> Path:
    """A mono 16-bit PCM WAV with a sine tone."""
    frames = int(seconds * rate)
    data = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(frames))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def wav_stats(path: Path) -> tuple[int, int, int]:
    """(frames, sample rate, peak absolute sample) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        frames, rate, width = w.getnframes(), w.getframerate(), w.getsampwidth()
        raw = w.readframes(frames)
    assert width == 2, f"expected 16-bit PCM, got {width * 8}-bit"
    samples = struct.unpack(f"<{len(raw) // 2}h", raw[: len(raw) // 2 * 2])
    return frames, rate, max((abs(s) for s in samples), default=0)


def send_udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload, ("127.0.0.1", port))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True
