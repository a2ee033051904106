"""Dead calls, leg listing and the lost-event hook, with real SIPp peers on loopback.

A far end that vanishes sends no BYE: the worker finds the call by its silence (no RTP for
``rtp_timeout``) or by an expired RFC 4028 session timer, hangs it up and reports why. Peers that
keep talking, or that hold the call (sendonly), are left alone. ``live_legs`` lists what every
worker holds; ``drop_next`` loses exactly one event on purpose.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import pytest
from telephony_support import free_block, pcap, run_with_pool

from callcenter.core import telephony_protocol as p
from callcenter.telephony.pool import FakeTelephony, WorkerPool

pytestmark = pytest.mark.slow

AUDIO = "g711a.pcap"  # SIPp's 7 s PCMA sample, played once


def caller_keys(ani="13800138000", display="Li Lei", **more):
    return {"ani": ani, "display": display, **more}


def pcma_stream(folder) -> str:
    """rtp_stream's argument: a raw PCMA file (2 s of silence, 0xD5) looped for ever, payload type 8."""
    path = folder / "silence.alaw"
    path.write_bytes(bytes([0xD5]) * 16000)
    return f"{path},-1,8"


async def answered(h, worker: str | None = None, **match) -> str:
    arrived = await h.expect(p.CallArrived, **({"worker": worker} if worker else {}), **match)
    h.pool.send(p.AnswerCall(leg=arrived.leg))
    await h.expect(p.LegAnswered, leg=arrived.leg)
    return arrived.leg


# ------------------------------------------------------------------------------ RTP inactivity

def test_a_peer_gone_silent_is_hung_up_after_the_rtp_timeout_and_a_talking_one_is_not(sipp, tmp_path):
    async def body(h):
        silent = sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys("101", audio_pcap=pcap(AUDIO)))
        gone = await answered(h, ani="101")
        talker = sipp.start("caller_stream.xml", remote=h.port, duration_ms=14000,
                            keys=caller_keys("102", caller_stream=pcma_stream(tmp_path)))
        talking = await answered(h, ani="102")

        ended = await h.expect(p.LegEnded, leg=gone, timeout=30)
        assert ended.cause == "rtp_timeout" and "no RTP" in ended.reason, ended
        assert ended.duration >= 8.5, ended  # 7 s of audio, then 3 s of silence: not cut while it talked
        assert await silent.finished() == 0, silent.report()  # it got the worker's BYE

        ended = await h.expect(p.LegEnded, leg=talking, timeout=30)
        assert ended.cause == "remote" and ended.duration >= 13, ended
        assert await talker.finished() == 0, talker.report()
        await h.expect(p.CapacityChanged, free_legs=4)

    run_with_pool(body, rtp_timeout=3)


def test_a_peer_that_holds_the_call_is_not_cut_for_its_silence(sipp):
    """sendonly from the far end: no RTP is due. Back to sendrecv, silence counts again."""

    async def body(h):
        caller = sipp.start("caller_holds_us.xml", remote=h.port, duration_ms=8000, keys=caller_keys("201"))
        leg = await answered(h, ani="201")
        ended = await h.expect(p.LegEnded, leg=leg, timeout=40)
        assert ended.cause == "rtp_timeout", ended
        assert ended.duration >= 10.5, ended  # 8 s on hold uncut, then 3 s of silence after it
        assert await caller.finished() == 0, caller.report()
        assert "RESUMED" in caller.logged()

    run_with_pool(body, rtp_timeout=3)


# ---------------------------------------------------------------------------- session timers

