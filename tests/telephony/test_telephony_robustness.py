"""Hostile input and failure: RFC 4475 torture messages, hostile display names, INVITE floods,
a vanished control process. A worker must survive all of them and still take a normal call."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from telephony_support import RFC4475, free_block, pcap, process_alive, require_pjsua2, run_with_pool, send_udp

from callcenter.core import telephony_protocol as p

pytestmark = pytest.mark.slow


def caller_keys(ani="13800138000", display="Li Lei"):
    return {"ani": ani, "display": display, "dtmf_pcap": pcap("dtmf_2833_1.pcap"), "audio_pcap": pcap("g711a.pcap")}


async def normal_call_works(h, sipp, ani="300"):
    """A plain call with a digit still goes through the worker."""
    caller = sipp.start("caller_dtmf.xml", remote=h.port, keys=caller_keys(ani=ani))
    arrived = await h.expect(p.CallArrived, ani=ani, timeout=30)
    h.pool.send(p.AnswerCall(leg=arrived.leg))
    await h.expect(p.DigitReceived, leg=arrived.leg, digit="1")
    await h.expect(p.LegEnded, leg=arrived.leg)
    assert await caller.finished() == 0, caller.report()


def assert_clean(event: p.CallArrived) -> None:
    for name in ("call_id", "ani", "dnis", "display_name", "from_uri", "to_uri", "remote_address"):
        value = getattr(event, name)
        assert isinstance(value, str)
        assert p.clean_text(value, 10_000) == value, f"{name} carries control characters: {value!r}"
    assert len(event.display_name) <= 128 and len(event.ani) <= 64 and len(event.dnis) <= 64
    assert len(event.headers) <= 16 and all(len(v) <= 256 for v in event.headers.values())


def torture_files():
    files = sorted(RFC4475.glob("*.dat")) + sorted((RFC4475 / "variants").glob("*.dat"))
    if len(files) < 50:
        raise AssertionError(f"RFC 4475 torture messages not found in {RFC4475} (set CALLCENTER_TEST_RFC4475)")
    return files


def test_rfc4475_torture_messages_do_not_hurt_the_worker(sipp):
    files = torture_files()

    async def body(h):
        pid = h.pool.workers[0].pid
        for path in files:
            send_udp(h.port, path.read_bytes())
            await asyncio.sleep(0.05)
            # Arrived calls are data like any other: check them and turn them away.
            for ev in [e for e in h.pending if isinstance(e, p.CallArrived)]:
                h.pending.remove(ev)
                assert_clean(ev)
                h.pool.send(p.RejectCall(leg=ev.leg, status=403))
            await h.settle(0.05)
        await h.settle(2.0)
        for ev in [e for e in h.pending if isinstance(e, p.CallArrived)]:
            h.pending.remove(ev)
            assert_clean(ev)
            h.pool.send(p.RejectCall(leg=ev.leg, status=403))
        await h.settle(1.0)
        assert process_alive(pid) and not h.of(p.WorkerDied)
        assert h.pool.workers[0].generation == 1
        await normal_call_works(h, sipp)

    run_with_pool(body)


def test_hostile_display_name_arrives_as_clipped_data(sipp):
    hostile = '<script>alert(1)</script> \\"O\'Brien\\" 李雷 🎧 ' + "x" * 400

    async def body(h):
        caller = sipp.start("caller_dtmf.xml", remote=h.port, keys=caller_keys(ani="400", display=hostile))
        arrived = await h.expect(p.CallArrived, ani="400")
        assert_clean(arrived)
        assert arrived.display_name.startswith('<script>alert(1)</script> "O\'Brien" 李雷 🎧 xxx')
        assert len(arrived.display_name) == 128
        h.pool.send(p.AnswerCall(leg=arrived.leg))
        await h.expect(p.LegEnded, leg=arrived.leg)
        assert await caller.finished() == 0, caller.report()

        # Raw INVITEs SIPp would not send: invalid UTF-8, a 3000-character name, control bytes.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(20)
            mine = sock.getsockname()[1]
            names = [b"\xff\xfe\xc3(bad utf-8\xe2\x82", b"A" * 3000, b"bell\x07 and \x1b[31mred\x1b[0m"]
            for n, name in enumerate(names):
                sock.sendto(raw_invite(h.port, mine, f"raw-{n}", b'"' + name + b'"'), ("127.0.0.1", h.port))
                arrived = await h.expect(p.CallArrived, call_id=f"raw-{n}@127.0.0.1")
                assert_clean(arrived)
                assert arrived.ani == "500"
                h.pool.send(p.RejectCall(leg=arrived.leg, status=403))
                ended = await h.expect(p.LegEnded, leg=arrived.leg)
                assert (ended.cause, ended.status) == ("rejected", 403)
                assert await asyncio.to_thread(final_status, sock, f"raw-{n}@127.0.0.1") == 403
        await normal_call_works(h, sipp)

    run_with_pool(body)


def raw_invite(port: int, mine: int, call_id: str, display: bytes) -> bytes:
    sdp = (b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    head = (
        f"INVITE sip:4000@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{mine};rport;branch=z9hG4bK{call_id}\r\n"
        f"From: DISPLAY <sip:500@127.0.0.1:{mine}>;tag=t{call_id}\r\n"
        f"To: <sip:4000@127.0.0.1:{port}>\r\n"
        f"Call-ID: {call_id}@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:500@127.0.0.1:{mine}>\r\nMax-Forwards: 70\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode()
    return head.replace(b"DISPLAY", display) + sdp


def test_invites_cut_at_the_packet_limit_sent_straight_to_a_worker_cost_at_most_a_restart(sipp):
    """INVITEs of 3,900-4,300 bytes sent to the worker's own port, past the front.

    The wheel reads at most 4,000 bytes of a message (``WORKER_MAX_PACKET``); the rest is cut. One
    length (about 4,160 bytes here) makes pjsip 2.15 abort on an assertion in its own response path
    (``pjsip_rx_data_free_cloned: Assertion `rdata' failed``): nothing in Python runs before it.
    The front answers such messages 513 and never forwards them (test_front_security.py); what is
    left to the worker is to come back: the pool restarts it and the next call goes through.
    """

    async def body(h):
        aborts = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            mine = sock.getsockname()[1]
            for size in range(3900, 4320, 10):
                pid = h.pool.workers[0].pid
                call_id = f"cut-{size}"
                bare = raw_invite(h.port, mine, call_id, b'"x"')
                sock.sendto(raw_invite(h.port, mine, call_id, b'"' + b"A" * max(1, size - len(bare) + 1) + b'"'),
                            ("127.0.0.1", h.port))
                await asyncio.sleep(0.3)
                for ev in [e for e in h.pending if isinstance(e, p.CallArrived)]:
                    h.pending.remove(ev)
                    assert_clean(ev)
                    h.pool.send(p.RejectCall(leg=ev.leg, status=403))
                if not process_alive(pid):  # wait for the restart before the next datagram
                    aborts += 1
                    deadline = time.monotonic() + 15
                    while not (h.pool.workers[0].alive and h.pool.workers[0].pid != pid):
                        assert time.monotonic() < deadline, "the worker was not restarted" + h.logs()
                        await h.settle(0.1)
        print(f"\ncut INVITEs straight at a worker: {aborts} abort(s), restarted each time")
        await h.settle(1.0)
        await normal_call_works(h, sipp, ani="301")

    run_with_pool(body)


def final_status(sock: socket.socket, call_id: str) -> int:
    """Read responses for ``call_id`` until a final one; ACK it; return its status."""
    while True:
        data, addr = sock.recvfrom(65536)
        text = data.decode("utf-8", "replace")
        if call_id not in text or not text.startswith("SIP/2.0 "):
            continue
        status = int(text.split(" ", 2)[1])
        if status >= 200:
            return status


def test_invite_flood_is_refused_without_killing_the_worker(sipp):
    """Far above the rate limit the worker answers 503 (or the stack 486) and stays up."""

    async def body(h):
        pid = h.pool.workers[0].pid
        flood = sipp.start("caller_refused.xml", remote=h.port, calls=600, rate=200, timeout=30, keys=caller_keys(),
                           extra=("-l", "200"))
        end = time.monotonic() + 40
        while flood.proc.poll() is None and time.monotonic() < end:
            await h.settle(0.2)
            for ev in [e for e in h.pending if isinstance(e, p.CallArrived)]:
                h.pending.remove(ev)
                h.pool.send(p.RejectCall(leg=ev.leg, status=503, retry_after=1))
        await flood.finished(timeout=30)
        await h.settle(1.0)
        for ev in [e for e in h.pending if isinstance(e, p.CallArrived)]:
            h.pool.send(p.RejectCall(leg=ev.leg, status=503))
        refused = [e for e in h.of(p.CallRefused) if e.reason == "rate limit"]
        assert refused, f"the flood should have hit the rate limit: {[type(e).__name__ for e in h.seen][:50]} {flood.report()[-3000:]}"
        assert process_alive(pid) and not h.of(p.WorkerDied)
        await h.settle(1.5)  # let the last held refusals go out
        await normal_call_works(h, sipp, ani="301")

    run_with_pool(body, max_rate=10)


def _start_worker(extra=()):
    require_pjsua2()
    port = free_block(1, align=1)
    rtp = free_block(64)
    return subprocess.Popen(
        [sys.executable, "-m", "callcenter.telephony.worker", "--port", str(port), "--rtp-start", str(rtp),
         "--rtp-end", str(rtp + 40), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )


def test_worker_exits_when_its_control_process_goes_away():
    proc = _start_worker()
    try:
        started = p.decode(proc.stdout.readline())
        assert isinstance(started, p.WorkerStarted) and started.legs == 4
        proc.stdin.write(p.encode(p.Ping(id="x1")))
        proc.stdin.flush()
        events = [p.decode(proc.stdout.readline()) for _ in range(2)]
        assert [e.command_id for e in events if isinstance(e, p.Pong) and e.worker == "w1"] == ["x1"]
        proc.stdin.write(b'{"type":"Nonsense"}\n{"type":"AnswerCall","id":"c9","leg":"w1-404"}\n')
        proc.stdin.flush()
        failures = [p.decode(proc.stdout.readline()) for _ in range(2)]
        assert all(isinstance(f, p.CommandFailed) for f in failures)
        assert failures[1].command_id == "c9" and "w1-404" in failures[1].reason
        proc.stdin.close()  # the control process is gone
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_worker_exits_when_its_parent_is_killed():
    require_pjsua2()
    port, rtp = free_block(1, align=1), free_block(64)
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         f"w = subprocess.Popen([sys.executable, '-m', 'callcenter.telephony.worker', '--port', '{port}',"
         f" '--rtp-start', '{rtp}', '--rtp-end', '{rtp + 40}'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
         "w.stdout.readline()\nprint(w.pid, flush=True)\ntime.sleep(300)\n"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        worker = int(parent.stdout.readline())
        assert process_alive(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        end = time.monotonic() + 20
        while process_alive(worker) and time.monotonic() < end:
            time.sleep(0.1)
        assert not process_alive(worker), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)


def test_worker_command_line():
    run = subprocess.run([sys.executable, "-m", "callcenter.telephony.worker", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "--rtp-start" in run.stdout
    run = subprocess.run([sys.executable, "-m", "callcenter.telephony.worker", "--port", "5999",
                          "--rtp-start", "30000", "--rtp-end", "30100", "--legs", "5"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "at most 4 calls" in run.stderr
