"""Real SIP on loopback: SIPp callers and agent phones against media workers run by a WorkerPool.

Every SIPp run is bounded by ``-m`` and ``-timeout`` and killed at teardown; every pool is
stopped even when a test fails. Timeouts are generous and nothing asserts on timing, so the
tests hold on a loaded two-core machine.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from telephony_support import pcap, run_with_pool, wav_stats, write_tone

from callcenter.core import telephony_protocol as p

pytestmark = pytest.mark.slow

DTMF_1 = "dtmf_2833_1.pcap"
AUDIO = "g711a.pcap"


def caller_keys(ani="13800138000", display="Li Lei", **more):
    keys = {"ani": ani, "display": display, "dtmf_pcap": pcap(DTMF_1), "audio_pcap": pcap(AUDIO)}
    keys.update(more)
    return keys


def test_caller_digits_rfc4733_and_info(sipp):
    """INVITE → CallArrived (ANI, name, DNIS, headers); RFC 4733 '1' and INFO '5' → DigitReceived; BYE."""

    async def body(h):
        caller = sipp.start("caller_dtmf.xml", remote=h.port, service="4001", keys=caller_keys())
        arrived = await h.expect(p.CallArrived)
        assert (arrived.ani, arrived.display_name, arrived.dnis) == ("13800138000", "Li Lei", "4001")
        assert arrived.headers.get("X-Campaign") == "spring"
        assert arrived.remote_address.startswith("127.0.0.1:")
        assert h.pool.worker_of(arrived.leg) == "w1"
        assert h.pool.free_legs("w1") == 2  # the caller and the slot held for its agent
        h.pool.send(p.AnswerCall(leg=arrived.leg))
        await h.expect(p.LegAnswered, leg=arrived.leg)
        digit = await h.expect(p.DigitReceived, leg=arrived.leg, method="rfc4733")
        assert digit.digit == "1"
        info = await h.expect(p.DigitReceived, leg=arrived.leg, method="info")
        assert info.digit == "5"
        ended = await h.expect(p.LegEnded, leg=arrived.leg)
        assert ended.cause == "remote"
        assert await caller.finished() == 0, caller.report()
        await h.expect(p.CapacityChanged, free_legs=4)
        assert len(h.of(p.DigitReceived)) == 2  # one event per digit, no duplicates

    run_with_pool(body)


def test_prompts_play_in_sequence_loop_and_stop(sipp, tmp_path):
    """PlayPrompts plays WAVs in order then PlaybackFinished; a loop runs until StopPlayback."""
    first = write_tone(tmp_path / "welcome.wav", 0.5, 440)
    second = write_tone(tmp_path / "menu.wav", 0.4, 660, rate=16000)

    async def body(h):
        caller = sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys())
        leg = (await h.expect(p.CallArrived)).leg
        # Prompts may be asked for before the media is up: they start when it is.
        h.pool.send(p.AnswerCall(leg=leg))
        play = h.pool.send(p.PlayPrompts(leg=leg, files=(str(first), str(second))))
        done = await h.expect(p.PlaybackFinished, playback=play)
        assert done.completed and done.leg == leg

        hold = h.pool.send(p.PlayPrompts(leg=leg, files=(str(first),), loop=True))
        await h.settle(1.5)  # a 0.5 s file, looping: it must still be playing
        assert not [e for e in h.of(p.PlaybackFinished) if e.playback == hold]
        h.pool.send(p.StopPlayback(leg=leg))
        stopped = await h.expect(p.PlaybackFinished, playback=hold)
        assert not stopped.completed

        bad = h.pool.send(p.PlayPrompts(leg=leg, files=(str(tmp_path / "missing.wav"),)))
        failed = await h.expect(p.CommandFailed, command_id=bad)
        assert "missing.wav" in failed.reason

        h.pool.send(p.Hangup(leg=leg))
        ended = await h.expect(p.LegEnded, leg=leg)
        assert ended.cause == "local" and ended.duration > 0
        assert await caller.finished() == 0, caller.report()

    run_with_pool(body)


def test_caller_bridged_to_agent_and_recorded(sipp, tmp_path):
    """Caller → worker → Dial agent (caller id shown) → Bridge + record → both hang up cleanly."""
    recording = tmp_path / "rec" / "conversation-1.wav"

    async def body(h):
        agent = sipp.start("agent_answer.xml", keys={"audio_pcap": pcap(AUDIO)})
        caller = sipp.start("caller_talk.xml", remote=h.port, duration_ms=4000,
                            keys=caller_keys(ani="+8613912345678", display="Han Meimei"))
        arrived = await h.expect(p.CallArrived)
        h.pool.send(p.AnswerCall(leg=arrived.leg))
        await h.expect(p.LegAnswered, leg=arrived.leg)

        agent_leg = h.pool.dial(f"sip:agent@127.0.0.1:{agent.port}", peer=arrived.leg,
                                caller_id=arrived.ani, display_name=arrived.display_name, timeout=20)
        assert h.pool.worker_of(agent_leg) == "w1"
        await h.expect(p.LegRinging, leg=agent_leg)
        await h.expect(p.LegAnswered, leg=agent_leg)
        assert h.pool.free_legs("w1") == 2  # the agent leg used the caller's reserved slot

        h.pool.send(p.Bridge(a=arrived.leg, b=agent_leg))
        await h.expect(p.Bridged, a=arrived.leg, b=agent_leg)
        # Hold and resume: the bridge comes apart and back together, no command fails.
        hold = h.pool.send(p.Unbridge(a=arrived.leg, b=agent_leg))
        h.pool.send(p.Bridge(a=arrived.leg, b=agent_leg))
        await h.expect(p.Bridged, a=arrived.leg, b=agent_leg)
        assert not [e for e in h.seen if isinstance(e, p.CommandFailed) and e.command_id == hold]
        h.pool.send(p.StartRecording(conversation="conv-1", legs=(arrived.leg, agent_leg), path=str(recording)))
        await h.expect(p.RecordingStarted, conversation="conv-1")

        ended = await h.expect(p.LegEnded, leg=arrived.leg, timeout=30)
        assert ended.cause == "remote"
        finished = await h.expect(p.RecordingFinished, conversation="conv-1")
        assert finished.path == str(recording) and finished.duration > 0
        h.pool.send(p.Hangup(leg=agent_leg))
        agent_end = await h.expect(p.LegEnded, leg=agent_leg)
        assert agent_end.cause == "local"

        assert await caller.finished() == 0, caller.report()
        assert await agent.finished() == 0, agent.report()
        shown = agent.logged()
        assert "+8613912345678" in shown and "Han Meimei" in shown, shown

    run_with_pool(body)
    frames, rate, peak = wav_stats(recording)
    assert frames > rate  # more than a second of conversation
    assert peak > 500  # and it is not silence


def test_agent_rings_out_then_agent_busy(sipp):
    """No answer within the Dial timeout → CANCEL, LegFailed 408; an agent rejecting → LegFailed 486.

    Each time the caller's reserved slot comes back, so the next agent can be dialled.
    """

    async def body(h):
        caller = sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys())
        leg = (await h.expect(p.CallArrived)).leg
        h.pool.send(p.AnswerCall(leg=leg))
        await h.expect(p.LegAnswered, leg=leg)

        ringing = sipp.start("agent_noanswer.xml")
        first = h.pool.dial(f"sip:agent1@127.0.0.1:{ringing.port}", peer=leg, caller_id="1", timeout=2)
        await h.expect(p.LegRinging, leg=first)
        failed = await h.expect(p.LegFailed, leg=first)
        assert failed.status == 408
        assert await ringing.finished() == 0, ringing.report()
        assert h.pool.worker_of(first) is None

        busy = sipp.start("agent_busy.xml")
        second = h.pool.dial(f"sip:agent2@127.0.0.1:{busy.port}", peer=leg, timeout=10)
        failed = await h.expect(p.LegFailed, leg=second)
        assert failed.status == 486
        assert await busy.finished() == 0, busy.report()
        await h.expect(p.CapacityChanged, free_legs=2)  # caller + its reservation again

        h.pool.send(p.Hangup(leg=leg))
        await h.expect(p.LegEnded, leg=leg)
        assert await caller.finished() == 0, caller.report()

    run_with_pool(body)


def test_third_caller_gets_503_because_agents_need_room(sipp):
    """legs=4: two callers hold four legs (their own + one each for an agent); the third gets 503."""

    async def body(h):
        callers, legs = [], []
        for n in range(2):
            callers.append(sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys(ani=f"10{n}")))
            arrived = await h.expect(p.CallArrived)
            h.pool.send(p.AnswerCall(leg=arrived.leg))
            await h.expect(p.LegAnswered, leg=arrived.leg)
            legs.append(arrived.leg)
        await h.expect(p.CapacityChanged, free_legs=0)
        assert h.pool.free_legs() == 0
        third = sipp.start("caller_refused.xml", remote=h.port, keys=caller_keys(ani="103"))
        refused = await h.expect(p.CallRefused)
        assert (refused.status, refused.reason, refused.ani) == (503, "no room", "103")
        assert await third.finished() == 0, third.report()  # 503 with a Retry-After header
        assert len(h.of(p.CallArrived)) == 2
        for leg in legs:
            h.pool.send(p.Hangup(leg=leg))
            await h.expect(p.LegEnded, leg=leg)
        for run in callers:
            assert await run.finished() == 0, run.report()

    run_with_pool(body)


def test_undecided_call_is_refused_after_the_decision_time(sipp):
    async def body(h):
        caller = sipp.start("caller_refused.xml", remote=h.port, keys=caller_keys())
        leg = (await h.expect(p.CallArrived)).leg
        ended = await h.expect(p.LegEnded, leg=leg)
        assert (ended.cause, ended.status) == ("timeout", 503)
        assert await caller.finished() == 0, caller.report()

    run_with_pool(body, decide_timeout=1.0)


def test_killed_worker_is_reported_and_restarted(sipp):
    """SIGKILL mid-call: WorkerDied lists the lost leg, the other worker's call goes on untouched,
    the worker comes back and takes a new call."""

    async def body(h):
        other = sipp.start("caller_hold.xml", remote=h.port_of("w1"), keys=caller_keys(ani="201"))
        kept = (await h.expect(p.CallArrived, worker="w1")).leg
        h.pool.send(p.AnswerCall(leg=kept))
        await h.expect(p.LegAnswered, leg=kept)

        victim = sipp.start("caller_hold.xml", remote=h.port_of("w2"), keys=caller_keys(ani="202"))
        lost = (await h.expect(p.CallArrived, worker="w2")).leg
        h.pool.send(p.AnswerCall(leg=lost))
        await h.expect(p.LegAnswered, leg=lost)

        old = next(w for w in h.pool.workers if w.name == "w2")
        os.kill(old.pid, signal.SIGKILL)
        died = await h.expect(p.WorkerDied, worker="w2")
        assert died.legs == (lost,) and died.returncode == -signal.SIGKILL
        assert h.pool.worker_of(lost) is None
        await h.expect(p.WorkerStarted, worker="w2", timeout=30, where=lambda e: e.pid != old.pid)
        new = next(w for w in h.pool.workers if w.name == "w2")
        assert new.pid != old.pid and new.generation == old.generation + 1 and new.restarts == 1
        victim.kill()

        again = sipp.start("caller_dtmf.xml", remote=h.port_of("w2"), keys=caller_keys(ani="203"))
        arrived = await h.expect(p.CallArrived, worker="w2", ani="203")
        assert arrived.leg != lost
        h.pool.send(p.AnswerCall(leg=arrived.leg))
        await h.expect(p.DigitReceived, leg=arrived.leg, digit="1")
        await h.expect(p.LegEnded, leg=arrived.leg)
        assert await again.finished() == 0, again.report()

        assert not [e for e in h.seen if isinstance(e, p.LegEnded) and e.leg == kept]
        h.pool.send(p.Hangup(leg=kept))
        await h.expect(p.LegEnded, leg=kept)
        assert await other.finished() == 0, other.report()

    run_with_pool(body, workers=2)


def test_cancel_never_answered_keeps_a_stack_slot_and_the_worker_copes(sipp):
    """pjsua reports a cancelled call disconnected at once but keeps its slot until the far end
    answers the CANCEL (or Timer B). A Dial that finds no slot fails cleanly and the worker stops
    counting that slot as free, instead of admitting callers it cannot serve."""

    async def body(h):
        deaf = sipp.start("agent_deaf.xml", timeout=90)
        first = h.pool.dial(f"sip:agent@127.0.0.1:{deaf.port}", worker="w1", timeout=1)
        await h.expect(p.LegFailed, leg=first)
        ringing = sipp.start("agent_noanswer.xml", calls=3, timeout=90)
        uri = f"sip:agent@127.0.0.1:{ringing.port}"
        a = h.pool.dial(uri, worker="w1")
        b = h.pool.dial(uri, peer=a)
        c = h.pool.dial(uri, worker="w1")
        d = h.pool.dial(uri, peer=c)
        failed = await h.expect(p.CommandFailed, leg=d)
        assert "no call slot" in failed.reason
        for leg in (a, b, c):
            await h.expect(p.LegRinging, leg=leg)
            h.pool.send(p.Hangup(leg=leg))
            await h.expect(p.LegFailed, leg=leg)
        await h.settle(0.5)
        assert h.pool.free_legs("w1") < 4  # the unseen slot stays out of the budget for a while
        assert h.pool.workers[0].alive
        assert await ringing.finished() == 0, ringing.report()

    run_with_pool(body)


def test_pool_stop_hangs_up_calls_cleanly(sipp):
    async def body(h):
        caller = sipp.start("caller_hold.xml", remote=h.port, keys=caller_keys())
        leg = (await h.expect(p.CallArrived)).leg
        h.pool.send(p.AnswerCall(leg=leg))
        await h.expect(p.LegAnswered, leg=leg)
        pid = h.pool.workers[0].pid
        # SIPp takes a BYE only once its scenario has moved from starting its audio to waiting for
        # the BYE; a BYE a millisecond after the ACK finds it between the two ("unexpected BYE").
        await asyncio.sleep(0.5)
        await h.pool.stop()
        ended = await h.expect(p.LegEnded, leg=leg, timeout=5)
        assert ended.cause == "shutdown"
        assert await caller.finished() == 0, caller.report()  # it got a BYE, not silence
        assert not h.of(p.WorkerDied)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    run_with_pool(body)


def test_sip_over_tcp_when_enabled(sipp):
    async def body(h):
        caller = sipp.start("caller_dtmf.xml", remote=h.port, keys=caller_keys(ani="700"), extra=("-t", "t1"))
        arrived = await h.expect(p.CallArrived, ani="700")
        h.pool.send(p.AnswerCall(leg=arrived.leg))
        await h.expect(p.DigitReceived, leg=arrived.leg, digit="1")
        await h.expect(p.DigitReceived, leg=arrived.leg, method="info")
        await h.expect(p.LegEnded, leg=arrived.leg)
        assert await caller.finished() == 0, caller.report()

    run_with_pool(body, worker_args=("--tcp",))
