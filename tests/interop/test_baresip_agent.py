"""A real softphone as an agent's phone in the whole center: baresip registers as agent 2001 at the front.

The center runs as in tests/front/test_center_phones.py (Kamailio front, a pjsua2 media worker,
``sip:2001@center`` as the agent's phone, its password set in the database while the server runs).
A second baresip is the caller: it dials the front's trunk address (127.0.0.1 is in
``trunk_allow``) without registering, hears the greeting, keys 1 (RFC 4733, baresip's only way)
and waits in the sales queue. The worker dials 2001 through the front; the agent's baresip answers
by itself. Both phones play a tone of their own and record what they receive, so each direction is
checked by energy and frequency: the agent must hear the caller's tone, and the caller, after the
IVR prompts, the agent's. The agent hangs up: the caller is hung up by the center and agent 2001
goes to wrap-up; the contact's row names 2001, answered, ended.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callcenter.core import telephony_protocol as p
from callcenter.db.agents import set_sip_password
from tests.front.front_support import LOOPBACK, REPO, free_block, running_center
from tests.front.test_front_sip import require_tools, tree_for
from tests.interop.baresip_phone import (
    BaresipPhone, tone_run, wav_energy, wav_frequency, wav_seconds, wav_windows, write_tone_wav,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real-sip"), pytest.mark.timeout(300)]

PASSWORD = "correct-horse-2001"  # no white space: baresip 1.0.0 would cut it (account params)
CALLER_TONE, AGENT_TONE = 440.0, 1000.0  # neither is a DTMF frequency, and G.711 keeps both
TALK_SECONDS = 5.0
ANI = "13912345678"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    """The IVR prompts of config/ivr.toml (espeak-ng), as tests/front/conftest.py records them."""
    folder = tmp_path_factory.mktemp("interop-prompts")
    result = subprocess.run(
        [sys.executable, "-m", "callcenter", "--config", str(LOOPBACK), "--set", f"ivr.prompts_dir={folder}",
         "--set", f"ivr.menu_file={REPO / 'config' / 'ivr.toml'}", "prompts", "build"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")},
    )
    assert result.returncode == 0, f"recording the prompts failed (espeak-ng installed?):\n{result.stderr[-2000:]}"
    return folder


def make_phone(tmp_path: Path, user: str, password: str, *, frequency: float, seconds: float, **kw) -> BaresipPhone:
    tone = write_tone_wav(tmp_path / f"{user}-{frequency:g}.wav", frequency, seconds=seconds)
    rtp = free_block(20, 46000, 48000)
    return BaresipPhone(user, password, sip_port=free_block(3, 18000, 19000), rtp_ports=(rtp, rtp + 19),
                        play_wav=tone, record_dir=tmp_path / f"rec-{user}", **kw)


async def wait_event(phone: BaresipPhone, *types: str, timeout: float, after: int = 0) -> dict:
    """``phone.wait_event`` off the event loop: the center runs in this loop and must keep going meanwhile."""
    return await asyncio.to_thread(phone.wait_event, *types, timeout=timeout, after=after)


def windows_text(path: Path) -> str:
    return " ".join(f"{t:.2f}s:{rms:.0f}/{hz:.0f}Hz" for t, rms, hz in wav_windows(path, 0.5))


async def test_baresip_agent_takes_a_call_through_the_center_and_goes_to_wrap_up(tmp_path, prompts):
    require_tools()
    started = time.monotonic()
    tree, _ = tree_for(tmp_path, prompts, agents=2)
    tree["agents"]["2001"]["phone"] = "sip:2001@center"
    tree["agents"]["2002"]["auto_login"] = False  # 2001 is the only agent: who gets the caller is clear
    tree["repair"] = {"sweep_seconds": 1.0, "grace_seconds": 1.0}
    for queue in tree["queues"].values():
        queue["wrapup_seconds"] = 60  # timed, but long enough to be seen whatever the machine's load
    async with running_center(tree, workers=1) as running:
        server, center = running.server, running.server.center
        front = running.address
        assert center.engine.agent_state("2001") == ("not_ready", "phone_offline")

        set_sip_password(server.db, "2001", "2001", "center", PASSWORD)  # the running server follows
        await running.wait_for(lambda: server.front._credentials.get("2001"), 10, "the new password at the front")

        with make_phone(tmp_path, "2001", PASSWORD, frequency=AGENT_TONE, seconds=120,
                        registrar=front, domain="center") as agent, \
             make_phone(tmp_path, ANI, "unused", frequency=CALLER_TONE, seconds=240,
                        domain="127.0.0.1", register=False) as caller:
            await asyncio.to_thread(agent.wait_registered, 15)
            await running.wait_for(lambda: center.engine.agent_state("2001") == ("available", None), 10,
                                   "agent 2001 ready once baresip registered")
            binding = next(iter(center.bindings["2001"].values()))
            assert binding.received == f"127.0.0.1:{agent.sip_port}", binding

            # the caller dials the trunk side of the front; the IVR answers (greeting, then the main menu)
            caller.dial(f"sip:4000@{front}")
            established = await wait_event(caller, "CALL_ESTABLISHED", timeout=30)
            assert established["direction"] == "outgoing", established
            [arrived] = running.of(p.CallArrived)
            assert arrived.ani == ANI and arrived.headers.get("X-Src-Addr") == f"127.0.0.1:{caller.sip_port}"
            # the greeting played to its end: the main menu is playing now, key 1 (sales)
            await running.wait_for(lambda: any(e.leg == arrived.leg and e.completed
                                               for e in running.of(p.PlaybackFinished)),
                                   30, "the greeting played to the caller")
            caller.send_dtmf("1")
            await running.wait_for(lambda: running.of(p.DigitReceived), 15, "the caller's key at the worker")
            assert [(e.leg, e.digit, e.method) for e in running.of(p.DigitReceived)] == [(arrived.leg, "1", "rfc4733")]
            assert "send DTMF digit: '1'" in caller.log_text()

            # the worker dials sip:2001@<front>; the front finds baresip where it registered; it answers
            offered = await wait_event(agent, "CALL_ESTABLISHED", timeout=60)
            assert offered["direction"] == "incoming", offered
            await running.wait_for(lambda: running.of(p.Bridged), 15, "caller and agent bridged")
            await running.wait_for(lambda: center.engine.agent_state("2001")[0] == "on_call", 10,
                                   "agent 2001 on the call")
            await asyncio.sleep(TALK_SECONDS)  # both tones flow through the worker's bridge

            closed_at = len(caller.events)
            agent.hangup()  # the agent's BYE goes through the front (Record-Route) to the worker
            await wait_event(agent, "CALL_CLOSED", timeout=15)
            await wait_event(caller, "CALL_CLOSED", timeout=20, after=closed_at)  # the center hangs up the caller
            await running.wait_for(lambda: center.engine.agent_state("2001")[0] == "wrap_up", 15,
                                   "agent 2001 in wrap-up after hanging up")
            wrap = center.engine.agent_wrap_up("2001")
            await running.wait_for(lambda: all(r.ended_at for r in running.rows()), 15, "the contact closed")
            rows = running.rows()
            assert [(r.agent_id, r.outcome, r.queue) for r in rows] == [("2001", "answered", "sales")], \
                [(r.agent_id, r.outcome, r.queue) for r in rows]
            [row] = rows
            assert row.answered_at is not None and row.ended_at is not None and row.ani.endswith(ANI[1:])
            assert row.talk_seconds and row.talk_seconds >= TALK_SECONDS - 0.5, row.talk_seconds
            assert center.engine.agent_state("2001")[0] == "wrap_up"  # still: 60 s of timed wrap-up

        # the phones have quit: their recordings are closed; each heard the other's tone
        [agent_heard] = agent.received_wav()
        [caller_heard] = caller.received_wav()
        heard = {
            "agent": (wav_seconds(agent_heard), wav_energy(agent_heard), wav_frequency(agent_heard),
                      tone_run(agent_heard, CALLER_TONE)),
            "caller": (wav_seconds(caller_heard), wav_energy(caller_heard), wav_frequency(caller_heard),
                       tone_run(caller_heard, AGENT_TONE)),
        }
        detail = (f"{heard}\nagent heard: {windows_text(agent_heard)}\ncaller heard: {windows_text(caller_heard)}\n"
                  f"wrap-up: {wrap}; took {time.monotonic() - started:.1f} s")
        print(detail)

        # the agent's call was the conversation only: the caller's tone, throughout
        seconds, energy, frequency, (_, run, run_rms) = heard["agent"]
        assert seconds > TALK_SECONDS - 1.5, detail
        assert energy > 3000 and abs(frequency - CALLER_TONE) < CALLER_TONE * 0.05, detail
        assert run > TALK_SECONDS - 1.5 and run_rms > 3000, detail
        # the caller heard the IVR first (speech), then the agent's tone until the end of the call
        seconds, _, _, (start, run, run_rms) = heard["caller"]
        assert run > TALK_SECONDS - 1.5 and run_rms > 3000, detail
        assert start + run > seconds - 1.5, detail  # the agent's tone is the end of what the caller heard
        assert tone_run(caller_heard, CALLER_TONE)[1] < 1.0, detail  # not its own tone echoed back
        assert tone_run(agent_heard, AGENT_TONE)[1] < 1.0, detail
