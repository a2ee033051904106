"""CTI abuse benchmark: does the server give memory back after floods of idle connections, bad requests and wrong PINs?

Run:  .venv/bin/python bench/cti_abuse.py [--rounds 3] [--idle 500] [--bad 200] [--logins 500] [--tracemalloc]
                                          [--check-every-pin]

Two processes: this one runs the real CTI server (with the contact center and SQLite, as in the
tests) under the production login policy; each round starts a child process (this script with
``--attack URL``) that opens ``--idle`` connections at once and holds them, sends bad frames over
``--bad`` connections (25 each: bad JSON, binary, oversized, unknown types, wrong field types,
requests before login) and fires ``--logins`` wrong-PIN logins in parallel (known and unknown
agent ids, one connection each). The attackers live in the child so only the server is measured.

After each round, once the connections are gone: the server's resident set size (from
``/proc/self/statm``), Python's traced memory (``--tracemalloc``, slower), and the server's own
per-connection structures (sessions, tasks, login-limiter keys) and threads. Memory that is
kept for good grows round after round; memory that is bounded levels off after the first.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


# ----------------------------------------------------------------------------- the attacker (child process)


def _bad_frames(rng: random.Random) -> list[str | bytes]:
    return [
        "{not json", b"\x00binary", "[1, 2]", json.dumps({"type": "teleport", "id": 1}),
        json.dumps({"type": "customer.get", "id": 2, "customer_id": "x" * 200}),
        json.dumps({"type": "call.dial", "id": 3, "number": {"a": [1] * 100}}),
        json.dumps({"type": "ping", "id": "x" * 500}),
        json.dumps({"type": "login", "id": 4, "agent_id": ["1001"], "pin": 1234, "protocol": "1"}),
        json.dumps({"type": "state.ready", "id": 5}),
        json.dumps({"type": "ping", "id": 6, "pad": "y" * 60_000}),
        "z" * 70_000,
        json.dumps({"type": "customer.get", "id": 7, "customer_id": rng.getrandbits(300)}),
    ]


async def _drain(ws, seconds: float) -> None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), seconds)
    except Exception:
        pass


async def attack(url: str, idle: int, bad: int, logins: int, seed: int) -> dict:
    from websockets.asyncio.client import connect

    rng = random.Random(seed)
    counts = {"idle_open": 0, "bad_frames": 0, "logins": 0, "replies": {}}

    async def opened():
        try:
            return await connect(url, open_timeout=20, max_size=2**20)
        except Exception:
            return None

    conns = [c for c in await asyncio.gather(*(opened() for _ in range(idle))) if c is not None]
    counts["idle_open"] = len(conns)
    await asyncio.sleep(1.0)
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    async def bad_requests():
        ws = await opened()
        if ws is None:
            return
        try:
            for frame in (_bad_frames(rng) * 3)[:25]:
                await ws.send(frame)
                counts["bad_frames"] += 1
            await _drain(ws, 0.5)
        except Exception:
            pass
        finally:
            await ws.close()

    for start in range(0, bad, 100):
        await asyncio.gather(*(bad_requests() for _ in range(min(100, bad - start))))

    async def wrong_login(n: int):
        ws = await opened()
        if ws is None:
            return
        agent = rng.choice(["1001", "1002", "1003", "9001"]) if n % 2 else f"x{rng.getrandbits(40):x}"
        try:
            await ws.recv()  # hello
            await ws.send(json.dumps({"type": "login", "id": n, "agent_id": agent, "pin": f"{rng.randrange(10**6):06d}",
                                      "protocol": 1}))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if reply.get("id") == n:
                    code = reply.get("code", "ok")
                    counts["replies"][code] = counts["replies"].get(code, 0) + 1
                    break
            counts["logins"] += 1
        except Exception:
            pass
        finally:
            await ws.close()

    await asyncio.gather(*(wrong_login(n) for n in range(logins)))
    return counts


# ----------------------------------------------------------------------------- the server (this process)


def figures(stack, label: str, t0: float) -> dict:
    server = stack.cti
    limiter = server.limiter
    row = {
        "at": label, "seconds": round(time.monotonic() - t0, 1), "rss_mib": round(rss_mib(), 1),
        "sessions": len(server._sessions), "tasks": len(server._tasks), "agents": len(server._agents),
        "limiter_keys": len(limiter._keys), "threads": threading.active_count(),
    }
    if tracemalloc.is_tracing():
        row["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
    trimmed = _trimmed_rss()
    if trimmed is not None:
        row["rss_if_trimmed_mib"] = trimmed
    return row


def _trimmed_rss() -> float | None:
    """RSS after glibc's ``malloc_trim(0)``: what is left is in use; the difference was free but kept by the allocator.

    Measured in a forked child, so the server's own figures are not changed by the measuring.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child has the parent's heap (copy on write): trimming it shows what is free
        os.close(read)
        libc.malloc_trim(0)
        os.write(write, f"{rss_mib():.1f}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        value = f.read()
    os.waitpid(pid, 0)
    return float(value) if value else None


async def serve(args: argparse.Namespace) -> None:
    from callcenter.cti.auth import LoginPolicy
    from tests.cti.cti_support import Stack

    if args.tracemalloc:
        tracemalloc.start()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        policy = LoginPolicy()
        if args.check_every_pin:  # every wrong PIN is checked: what the PIN checks alone cost
            policy = LoginPolicy(max_failures=10**6, max_failures_per_address=10**6, max_failures_per_connection=10**6)
        stack = Stack(Path(folder), policy=policy)
        await stack.start()
        await asyncio.sleep(0.5)
        gc.collect()
        rows = [figures(stack, "start", t0)]
        print(json.dumps(rows[-1]), flush=True)
        for round_ in range(1, args.rounds + 1):
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--attack", stack.url, "--idle", str(args.idle), "--bad", str(args.bad),
                "--logins", str(args.logins), "--seed", str(args.seed + round_), stdout=asyncio.subprocess.PIPE)
            out, _ = await child.communicate()
            await asyncio.sleep(args.settle)  # closing handshakes, senders, failure delays
            gc.collect()
            rows.append({**figures(stack, f"after round {round_}", t0), "attack": json.loads(out.decode().strip() or "{}")})
            print(json.dumps(rows[-1]), flush=True)
        await stack.stop()
    first, last = rows[0], rows[-1]
    print(json.dumps({"rss_start_mib": first["rss_mib"], "rss_after_round1_mib": rows[1]["rss_mib"] if len(rows) > 1 else None,
                      "rss_end_mib": last["rss_mib"], "growth_mib": round(last["rss_mib"] - first["rss_mib"], 1),
                      "sessions_end": last["sessions"], "tasks_end": last["tasks"],
                      "limiter_keys_end": last["limiter_keys"], "threads_end": last["threads"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=500, help="connections opened at once and held for a second")
    parser.add_argument("--bad", type=int, default=200, help="connections sending 25 bad frames each")
    parser.add_argument("--logins", type=int, default=500, help="wrong-PIN logins in parallel")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after a round before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--check-every-pin", action="store_true",
                        help="raise the login limits so that every wrong PIN is checked (scrypt, 16 MiB each)")
    parser.add_argument("--attack", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        print(json.dumps(asyncio.run(attack(args.attack, args.idle, args.bad, args.logins, args.seed))))
    else:
        import logging

        logging.basicConfig(level=logging.CRITICAL)
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
