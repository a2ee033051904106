"""Held load through the SIP front at one fixed rate and worker count: the figures of docs/capacity.md.

    .venv/bin/python bench/front_load.py flow --workers 28 --rate 2 --seconds 25 --talk-ms 30000
    .venv/bin/python bench/front_load.py flow --workers 60 --rate 10 --seconds 30 --talk-ms 2000
    .venv/bin/python bench/front_load.py short --workers 20 --rate 40 --seconds 30 --talk-ms 500

``flow``: SIPp callers at ``--rate`` for ``--seconds`` through Kamailio into the IVR; each keys 1
after 8 s of greeting, reaches the sales queue and an agent (all agents' phones are one SIPp UAS
that answers after 300 ms and waits for the BYE), talks ``--talk-ms`` and hangs up.
``short``: callers answered by the IVR who hang up after ``--talk-ms`` (no agent): the front and
the workers' call set-up rate.

The contact center (``bootstrap.Server``: Kamailio + workers + call flow + SQLite in a temporary
folder) runs in this process. Every 0.5 s it samples the legs in use (sum over the workers), and
at start and end the CPU time (utime + stime from /proc) and the proportional memory (Pss from
/proc/PID/smaps_rollup) of every worker, of Kamailio's processes and of this control process.
A run is clean when SIPp counts every call successful and answered (no 503), none failed, and
(``flow``) every caller's interaction row is ``answered``; a worker's own refusal
(``worker_refusals``) is an attempt the front then placed on another worker. Before the
callers start, 5 idle seconds give the idle CPU of a worker and of Kamailio. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.front.front_support import (  # noqa: E402
    AGENT_SCENARIOS, LOOPBACK, REPO, Sipps, caller_scenario, free_block, pcap, require_kamailio, require_pjsua2,
    require_sipp, running_center, settings_tree,
)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def group(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def build_prompts(folder: Path) -> None:
    if (folder / "moh.wav").exists():
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    subprocess.run([sys.executable, "-m", "callcenter", "--config", str(LOOPBACK), "--set", f"ivr.prompts_dir={folder}",
                    "prompts", "build"], cwd=REPO, env=env, check=True, capture_output=True, timeout=600)


async def run(args) -> dict:
    from callcenter.core import telephony_protocol as p

    require_kamailio(), require_sipp(), require_pjsua2()
    root = Path(tempfile.mkdtemp(prefix="cc-load-"))
    prompts = Path(args.prompts)
    build_prompts(prompts)
    calls = int(args.rate * args.seconds)
    agent_port = free_block(1)
    agents = args.agents or max(10, int(args.rate * (args.talk_ms / 1000 + 12)) + 10)
    tree = settings_tree(port=free_block(1), worker_base_port=free_block(args.workers + 2), prompts=prompts,
                         database_url=f"sqlite:///{root / 'cc.db'}", workdir=root,
                         agent_port=agent_port if args.mode == "flow" else None, agents=agents, rtp_start=10000,
                         front_pike_density=0)
    for queue in tree["queues"].values():
        queue["announce_every_seconds"] = 0
    sipps = Sipps(root / "sipp")
    samples: list[int] = []
    result: dict = {"mode": args.mode, "workers": args.workers, "rate": args.rate, "seconds": args.seconds,
                    "talk_ms": args.talk_ms, "calls": calls}
    try:
        async with running_center(tree, workers=args.workers) as center:
            me = os.getpid()
            worker_pids = [w.pid for w in center.pool.workers]
            kam = group(center.front.pid)
            idle_pss = {"worker": sum(pss_mb(p) for p in worker_pids) / len(worker_pids),
                        "kamailio": sum(pss_mb(p) for p in kam)}
            idle0 = (time.monotonic(), sum(cpu_seconds(p) for p in worker_pids), sum(cpu_seconds(p) for p in kam))
            await asyncio.sleep(5)
            idle1 = (time.monotonic(), sum(cpu_seconds(p) for p in worker_pids), sum(cpu_seconds(p) for p in kam))
            result["idle_cpu_pct"] = {
                "per_worker": round(100 * (idle1[1] - idle0[1]) / (idle1[0] - idle0[0]) / len(worker_pids), 2),
                "kamailio": round(100 * (idle1[2] - idle0[2]) / (idle1[0] - idle0[0]), 2),
            }
            cpu0 = {"workers": sum(cpu_seconds(p) for p in worker_pids), "kamailio": sum(cpu_seconds(p) for p in kam),
                    "control": cpu_seconds(me)}
            t0 = time.monotonic()
            if args.mode == "flow":
                phones = sipps.start("agents", AGENT_SCENARIOS / "agent_answer.xml", calls=calls, port=agent_port,
                                     keys={"audio_pcap": pcap("g711a.pcap")}, timeout=args.seconds + 200)
                scenario = caller_scenario(root / "caller.xml", hold_ms=args.talk_ms, key_after_ms=8000)
                keys = {"ani": "13912345678", "display": "Load", "key_pcap": pcap("dtmf_2833_1.pcap")}
            else:
                phones = None
                scenario = caller_scenario(root / "caller.xml", hold_ms=args.talk_ms)
                keys = {"ani": "13912345678", "display": "Load"}
            callers = sipps.start("callers", scenario, remote=center.address, calls=calls, rate=args.rate,
                                  keys=keys, timeout=args.seconds + 180)
            peak_pss = dict(idle_pss)
            peak_rss = 0.0
            window = (time.monotonic(), dict(cpu0))
            peak_window: dict = {}
            while callers.running:
                samples.append(sum(w.in_use for w in center.pool.workers))
                if len(samples) % 10 == 0:  # every 5 s: memory, and CPU over the last 5 s
                    peak_pss["worker"] = max(peak_pss["worker"],
                                             sum(pss_mb(p) for p in worker_pids) / len(worker_pids))
                    peak_pss["kamailio"] = max(peak_pss["kamailio"], sum(pss_mb(p) for p in group(center.front.pid)))
                    peak_rss = max(peak_rss, max(rss_mb(p) for p in worker_pids))
                    now = time.monotonic()
                    cpu = {"workers": sum(cpu_seconds(p) for p in worker_pids),
                           "kamailio": sum(cpu_seconds(p) for p in group(center.front.pid)), "control": cpu_seconds(me)}
                    pct = {k: round(100 * (cpu[k] - window[1][k]) / (now - window[0]), 1) for k in cpu}
                    if pct["workers"] > peak_window.get("workers", -1):
                        peak_window = {**pct, "legs": samples[-1], "machine_load": round(os.getloadavg()[0], 1)}
                    window = (now, cpu)
                await asyncio.sleep(0.5)
            elapsed = time.monotonic() - t0
            await asyncio.sleep(3)
            cpu1 = {"workers": sum(cpu_seconds(p) for p in worker_pids),
                    "kamailio": sum(cpu_seconds(p) for p in group(center.front.pid)), "control": cpu_seconds(me)}
            rows = center.rows()
            stats = callers.stats()
            result.update({
                "successful": stats.get("successful"), "failed": stats.get("failed"),
                "sipp_outcomes": dict(callers.outcomes()),
                "row_outcomes": dict(Counter(r.outcome for r in rows)),
                "peak_legs": max(samples, default=0),
                "elapsed_s": round(elapsed, 1),
                "cpu_pct_of_core": {k: round(100 * (cpu1[k] - cpu0[k]) / elapsed, 1) for k in cpu0},
                "cpu_pct_per_worker": round(100 * (cpu1["workers"] - cpu0["workers"]) / elapsed / args.workers, 2),
                "busiest_5s_cpu_pct": peak_window,
                "worker_rss_peak_mb": round(peak_rss, 1),
                "kamailio_cpu_ms_per_call": round(1000 * (cpu1["kamailio"] - cpu0["kamailio"]) / max(calls, 1), 2),
                "pss_mb": {"worker_idle": round(idle_pss["worker"], 1), "worker_peak": round(peak_pss["worker"], 1),
                           "kamailio_idle": round(idle_pss["kamailio"], 1),
                           "kamailio_peak": round(peak_pss["kamailio"], 1),
                           "control": round(pss_mb(me), 1)},
                "front": dict(center.front.counters),
                "center": dict(center.server.center.counters),
                "arrived_per_worker": sorted(center.arrived().values()),
                "worker_refusals": dict(Counter(e.reason for e in center.of(p.CallRefused) if e.worker != "front")),
                "worker_deaths": [(e.worker, e.returncode, len(e.legs)) for e in center.of(p.WorkerDied)],
                "load": os.getloadavg(),
            })
            # Clean: every caller answered (flow: and every caller's contact answered by an agent).
            answered = result["sipp_outcomes"].get("ANSWERED", 0)
            result["clean"] = bool(
                stats.get("failed") == 0 and stats.get("successful") == calls and answered == calls
                and (args.mode != "flow" or result["row_outcomes"].get("answered") == calls)
            )
            for died in center.of(p.WorkerDied):
                result.setdefault("worker_death_logs", {})[died.worker] = center.pool.worker_log(died.worker)[-1500:]
            if not result["clean"]:
                errors = [line for line in center.front.log_text().splitlines() if " ERROR:" in line]
                result["kamailio_errors"] = errors[-10:]
                result["sipp_errors"] = callers.report()[-3000:]
            if phones is not None:
                phones.kill()
    finally:
        sipps.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("flow", "short"))
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--talk-ms", type=int, default=5000)
    parser.add_argument("--agents", type=int, default=0)
    parser.add_argument("--prompts", default=str(Path(tempfile.gettempdir()) / "callcenter-load-prompts"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
