"""The elastic pool with real workers: SIPp callers on loopback against a WorkerPool with ``sizing``.

It starts with the floor, grows when callers take legs, retires a worker idle for the (short) test
idle time after taking it out of service first, calls a retirement off when a call lands during the
grace period, starts a retired slot again under a new generation, and restarts a worker that crashed. No front here: the pool's
``on_retiring`` hook stands for it (tests/front has the same with Kamailio).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from telephony_support import pcap, process_alive, run_with_pool

from callcenter.core import telephony_protocol as p
from callcenter.telephony.sizing import SizingRules

pytestmark = pytest.mark.slow

RULES = SizingRules(spare_legs=4, idle_retire_seconds=2.0, lead_seconds=0.0)


def caller_keys(ani: str) -> dict[str, str]:
    return {"ani": ani, "display": f"Caller {ani}", "audio_pcap": pcap("g711a.pcap")}


def state(h, name: str) -> str:
    return next(w.state for w in h.pool.slots if w.name == name)


async def wait_until(h, condition, timeout: float, what: str) -> None:
    """Collects events (kept in ``h.seen``) until ``condition()`` holds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {h.pool.describe()}\n"
                                 + "\n".join(map(repr, h.seen[-30:])))
        await h.settle(0.1)


async def answered_caller(h, sipp, worker: str, ani: str):
    run = sipp.start("caller_hold.xml", remote=h.port_of(worker), keys=caller_keys(ani), timeout=90)
    leg = (await h.expect(p.CallArrived, worker=worker, ani=ani)).leg
    h.pool.send(p.AnswerCall(leg=leg))
    await h.expect(p.LegAnswered, leg=leg)
    return run, leg


def test_elastic_pool_starts_the_floor_grows_with_calls_and_retires_idle_workers(sipp):
    withdrawn: list[tuple[str, int, bool]] = []

    async def body(h):
        async def on_retiring(name: str) -> None:
            info = next(w for w in h.pool.slots if w.name == name)
            withdrawn.append((name, info.pid, process_alive(info.pid)))

        h.pool.on_retiring = on_retiring
        # The floor: 4 spare legs, one worker; the other slots stay stopped.
        assert [(w.name, w.state) for w in h.pool.workers] == [("w1", "running")]
        assert h.pool.describe() == "1 running, 3 stopped (elastic)"
        assert h.pool.free_legs() == 4 and h.pool.pick_worker() == "w1"

        # A caller takes two of w1's legs: w2 starts so that 4 stay free.
        first, leg1 = await answered_caller(h, sipp, "w1", "301")
        await h.expect(p.WorkerStarted, worker="w2")
        assert state(h, "w2") == "running" and state(h, "w3") == "stopped"
        # A second caller fills w1: w2's four legs are the floor, nothing more starts.
        second, leg2 = await answered_caller(h, sipp, "w1", "302")
        await h.settle(RULES.idle_retire_seconds + 1.5)
        assert state(h, "w3") == "stopped" and state(h, "w2") == "running", h.pool.describe()
        assert not withdrawn, "w2 is the floor while w1 is full: it must not retire"

        # Both callers leave: one worker is enough again, and the idle one goes (the last slot first).
        for leg in (leg1, leg2):
            h.pool.send(p.Hangup(leg=leg))
            await h.expect(p.LegEnded, leg=leg)
        old = next(w for w in h.pool.slots if w.name == "w2")
        await wait_until(h, lambda: state(h, "w2") == "stopped", 20, "w2 retired")
        assert withdrawn == [("w2", old.pid, True)], "out of service first, while still running"
        assert not process_alive(old.pid)
        assert [w.name for w in h.pool.workers] == ["w1"]
        assert not h.of(p.WorkerDied), "a retirement is no death"
        assert not [e for e in h.seen if isinstance(e, p.LegEnded) and e.cause == "shutdown"]
        await h.settle(RULES.idle_retire_seconds + 1)
        assert state(h, "w1") == "running", "the floor stays"
        for run in (first, second):
            assert await run.finished() == 0, run.report()

        # Calls again: the retired slot starts again, as a new generation with new leg ids.
        third, leg3 = await answered_caller(h, sipp, "w1", "303")
        await h.expect(p.WorkerStarted, worker="w2", where=lambda e: e.pid != old.pid)
        again = next(w for w in h.pool.slots if w.name == "w2")
        assert again.generation == old.generation + 1 and again.port == old.port and again.rtp_start == old.rtp_start
        fourth, leg4 = await answered_caller(h, sipp, "w2", "304")
        assert leg4.startswith(f"w2.{again.generation}-") and leg4 not in (leg1, leg2, leg3)
        for leg in (leg3, leg4):
            h.pool.send(p.Hangup(leg=leg))
            await h.expect(p.LegEnded, leg=leg)
        for run in (third, fourth):
            assert await run.finished() == 0, run.report()

    run_with_pool(body, workers=4, sizing=RULES, retire_grace=0.5, timeout=150)


