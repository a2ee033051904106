"""Agent phones registering at the SIP front with digest auth: what Kamailio spends on them.

    .venv/bin/python bench/register_bench.py --phones 1000 --rate 100
    .venv/bin/python bench/register_bench.py --phones 1000 --rate 100 --hold 40 --keepalive-interval 20

A :class:`KamailioFront` with phones (no workers behind it) is started in this process with HA1
credentials for ``--phones`` users (random passwords). One SIPp process plays every phone: users
and passwords come from a CSV injection file (``user;user;password`` per line), each call is one
phone's REGISTER, 401, REGISTER with credentials (SIPp's ``[authentication]``), at ``--rate``
registrations per second. The evapi listener counts the ``registered`` events. Kamailio's CPU is
utime + stime from /proc/PID/stat summed over all its processes (its process group), from just
before the first REGISTER to the last answer. With ``--hold`` the phones stay up that many seconds
more, answering the front's keep-alive OPTIONS (SIPp ``-aa``), and the CPU of that quiet period is
measured too. Then the whole location table is read back (``registrations()``) and timed.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenter.front import KamailioFront, PhoneEvent, PhonesPlan, ha1  # noqa: E402
from tests.front.front_support import free_block, require_kamailio, require_sipp  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[1] / "tests" / "front" / "scenarios" / "register_phone.xml"
TICK = os.sysconf("SC_CLK_TCK")
REALM = "center"


@dataclass
class Destination:
    """The one dispatcher entry a front needs; nothing listens there."""

    name: str
    address: str
    port: int
    alive: bool = True
    generation: int = 1


def cpu_seconds(pgid: int) -> float:
    """utime + stime of every process in Kamailio's process group."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def sipp_stats(folder: Path) -> dict[str, int]:
    files = sorted(folder.glob("*_.csv"))
    if not files:
        return {}
    lines = files[-1].read_text().strip().splitlines()
    row = dict(zip(lines[0].split(";"), lines[-1].split(";")))
    return {"successful": int(row.get("SuccessfulCall(C)", 0) or 0), "failed": int(row.get("FailedCall(C)", 0) or 0)}


