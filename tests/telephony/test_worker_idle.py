"""A media worker that costs nothing while idle: it sleeps, wakes for commands, and runs the
conference clock only while calls are up, without bringing back pjsua2's pitfalls.

Nothing here asserts on CPU time (the machine is shared). Idleness is checked by counting the
times the worker's threads wake up (voluntary context switches), which load does not inflate, and
by the threads that exist; the one latency bound (a command reaches an idle worker within 50 ms,
median of ten) is twenty times below the one-second wait it replaces.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest
from telephony_support import pcap, run_with_pool, write_tone

from callcenter.core import telephony_protocol as p

pytestmark = pytest.mark.slow

LINGER = ("--clock-linger", "0.2")


def caller_keys(ani: str = "13800138000") -> dict[str, str]:
    return {"ani": ani, "display": "Li Lei", "audio_pcap": pcap("g711a.pcap")}


def threads(pid: int) -> list[str]:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass  # a thread that just ended
    return names


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


async def until(check, timeout: float = 15.0, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        await asyncio.sleep(step)
    return check()


async def ping(h, n: int) -> p.Pong:
    sent = h.pool.send(p.Ping(id=f"idle-{n}"), worker="w1")
    return await h.expect(p.Pong, command_id=sent)


def test_an_idle_worker_sleeps_and_still_takes_commands_at_once():
    async def body(h):
        pid = h.pool.workers[0].pid
        await asyncio.sleep(2.0)
        names = threads(pid)
        assert "clock" not in names and "media" not in names, names  # no clock, no media poller
        before = wakeups(pid)
        await asyncio.sleep(5.0)
        woke = wakeups(pid) - before
        # One loop turn a second and the pool's ping every 5 s: about a dozen wake-ups in 5 s.
        # The old loop (10 ms polls, a media poller and a 20 ms clock) woke ~1,700 times.
        assert woke < 60, f"an idle worker woke {woke} times in 5 s"

        latencies = []
        for n in range(10):
            await asyncio.sleep(0.35)  # the loop is asleep again
            start = time.monotonic()
            await ping(h, n)
            latencies.append((time.monotonic() - start) * 1000)
        assert statistics.median(latencies) < 50, latencies

    run_with_pool(body, worker_args=LINGER)


def test_a_worker_that_never_had_a_call_answers_and_plays_and_its_clock_follows_the_calls(sipp, tmp_path):
    tone = write_tone(tmp_path / "tone.wav", 0.5, 440)

    async def call_and_play(h, n):
        caller = sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys(f"1380013800{n}"))
        leg = (await h.expect(p.CallArrived)).leg
        h.pool.send(p.AnswerCall(leg=leg))
        await h.expect(p.LegAnswered, leg=leg)
        assert "clock" in threads(h.pool.workers[0].pid)
        start = time.monotonic()
        play = h.pool.send(p.PlayPrompts(leg=leg, files=(str(tone),)))
        done = await h.expect(p.PlaybackFinished, playback=play)
        # The file ended because the clock pulled its 0.5 s through the bridge, not at once.
        assert done.completed and time.monotonic() - start >= 0.4
        h.pool.send(p.Hangup(leg=leg))
        await h.expect(p.LegEnded, leg=leg)
        assert await caller.finished() == 0, caller.report()

    async def body(h):
        pid = h.pool.workers[0].pid
        await asyncio.sleep(1.0)
        assert "clock" not in threads(pid)
        await call_and_play(h, 1)
        assert await until(lambda: "clock" not in threads(pid)), "the clock kept running with no call"
        await call_and_play(h, 2)  # and it starts again for the next call
        assert await until(lambda: "clock" not in threads(pid))

    run_with_pool(body, worker_args=LINGER)


def test_300_calls_in_sequence_leak_no_conference_port(sipp, tmp_path):
    """pjmedia removes a port only on a clock tick: stopping the clock early leaks ports (then 488)."""
    tone = write_tone(tmp_path / "tone.wav", 0.1, 660)
    calls = 300

    async def body(h):
        pid = h.pool.workers[0].pid
        baseline = (await ping(h, 0)).media_ports
        assert baseline is not None
        caller = sipp.start("caller_hold.xml", remote=h.port, calls=calls, rate=15, keys=caller_keys(),
                            extra=("-l", "2"), timeout=240)
        ended = 0
        n = 0
        loop = asyncio.get_running_loop()
        while ended < calls:
            ev = await h.expect(p.Event, timeout=30,
                                where=lambda e: isinstance(e, (p.CallArrived, p.LegAnswered, p.PlaybackFinished,
                                                               p.LegEnded, p.CallRefused)))
            if isinstance(ev, p.CallArrived):
                h.pool.send(p.AnswerCall(leg=ev.leg))
            elif isinstance(ev, p.LegAnswered):
                n += 1
                if n % 4 == 0:  # some calls hear a prompt, most hear nothing (the leaking case)
                    h.pool.send(p.PlayPrompts(leg=ev.leg, files=(str(tone),)))
                else:  # after a moment: SIPp takes a BYE only once its scenario waits for one
                    loop.call_later(0.3, h.pool.send, p.Hangup(leg=ev.leg))
            elif isinstance(ev, p.PlaybackFinished):
                h.pool.send(p.Hangup(leg=ev.leg))
            elif isinstance(ev, p.LegEnded):
                ended += 1
            else:
                raise AssertionError(f"a call was refused: {ev}")
        assert await caller.finished(timeout=60) == 0, caller.report()
        assert await until(lambda: "clock" not in threads(pid), timeout=20)
        assert (await ping(h, 1)).media_ports == baseline

        await asyncio.sleep(0.5)  # the clock is off: the next call must still get media and prompts
        last = sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys("13900000000"))
        leg = (await h.expect(p.CallArrived)).leg
        h.pool.send(p.AnswerCall(leg=leg))
        play = h.pool.send(p.PlayPrompts(leg=leg, files=(str(tone),)))
        assert (await h.expect(p.PlaybackFinished, playback=play)).completed
        h.pool.send(p.Hangup(leg=leg))
        await h.expect(p.LegEnded, leg=leg)
        assert await last.finished() == 0, last.report()

    run_with_pool(body, worker_args=LINGER, timeout=400)
