"""Load figures for one media worker (not a test; prints numbers).

    .venv/bin/python tests/telephony/bench_worker.py answer --rate 10 --calls 300 --hold-ms 200
    .venv/bin/python tests/telephony/bench_worker.py b2bua --rate 4 --calls 100 --hold-ms 300
    .venv/bin/python tests/telephony/bench_worker.py flood --rate 300 --calls 3000

``answer``: SIPp callers; the control side answers each call and plays a prompt; callers hang up
after ``--hold-ms``. ``b2bua``: each call also dials a SIPp agent phone and bridges the two legs
(and records them). ``flood``: INVITEs far above the rate limit; nothing is answered.
Prints SIPp's successful/failed counts, the worker's refusals, CPU seconds, RSS and open file
descriptors before and after (a leak shows as a growing count).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from telephony_support import Sipp, free_block, pcap, write_tone  # noqa: E402

from callcenter.core import telephony_protocol as p  # noqa: E402
from callcenter.telephony.pool import WorkerPool  # noqa: E402


def proc_stats(pid: int) -> tuple[float, int, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return cpu, rss, fds


def sipp_counts(run) -> tuple[int, int]:
    text = (run.workdir / "screen.log").read_text(errors="replace") if (run.workdir / "screen.log").exists() else ""
    ok = failed = 0
    for line in text.splitlines():
        if line.strip().startswith("Successful call"):
            ok = int(line.split("|")[2].split()[0])
        elif line.strip().startswith("Failed call"):
            failed = int(line.split("|")[2].split()[0])
    return ok, failed


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    prompt = write_tone(tmp / "prompt.wav", 1.0)
    base, rtp = free_block(1, align=1), free_block(80)
    pool = WorkerPool(1, base_port=base, rtp_start=rtp, max_rate=args.max_rate, legs=4)
    await pool.start()
    pid = pool.workers[0].pid
    cpu0, rss0, fds0 = proc_stats(pid)
    sipp = Sipp(tmp)
    keys = {"ani": "100", "display": "Bench", "audio_pcap": pcap("g711a.pcap"), "dtmf_pcap": pcap("dtmf_2833_1.pcap")}
    agent = None
    if args.mode == "b2bua":
        agent = sipp.start("agent_answer.xml", calls=args.calls, timeout=args.calls / args.rate + 120,
                           keys={"audio_pcap": pcap("dtmf_2833_1.pcap")})
    scenario = "caller_refused.xml" if args.mode == "flood" else "caller_talk.xml"
    started = time.monotonic()
    caller = sipp.start(scenario, remote=base, calls=args.calls, rate=args.rate, duration_ms=args.hold_ms,
                        timeout=args.calls / args.rate + 120, keys=keys, extra=("-l", str(args.limit)))
    counts: dict[str, int] = {}
    peers: dict[str, str] = {}
    n = 0
    while caller.proc.poll() is None or (agent is not None and agent.proc.poll() is None):
        try:
            ev = await asyncio.wait_for(pool.events.get(), 0.5)
        except asyncio.TimeoutError:
            if time.monotonic() - started > args.calls / args.rate + 180:
                break
            continue
        name = type(ev).__name__
        key = f"{name}:{ev.reason}" if isinstance(ev, (p.CallRefused, p.CommandFailed)) else name
        counts[key] = counts.get(key, 0) + 1
        if isinstance(ev, p.CallArrived) and args.mode != "flood":
            pool.send(p.AnswerCall(leg=ev.leg))
            if args.mode == "answer":
                pool.send(p.PlayPrompts(leg=ev.leg, files=(str(prompt),)))
            else:
                n += 1
                a = pool.dial(f"sip:agent@127.0.0.1:{agent.port}", peer=ev.leg, caller_id=ev.ani, timeout=10)
                peers[a], peers[ev.leg] = ev.leg, a
        elif isinstance(ev, p.LegAnswered) and ev.leg in peers and args.mode == "b2bua" and ev.leg.split("-")[-1].startswith("d"):
            pool.send(p.Bridge(a=peers[ev.leg], b=ev.leg))
            pool.send(p.StartRecording(conversation=f"c-{ev.leg}", legs=(peers[ev.leg], ev.leg),
                                       path=str(tmp / "rec" / f"{ev.leg}.wav")))
        elif isinstance(ev, (p.LegEnded, p.LegFailed)) and ev.leg in peers:
            other = peers.pop(ev.leg)
            peers.pop(other, None)
            pool.send(p.Hangup(leg=other))
    elapsed = time.monotonic() - started
    await asyncio.sleep(2.0)
    while not pool.events.empty():
        ev = pool.events.get_nowait()
        counts[type(ev).__name__] = counts.get(type(ev).__name__, 0) + 1
    cpu1, rss1, fds1 = proc_stats(pid)
    ok, failed = sipp_counts(caller)
    print(f"files: {tmp}" if args.keep else "", end="\n" if args.keep else "")
    print(f"mode={args.mode} rate={args.rate}/s calls={args.calls} hold={args.hold_ms}ms max_rate={args.max_rate}/s")
    print(f"  caller SIPp: successful={ok} failed={failed} rc={caller.proc.returncode} in {elapsed:.1f} s")
    if agent is not None:
        aok, afailed = sipp_counts(agent)
        print(f"  agent SIPp: successful={aok} failed={afailed} rc={agent.proc.returncode}")
    print(f"  worker alive={pool.workers[0].alive} pid_same={pool.workers[0].pid == pid} "
          f"cpu={cpu1 - cpu0:.2f}s ({100 * (cpu1 - cpu0) / elapsed:.1f}% of a core) "
          f"rss={rss0 / 2**20:.0f}->{rss1 / 2**20:.0f} MB fds={fds0}->{fds1}")
    print("  events:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    sipp.close()
    await pool.stop()
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO if os.environ.get("BENCH_VERBOSE") else logging.WARNING)
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("answer", "b2bua", "flood"))
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--hold-ms", type=int, default=200)
    ap.add_argument("--limit", type=int, default=50, help="SIPp's concurrent call limit (-l)")
    ap.add_argument("--max-rate", type=float, default=20.0)
    ap.add_argument("--keep", action="store_true", help="keep the SIPp logs and recordings (printed path)")
    asyncio.run(main(ap.parse_args()))