def test_an_expired_session_timer_ends_the_call(sipp):
    """pjsip's smallest session interval is 90 s, so this takes about 90 s.

    - the caller is the refresher and never refreshes: the worker ends the session 60 s in
      (90 − 90/3) with BYE, cause 408 "No session refresh received.";
    - the worker is the refresher: its re-INVITE at 45 s gets no answer, times out after 32 s
      (Timer B) and the worker ends the session with BYE, about 77 s in;
    - a caller that answers the refresh keeps its call until it hangs up itself.
    """

    async def body(h):
        lazy = sipp.start("caller_timer_deaf.xml", remote=h.port_of("w1"), timeout=150,
                          keys=caller_keys("301", refresher="uac"))
        lazy_leg = await answered(h, "w1", ani="301")
        deaf = sipp.start("caller_timer_deaf.xml", remote=h.port_of("w1"), timeout=150,
                          keys=caller_keys("302", refresher="uas"))
        deaf_leg = await answered(h, "w1", ani="302")
        fine = sipp.start("caller_timer_refresh.xml", remote=h.port_of("w2"), timeout=150, duration_ms=40000,
                          keys=caller_keys("303"))
        fine_leg = await answered(h, "w2", ani="303")

        ended = await h.expect(p.LegEnded, leg=lazy_leg, timeout=100)
        assert (ended.cause, ended.status) == ("session_timer", 408), ended
        assert "refresh" in ended.reason and 55 <= ended.duration <= 75, ended
        assert await lazy.finished(20) == 0, lazy.report()
        assert "SESSION-EXPIRES" in lazy.logged() and "REFRESH" not in lazy.logged()

        ended = await h.expect(p.LegEnded, leg=deaf_leg, timeout=60)
        assert ended.cause == "session_timer" and 70 <= ended.duration <= 95, ended
        assert await deaf.finished(20) == 0, deaf.report()
        assert "REFRESH" in deaf.logged()

        ended = await h.expect(p.LegEnded, leg=fine_leg, timeout=60)
        assert ended.cause == "remote" and ended.duration >= 80, ended
        assert await fine.finished(20) == 0, fine.report()

    run_with_pool(body, workers=2, rtp_timeout=0, session_expires=90, timeout=170)


# ------------------------------------------------------------------------------- leg listing

def test_live_legs_lists_every_leg_with_its_state(sipp):
    async def body(h):
        assert await h.pool.live_legs() == {"w1": {}, "w2": {}}
        caller = sipp.start("caller_hold.xml", remote=h.port_of("w1"), keys=caller_keys("401", audio_pcap=pcap(AUDIO)))
        leg = (await h.expect(p.CallArrived, ani="401")).leg
        assert await h.pool.live_legs() == {"w1": {leg: "incoming"}, "w2": {}}
        h.pool.send(p.AnswerCall(leg=leg))
        await h.expect(p.LegAnswered, leg=leg)

        ringing = sipp.start("agent_noanswer.xml")
        agent = h.pool.dial(f"sip:agent@127.0.0.1:{ringing.port}", peer=leg, timeout=60)
        await h.expect(p.LegRinging, leg=agent)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:  # takes INVITEs, never answers
            mute.bind(("127.0.0.1", free_block(1, align=1)))
            outbound = h.pool.dial(f"sip:customer@127.0.0.1:{mute.getsockname()[1]}", worker="w1", timeout=60)
            await asyncio.sleep(0.5)
            legs = await h.pool.live_legs()
            assert legs == {"w1": {leg: "confirmed", agent: "early", outbound: "calling"}, "w2": {}}, legs

            # A Ping of the control process's own still gets its Pong, with the listing.
            ping = h.pool.send(p.Ping(legs=True), worker="w1")
            pong = await h.expect(p.Pong, command_id=ping)
            assert pong.legs == legs["w1"]
            assert not [e for e in h.seen if isinstance(e, p.Pong) and e.command_id != ping]

            # A worker that does not answer in time: None, nothing guessed.
            w2 = next(w for w in h.pool.workers if w.name == "w2")
            os.kill(w2.pid, signal.SIGSTOP)
            try:
                legs = await h.pool.live_legs(timeout=0.5)
            finally:
                os.kill(w2.pid, signal.SIGCONT)
            assert legs["w2"] is None and agent in legs["w1"]

            for one in (outbound, agent, leg):
                h.pool.send(p.Hangup(leg=one))
            await h.expect(p.LegFailed, leg=outbound)
            await h.expect(p.LegFailed, leg=agent)
            await h.expect(p.LegEnded, leg=leg)
        assert await h.pool.live_legs() == {"w1": {}, "w2": {}}
        assert await caller.finished() == 0, caller.report()
        assert await ringing.finished() == 0, ringing.report()

    run_with_pool(body, workers=2)