async def run(args: argparse.Namespace) -> dict:
    require_kamailio()
    sipp = require_sipp()
    work = Path(tempfile.mkdtemp(prefix="register-bench-"))
    users = {str(100000 + n): secrets.token_urlsafe(12) for n in range(args.phones)}
    (work / "users.csv").write_text("SEQUENTIAL\n" + "".join(f"{u};{u};{p}\n" for u, p in users.items()))
    events: list[PhoneEvent] = []
    front_port, event_port, phone_port, dead_port = free_block(1, 15000, 17000), free_block(1, 15000, 17000), \
        free_block(1, 15000, 17000), free_block(1, 15000, 17000)
    front = KamailioFront(
        listen_address="127.0.0.1", port=front_port, workers=lambda: [Destination("w1", "127.0.0.1", dead_port)],
        pike_density=args.pike_density, children=args.children,
        phones=PhonesPlan(domain=REALM, event_port=event_port, keepalive_interval=args.keepalive_interval,
                          keepalive_timeout=max(args.keepalive_interval * 3, 60)),
        credentials={u: ha1(u, REALM, p) for u, p in users.items()}, on_phone_event=events.append,
        phone_sweep_interval=0)
    result: dict = {"phones": args.phones, "rate": args.rate, "children": args.children}
    await front.start()
    try:
        while not front.phone_events_connected:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        pgid = front.pid
        command = [sipp, "-sf", str(SCENARIO), "-inf", "users.csv", "-key", "domain", REALM, "-key", "contact_host",
                   "127.0.0.1", "-key", "contact_port", str(phone_port), "-key", "expires", "3600", "-key", "then",
                   "stay", "-d", str(int(args.hold * 1000)), "-aa", "-i", "127.0.0.1", "-p", str(phone_port),
                   "-m", str(args.phones), "-r", str(args.rate), "-l", str(args.phones), "-nostdin",
                   "-trace_stat", "-fd", "1", "-trace_err",
                   "-timeout", f"{int(args.phones / args.rate + args.hold + 60)}s",
                   "-max_recv_loops", "5000", "-max_sched_loops", "5000", f"127.0.0.1:{front_port}"]
        cpu0, t0 = cpu_seconds(pgid), time.monotonic()
        proc = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        # registration phase: until every phone has its answer (the 200 or a failure)
        while proc.poll() is None and len(events) < args.phones:
            await asyncio.sleep(0.05)
            if time.monotonic() - t0 > args.phones / args.rate + 60:
                break
        t_registered = time.monotonic()
        cpu1 = cpu_seconds(pgid)
        if args.hold > 0 and proc.poll() is None:
            await asyncio.sleep(max(0.0, args.hold - 2))  # the last phones leave args.hold s after they registered
            cpu2, t2 = cpu_seconds(pgid), time.monotonic()
            result["hold_seconds"] = round(t2 - t_registered, 1)
            result["hold_kamailio_cpu_s"] = round(cpu2 - cpu1, 2)
            result["hold_kamailio_cpu_pct"] = round(100 * (cpu2 - cpu1) / (t2 - t_registered), 2)
        try:
            proc.wait(timeout=args.hold + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await asyncio.sleep(1.0)  # the last events
        stats = sipp_stats(work)
        took = t_registered - t0
        read0 = time.monotonic()
        table = await front.registrations()
        result.update(
            registered=stats.get("successful", 0), failed=stats.get("failed", 0),
            seconds=round(took, 2), achieved_rate=round(len([e for e in events if e.kind == "registered"]) / took, 1),
            events_registered=len([e for e in events if e.kind == "registered"]),
            events_other=len([e for e in events if e.kind != "registered"]),
            kamailio_cpu_s=round(cpu1 - cpu0, 2), kamailio_cpu_pct=round(100 * (cpu1 - cpu0) / took, 2),
            cpu_ms_per_registration=round(1000 * (cpu1 - cpu0) / max(1, args.phones), 3),
            bindings_read=sum(len(b) for b in table.values()),
            registrations_read_s=round(time.monotonic() - read0, 2),
            auth_failed=front.counters.get("auth_failed", 0), flood_sources=front.counters["flood_sources"],
        )
        errors = sorted(work.glob("*_errors.log"))
        if errors and result["failed"]:
            print(errors[0].read_text(errors="replace")[-2000:], file=sys.stderr)
    finally:
        await front.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100, help="registrations per second")
    parser.add_argument("--hold", type=float, default=0, help="seconds the phones stay up answering keep-alives")
    parser.add_argument("--keepalive-interval", type=int, default=20)
    parser.add_argument("--children", type=int, default=4, help="Kamailio UDP worker processes")
    parser.add_argument("--pike-density", type=int, default=2000,
                        help="requests per 2 s from one address: all phones share SIPp's (2 REGISTERs each)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    labels = {
        "phones": "phones", "rate": "rate asked (reg/s)", "registered": "registered (SIPp 200)",
        "failed": "failures (SIPp)", "seconds": "time to register all (s)", "achieved_rate": "achieved (reg/s)",
        "events_registered": "'registered' events seen", "events_other": "other events seen",
        "kamailio_cpu_s": "Kamailio CPU (s)", "kamailio_cpu_pct": "Kamailio CPU (% of a core)",
        "cpu_ms_per_registration": "CPU per registration (ms)", "hold_seconds": "hold (s)",
        "hold_kamailio_cpu_s": "hold: Kamailio CPU (s)", "hold_kamailio_cpu_pct": "hold: Kamailio CPU (%)",
        "bindings_read": "bindings in registrations()", "registrations_read_s": "registrations() took (s)",
        "auth_failed": "auth failures counted", "flood_sources": "flood sources", "children": "Kamailio children",
    }
    for key, value in result.items():
        print(f"{labels.get(key, key):>30}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