def test_a_call_landing_on_a_retiring_worker_calls_the_retirement_off(sipp):
    async def body(h):
        h.pool.on_retiring = None
        first, leg1 = await answered_caller(h, sipp, "w1", "401")
        await h.expect(p.WorkerStarted, worker="w2")
        h.pool.send(p.Hangup(leg=leg1))
        await h.expect(p.LegEnded, leg=leg1)
        await wait_until(h, lambda: any(w.state == "retiring" for w in h.pool.workers), 20, "a retirement")
        name = next(w.name for w in h.pool.workers if w.state == "retiring")
        pid = next(w.pid for w in h.pool.workers if w.name == name)
        # While it retires it takes no new calls from the pool (the front no longer lists it) ...
        assert h.pool.free_legs(name) == 0 and h.pool.pick_worker() != name
        # ... but an INVITE already on its way lands, and the worker stays for it.
        late, leg = await answered_caller(h, sipp, name, "402")
        await wait_until(h, lambda: state(h, name) == "running", 5, "the retirement called off")
        await h.settle(4.0)  # longer than the grace period
        info = next(w for w in h.pool.workers if w.name == name)
        assert info.state == "running" and info.pid == pid and process_alive(pid)
        h.pool.send(p.Hangup(leg=leg))
        ended = await h.expect(p.LegEnded, leg=leg)
        assert ended.cause == "local", ended
        assert await late.finished() == 0, late.report()
        assert await first.finished() == 0, first.report()
        assert not h.of(p.WorkerDied)

    run_with_pool(body, workers=3, sizing=RULES, retire_grace=3.0, timeout=120)


def test_a_crashed_worker_of_an_elastic_pool_is_restarted_and_the_floor_kept_meanwhile(sipp):
    async def body(h):
        caller, leg = await answered_caller(h, sipp, "w1", "501")
        await h.expect(p.WorkerStarted, worker="w2")
        old = next(w for w in h.pool.workers if w.name == "w1")
        os.kill(old.pid, signal.SIGKILL)
        died = await h.expect(p.WorkerDied, worker="w1")
        assert died.legs == (leg,) and died.restarting
        # Back as a new generation, after the restart backoff; the floor was w2's meanwhile.
        await h.expect(p.WorkerStarted, worker="w1", timeout=30, where=lambda e: e.pid != old.pid)
        again = next(w for w in h.pool.workers if w.name == "w1")
        assert again.generation == old.generation + 1 and again.restarts == 1 and again.state == "running"
        caller.kill()
        # Idle again: one of the two retires; a retirement is no death.
        await wait_until(h, lambda: h.pool.describe() == "1 running, 2 stopped (elastic)", 30, "one worker left")
        assert len(h.of(p.WorkerDied)) == 1

    run_with_pool(body, workers=3, sizing=RULES, retire_grace=0.5, restart_backoff=(1.0, 5.0), timeout=120)