# ----------------------------------------------------------------------------- drop_next hook

def test_drop_next_loses_exactly_one_event(sipp):
    async def body(h):
        runs = [sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys(ani, audio_pcap=pcap(AUDIO)))
                for ani in ("501", "502")]
        a = (await h.expect(p.CallArrived, ani="501")).leg
        b = (await h.expect(p.CallArrived, ani="502")).leg
        h.pool.drop_next(p.LegAnswered, leg=b)
        h.pool.send(p.AnswerCall(leg=a))
        h.pool.send(p.AnswerCall(leg=b))
        await h.expect(p.LegAnswered, leg=a)
        for _ in range(50):  # b's LegAnswered leaves the worker before a Pong that finds b confirmed
            if (await h.pool.live_legs())["w1"].get(b) == "confirmed":
                break
            await asyncio.sleep(0.1)
        await h.settle(0.3)
        assert not [e for e in h.seen if isinstance(e, p.LegAnswered) and e.leg == b]

        h.pool.drop_next(p.LegEnded)  # any leg: the first one to end
        h.pool.send(p.Hangup(leg=a))
        for _ in range(50):
            if a not in (await h.pool.live_legs())["w1"]:
                break
            await asyncio.sleep(0.1)
        assert h.pool.worker_of(a) is None  # the pool's own bookkeeping saw it
        h.pool.send(p.Hangup(leg=b))
        ended = await h.expect(p.LegEnded, leg=b)
        assert ended.cause == "local"
        assert [e.leg for e in h.of(p.LegEnded)] == [b]
        for run in runs:
            assert await run.finished() == 0, run.report()

    run_with_pool(body)


# ------------------------------------------------------------------------------- plain parts

def test_ping_legs_and_pong_legs_on_the_wire():
    ping = p.decode(p.encode(p.Ping(id="x", legs=True)))
    assert ping == p.Ping(id="x", legs=True) and p.decode(b'{"type":"Ping","id":"y"}').legs is False
    pong = p.decode(p.encode(p.Pong(worker="w1", command_id="x", legs={"w1.1-1": "confirmed"})))
    assert pong.legs == {"w1.1-1": "confirmed"}
    assert p.decode(b'{"type":"Pong","worker":"w1","command_id":"x"}').legs is None
    odd = p.decode(b'{"type":"Pong","worker":"w1","command_id":"x","legs":{"no leg!":"confirmed","w1.1-2":"early"}}')
    assert odd.legs == {"w1.1-2": "early"}  # events keep what they can, never raise on odd content


def test_pool_options_are_checked_and_reach_the_worker_command_line():
    pool = WorkerPool(1, rtp_timeout=12.5, session_expires=120)
    line = pool._command_line(pool._workers["w1"])
    assert line[line.index("--rtp-timeout") + 1] == "12.5" and line[line.index("--session-expires") + 1] == "120"
    line = WorkerPool(1)._command_line(WorkerPool(1)._workers["w1"])
    assert line[line.index("--rtp-timeout") + 1] == "30" and line[line.index("--session-expires") + 1] == "90"
    for bad in ({"session_expires": 60}, {"session_expires": -1}, {"rtp_timeout": -1}, {"rtp_timeout": 1e6}):
        with pytest.raises(ValueError):
            WorkerPool(1, **bad)
    WorkerPool(1, rtp_timeout=0, session_expires=0)  # both off


def test_fake_telephony_lists_legs_and_drops_one_event():
    async def main():
        fake = FakeTelephony(2)
        leg = fake.arrive()
        fake.leg_states[leg] = "incoming"
        assert await fake.live_legs() == {"w1": {leg: "incoming"}, "w2": {}}
        fake.silent.add("w2")
        assert (await fake.live_legs())["w2"] is None
        fake.drop_next(p.LegEnded, leg=leg)
        fake.inject(p.LegEnded(leg=leg, cause="remote"))
        fake.inject(p.LegEnded(worker="w1", leg="w1.1-99", cause="remote"))
        assert fake.worker_of(leg) is None and fake.events.qsize() == 2  # CallArrived and the second end

    asyncio.run(main())
