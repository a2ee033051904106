"""Attacks on the SIP front, through the real thing: Kamailio generated and supervised by the
contact center, pjsua2 workers behind it, SIPp callers.

- forged reports: text in a message Kamailio cannot parse must never count as one of its reports;
- hostile bytes: nothing from the network reaches the server's log unescaped or unbounded;
- oversize INVITEs: answered 513 at once by the front, never offered to a worker;
- shutdown: the workers' BYEs still pass the front, and no run folder is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from callcenter.front.plan import LATE_OFFER_EXTRA, MAX_MESSAGE, TAG_ALLOWANCE, WORKER_MAX_PACKET
from callcenter.core import telephony_protocol as p
from tests.front.front_support import (
    AGENT_SCENARIOS, LOOPBACK, REPO, RFC4475, caller_scenario, free_block, pcap, process_alive, running_center,
)
from tests.front.test_front_sip import CALLER_KEYS, plain_callers, require_tools, tree_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

STRANGER = "127.0.0.2"  # loopback answers any 127.x source: a second host without a second machine


class LogCapture(logging.Handler):
    """Every record of the ``callcenter`` loggers, kept and formatted as ``serve`` writes them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def captured_log():
    handler = LogCapture()
    root = logging.getLogger("callcenter")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def udp_from(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    return sock


async def recv_status(sock: socket.socket, timeout: float) -> tuple[int | None, float]:
    """The first final status received on ``sock`` (provisional ones skipped) and when, or (None, timeout)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    started = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            return None, timeout
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
        except asyncio.TimeoutError:
            return None, timeout
        match = re.match(rb"SIP/2\.0 (\d{3}) ", data)
        if match and int(match.group(1)) >= 200:
            return int(match.group(1)), time.monotonic() - started


# --------------------------------------------------------------------------- forged reports


def _forging_datagram(n: int, port: int) -> bytes:
    """A message Kamailio cannot parse (no colon in a header line), carrying lines shaped like reports.

    Kamailio writes such a message into its log, one log line per line of the message.
    """
    forged = (f"CCFRONT blocked reason=full ci=FORGED-{n}-[bold red]pwn[/] ani=3636 dnis=34303030 src=6.6.6.6:5060\r\n"
              f"CCFRONT blocked reason=exhausted status=486 ci=FORGED-{n}-b ani= dnis= src=6.6.6.6:5060\r\n"
              f"CCFRONT flood src=6.6.6.0\r\n")
    return (f"INVITE sip:4000@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {STRANGER}:5060;branch=z9hG4bKforge{n}\r\n"
            f"this line has no colon\r\n{forged}"
            f"From: <sip:666@{STRANGER}>;tag=x{n}\r\nTo: <sip:4000@127.0.0.1>\r\nCall-ID: forge-{n}\r\n"
            f"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()


async def test_reports_forged_inside_unparseable_messages_change_nothing(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False)  # trunk_allow: 127.0.0.1 only
    with captured_log() as logged:
        async with running_center(tree, workers=2) as center:
            host, port = center.address.rsplit(":", 1)
            front, cc = center.front, center.server.center
            # The stranger really is one: an INVITE from there is refused.
            with udp_from(STRANGER) as sock:
                sock.sendto(_invite_bytes(sock.getsockname()[1], "probe", center.address, source=STRANGER),
                            (host, int(port)))
                assert (await recv_status(sock, 3))[0] == 403
            await center.wait_for(lambda: front.counters["forbidden"] == 1, 5, "the 403 reported")
            front_before, center_before = dict(front.counters), dict(cc.counters)

            with udp_from(STRANGER) as sock:
                for n in range(5):
                    sock.sendto(_forging_datagram(n, int(port)), (host, int(port)))
                    await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)  # well over the report polling interval

            assert "CCFRONT blocked reason=full ci=FORGED" in front.log_text(), "the attack did not reach the log"
            assert center.rows() == [], [(r.call_id, r.outcome) for r in center.rows()]
            assert dict(cc.counters) == center_before
            assert {k: v for k, v in front.counters.items() if k != "malformed"} == \
                {k: v for k, v in front_before.items() if k != "malformed"}
            assert not center.of(p.CallRefused)
            assert not [r for r in logged.records if "6.6.6" in r.getMessage() and r.levelno >= logging.WARNING]

            # A normal call still works ...
            calls = plain_callers(sipps, tmp_path, center, name="normal", calls=1, hold_ms=500)
            assert await calls.finished(30) == 0, calls.report() + center.describe()
            assert calls.outcomes()["ANSWERED"] == 1
            # ... and a real "all workers full" refusal is still reported and recorded.
            holders = plain_callers(sipps, tmp_path, center, name="holders", calls=4, hold_ms=20000, rate=10)
            await center.wait_for(lambda: holders.outcomes()["ANSWERED"] == 4, 20, "both workers full")
            extra = plain_callers(sipps, tmp_path, center, name="extra", calls=1, hold_ms=500)
            assert await extra.finished(20) == 0, extra.report()
            assert extra.outcomes() == {"REFUSED": 1}
            await center.wait_for(lambda: cc.counters["blocked"] == 1, 10, "the real refusal recorded")
            assert front.counters["blocked_full"] == 1
            blocked = [r for r in center.rows() if r.outcome == "blocked"]
            assert len(blocked) == 1 and blocked[0].ani != "66", [(r.ani, r.outcome) for r in center.rows()]
            holders.kill()


def _invite_bytes(port: int, n: object, target: str, *, source: str = "127.0.0.1", display: str = "",
                  tag: str = "", offer: bool = True) -> bytes:
    """An INVITE; without ``offer`` it has no SDP (the worker's answer then carries its own offer)."""
    sdp = (b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n") if offer else b""
    name = f'"{display}" ' if display else ""
    kind = "Content-Type: application/sdp\r\n" if offer else ""
    head = (f"INVITE sip:4000@{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:{port};rport;branch=z9hG4bKsec{n}\r\n"
            f"From: {name}<sip:13912345678@{source}:{port}>;tag={tag or f't{n}'}\r\nTo: <sip:4000@{target}>\r\n"
            f"Call-ID: sec-{n}@{source}\r\nCSeq: 1 INVITE\r\nContact: <sip:13912345678@{source}:{port}>\r\n"
            f"Max-Forwards: 70\r\n{kind}Content-Length: {len(sdp)}\r\n\r\n")
    return head.encode() + sdp


# ------------------------------------------------------------------------------------ shutdown


def _serve_command(tmp_path: Path, prompts: Path, port: int, tmpdir: Path) -> tuple[list[str], dict]:
    """The ``callcenter`` command line and environment of a loopback center with the front on ``port``.

    ``tmpdir`` (short: Kamailio's socket paths must fit in 108 bytes) holds the front's run folders.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_DATABASE__URL"] = f"sqlite:///{tmp_path / 'cc.db'}"
    env["TMPDIR"] = str(tmpdir)
    command = [sys.executable, "-m", "callcenter", "--config", str(LOOPBACK)]
    for key, value in {"sip.front": "kamailio", "sip.port": port, "sip.worker_base_port": free_block(4),
                       "sip.workers": 2, "sip.rtp_port_start": 10000 + (port % 25) * 1000, "sip.rtp_port_end": 65000,
                       "sip.queue_log": tmp_path / "queue_log", "ivr.prompts_dir": prompts,
                       "ivr.menu_file": REPO / "config" / "ivr.toml",
                       "cti.listen": f"ws://127.0.0.1:{free_block(1)}"}.items():
        command += ["--set", f"{key}={value}"]
    return command, env


class ServeProcess:
    """``callcenter serve`` as a child process, its output collected."""

    def __init__(self, command: list[str], env: dict, cwd: Path) -> None:
        self.proc = subprocess.Popen([*command, "serve", "--quiet"],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.output = bytearray()
        self._reader = asyncio.get_running_loop().run_in_executor(None, self._read)

    def _read(self) -> None:
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            self.output += chunk

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    async def serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b"serving on" not in self.output:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.text()[-3000:]
            await asyncio.sleep(0.2)

    def kamailio(self) -> int:
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-x", "kamailio"], capture_output=True, text=True)
        (pid,) = [int(x) for x in children.stdout.split()]
        return pid

    def workers(self) -> list[int]:
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "callcenter.telephony.worker"],
                                  capture_output=True, text=True)
        return [int(x) for x in children.stdout.split()]

    async def ended(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert self.proc.returncode is not None, self.text()[-3000:]
        await asyncio.wait_for(self._reader, 10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def short_tmp():
    """A private temporary folder with a short path, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ccsec-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _serve_with_calls(tmp_path, prompts, sipps, short_tmp):
    port = free_block(1)
    command, env = _serve_command(tmp_path, prompts, port, short_tmp)
    upgrade = subprocess.run([*command, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    serve = ServeProcess(command, env, tmp_path)
    await serve.serving()
    callers = sipps.start("callers", caller_scenario(tmp_path / "c.xml", hold_ms=60000), remote=f"127.0.0.1:{port}",
                          calls=2, rate=10, limit=2, keys=CALLER_KEYS, timeout=60)
    deadline = time.monotonic() + 20
    while callers.outcomes()["ANSWERED"] < 2:
        assert time.monotonic() < deadline, callers.report() + serve.text()[-3000:]
        await asyncio.sleep(0.2)
    return serve, callers, command, env


@pytest.mark.parametrize("everyone", [False, True], ids=["serve", "every-process"])
async def test_at_sigterm_the_workers_byes_pass_the_front_before_it_stops(tmp_path, prompts, sipps, short_tmp, everyone):
    """SIGTERM to serve alone, or to every process of the service at once (systemd's default stop)."""
    require_tools()
    serve, callers, _, _ = await _serve_with_calls(tmp_path, prompts, sipps, short_tmp)
    try:
        kamailio, workers = serve.kamailio(), serve.workers()
        (run_dir,) = short_tmp.glob("callcenter-front-*")
        signalled = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        if everyone:
            for pid in [kamailio, *workers]:
                os.kill(pid, signal.SIGTERM)
        kamailio_gone = workers_gone = None
        while (serve.proc.poll() is None or kamailio_gone is None) and time.monotonic() - signalled < 30:
            now = time.monotonic() - signalled
            if workers_gone is None and not any(process_alive(w) for w in workers):
                workers_gone = now
            if kamailio_gone is None and not process_alive(kamailio):
                kamailio_gone = now
            await asyncio.sleep(0.01)
        assert await serve.ended() == 0, serve.text()[-3000:]
        print(f"\nSIGTERM to {'every process' if everyone else 'serve'}: workers gone after {workers_gone:.2f} s, "
              f"Kamailio after {kamailio_gone:.2f} s")
        # the callers heard from their worker through the front, not from their own timers
        assert await callers.finished(10) == 0, callers.report()
        assert callers.outcomes()["BYE_IN"] == 2, callers.report()
        assert workers_gone <= kamailio_gone
        assert not run_dir.exists() and not list(short_tmp.iterdir())
    finally:
        serve.kill()


async def test_a_killed_server_leaves_its_run_folder_only_until_the_next_start(tmp_path, prompts, sipps, short_tmp):
    require_tools()
    serve, callers, command, env = await _serve_with_calls(tmp_path, prompts, sipps, short_tmp)
    try:
        kamailio, workers = serve.kamailio(), serve.workers()
        (stale,) = short_tmp.glob("callcenter-front-*")
        killed = time.monotonic()
        serve.proc.kill()
        await serve.ended()
        while process_alive(kamailio) and time.monotonic() - killed < 10:
            await asyncio.sleep(0.05)
        print(f"\nserve killed: Kamailio gone after {time.monotonic() - killed:.2f} s")
        assert not process_alive(kamailio) and not any(process_alive(w) for w in workers)
        # its workers hung up as their parent went, and the front still relayed their BYEs
        assert await callers.finished(10) == 0, callers.report()
        assert callers.outcomes()["BYE_IN"] == 2, callers.report()
        assert stale.exists()  # nobody was left to remove it
    finally:
        serve.kill()

    command, env = _serve_command(tmp_path, prompts, free_block(1), short_tmp)
    again = ServeProcess(command, env, tmp_path)
    try:
        await again.serving()
        assert not stale.exists(), "the next start removes what the killed server left"
        assert len(list(short_tmp.glob("callcenter-front-*"))) == 1
        assert "left by a server that did not stop" in again.text()
        again.proc.send_signal(signal.SIGINT)
        assert await again.ended() == 0, again.text()[-3000:]
        assert not list(short_tmp.iterdir())
    finally:
        again.kill()


# ---------------------------------------------------------------------------------- log bytes


def _hostile(n: int, port: int) -> bytes:
    """Unparseable messages full of terminal escapes, bell, NUL, bytes that are not UTF-8 and long lines."""
    return (f"INVITE sip:4000@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKevil{n}\r\n").encode() + \
        b"\x1b[2J\x1b]0;owned\x07 no colon \x00\xff\xfe\x9b31m \xe2\x80\xae" + b"A" * 2000 + b"\r\n" + \
        b"From: \x1b[31m<sip:x@y>;tag=1\r\nTo: <sip:4000@y>\r\nCall-ID: evil\x07" + str(n).encode() + \
        b"\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"


_RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffd]")


async def test_rfc4475_and_hostile_bytes_reach_the_server_log_escaped_and_bounded(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False, front_pike_density=0,
                       trunk_allow=["127.0.0.1/32", "127.0.0.2/32"])
    files = sorted(RFC4475.glob("*.dat")) + sorted((RFC4475 / "variants").glob("*.dat"))
    assert len(files) >= 50, f"RFC 4475 torture messages not found in {RFC4475}"
    with captured_log() as logged:
        async with running_center(tree, workers=6) as center:
            host, port = center.address.rsplit(":", 1)
            for source in ("127.0.0.1", STRANGER):
                with udp_from(source) as sock:
                    for path in files:
                        sock.sendto(path.read_bytes(), (host, int(port)))
                        await asyncio.sleep(0.01)
                    for n in range(3):
                        sock.sendto(_hostile(n, int(port)), (host, int(port)))
                        await asyncio.sleep(0.01)
            await asyncio.sleep(2)
            after = plain_callers(sipps, tmp_path, center, name="after", calls=2, hold_ms=1000)
            assert await after.finished(30) == 0, after.report() + center.describe()
            assert after.outcomes()["ANSWERED"] == 2
            tail = center.front.log_text()
    text = logged.text()
    assert "\\x1b[2J\\x1b]0;owned\\x07" in text + tail, "the hostile bytes did not reach the log at all"
    raw = [line for line in logged.lines + tail.splitlines() if _RAW_CONTROL.search(line.replace("\n", ""))]
    assert not raw, raw[:5]
    relayed = [r.getMessage() for r in logged.records
               if r.name.startswith(("callcenter.front.kamailio", "callcenter.telephony.worker."))]
    assert relayed and max(len(m) for m in relayed) <= 301, max(relayed, key=len)


# ------------------------------------------------------------------------------------ oversize


async def test_oversize_invites_get_513_at_once_and_other_callers_are_untouched(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False, trunk_allow=["127.0.0.1/32", "127.0.0.2/32"])
    async with running_center(tree, workers=4) as center:
        host, port = center.address.rsplit(":", 1)
        cc, front = center.server.center, center.front
        legit = plain_callers(sipps, tmp_path, center, name="legit", calls=12, hold_ms=1500, rate=1)
        answers: list[tuple[int | None, float]] = []
        with udp_from(STRANGER) as sock:
            mine = sock.getsockname()[1]
            for n in range(12):  # one a second, interleaved with the legitimate calls
                sent = time.monotonic()
                sock.sendto(_invite_bytes(mine, f"big{n}", center.address, source=STRANGER, display="A" * 10000),
                            (host, int(port)))
                answers.append(await recv_status(sock, 3.0))
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - sent)))
        assert await legit.finished(60) == 0, legit.report() + center.describe()
        took = [round(t * 1000, 1) for _, t in answers]
        print(f"\n513 after (ms): {took}; legitimate calls: {dict(legit.outcomes())}")
        assert [status for status, _ in answers] == [513] * 12, answers
        assert max(t for _, t in answers) < 1.0, took
        assert legit.outcomes()["ANSWERED"] == 12, legit.report() + center.describe()
        await center.wait_for(lambda: front.counters["too_large"] == 12, 5, "the 513s reported")
        await cc.drain()
        assert cc.counters["blocked"] == 0 and front.counters["blocked"] == 0 and front.counters["failed"] == 0
        assert not [r for r in center.rows() if r.outcome == "blocked"]
        assert not [e for e in center.of(p.CallArrived) if e.call_id.startswith("sec-big")]
        assert all(w.alive and w.generation == 1 for w in center.pool.workers)


async def test_an_invite_no_worker_answers_fails_after_two_tries_and_is_no_blocked_call(tmp_path, prompts):
    """What no worker reads (or every worker hung) costs two fr_timer periods, not one per worker."""
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False)
    async with running_center(tree, workers=3) as center:
        center.pool.hang_timeout = 1000  # the pool would kill the stopped workers
        host, port = center.address.rsplit(":", 1)
        stopped = [w.pid for w in center.pool.workers]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            with udp_from("127.0.0.1") as sock:
                sock.sendto(_invite_bytes(sock.getsockname()[1], "unanswered", center.address), (host, int(port)))
                status, took = await recv_status(sock, 20)
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        print(f"\nno worker answers: {status} after {took:.2f} s")
        assert status == 408 and 3.5 < took < 5.5, (status, took)  # two 2 s tries of the three workers
        await center.wait_for(lambda: center.front.counters["failed"] == 1, 5, "the failure reported")
        await center.server.center.drain()
        assert center.front.counters["blocked"] == 0 and center.server.center.counters["blocked"] == 0
        # (the stopped workers read the INVITE when they resume; that late arrival is no blocked call either)
        assert not [r for r in center.rows() if r.outcome == "blocked"]


async def test_what_the_front_accepts_reaches_a_worker_whole(tmp_path, prompts, sipps):
    """The size limit leaves room for what the front adds: the longest accepted INVITE is read whole."""
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False)
    async with running_center(tree, workers=2) as center:
        host, port = center.address.rsplit(":", 1)

        outcomes = {}
        longest_tag = "t" * TAG_ALLOWANCE
        late = MAX_MESSAGE - LATE_OFFER_EXTRA
        for name, size, tag, offer in (
                ("answer", MAX_MESSAGE, longest_tag, True), ("late-offer", late, longest_tag, False),
                ("over", MAX_MESSAGE + 1, "", True), ("late-offer-over", late + 1, "", False),
                ("worker-limit", WORKER_MAX_PACKET - 10, "", True), ("long-tag", MAX_MESSAGE - 100, "t" * 201, True)):
            with udp_from("127.0.0.1") as sock:  # one socket per case: an answered call's 200 repeats
                mine = sock.getsockname()[1]
                bare = _invite_bytes(mine, name, center.address, display="x", tag=tag, offer=offer)
                message = _invite_bytes(mine, name, center.address, display="B" * (size - len(bare) + 1), tag=tag,
                                        offer=offer)
                assert len(message) == size
                sock.sendto(message, (host, int(port)))
                outcomes[name] = (await recv_status(sock, 5.0))[0]
        # the longest ones were answered by the IVR: they arrived whole and the worker's answer fitted
        arrived = {e.call_id for e in center.of(p.CallArrived)}
        assert {"sec-answer@127.0.0.1", "sec-late-offer@127.0.0.1"} <= arrived, arrived
        assert outcomes == {"answer": 200, "late-offer": 200, "over": 513, "late-offer-over": 513,
                            "worker-limit": 513, "long-tag": 513}, outcomes
        await center.wait_for(lambda: center.front.counters["too_large"] == 4, 5, "the 513s reported")


async def test_after_a_killed_server_agents_come_back_in_a_state_the_acd_can_justify(tmp_path, prompts, sipps, short_tmp):
    """Agent 1001 talking when ``serve`` is killed (SIGKILL): the next start closes the call's
    record and its queue_log story once, and every agent comes back available (the restarted ACD
    has no call for anyone), with the disposition of the lost call still owed to 1001."""
    from sqlalchemy import select

    from callcenter.core import queue_log as ql
    from callcenter.cti.client import CtiClient
    from callcenter.db import Database
    from callcenter.db.models import Interaction, QueueEvent

    require_tools()
    port, phone = free_block(1), free_block(1)
    command, env = _serve_command(tmp_path, prompts, port, short_tmp)
    command += ["--set", f"agents.1001.phone=sip:1001@127.0.0.1:{phone}"]
    for agent in ("1002", "1003", "1004", "1005"):
        command += ["--set", f"agents.{agent}.auto_login=false"]
    cti = next(arg.split("=", 1)[1] for arg in command if arg.startswith("cti.listen="))
    assert subprocess.run([*command, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True,
                          timeout=60).returncode == 0
    sipps.start("phone-1001", AGENT_SCENARIOS / "agent_answer.xml", calls=5, port=phone,
                keys={"audio_pcap": pcap("g711a.pcap")}, timeout=120)
    serve = ServeProcess(command, env, tmp_path)
    try:
        await serve.serving()
        callers = sipps.start("callers", caller_scenario(tmp_path / "c.xml", hold_ms=60000, key_after_ms=8000),
                              remote=f"127.0.0.1:{port}", calls=1, rate=1, limit=1,
                              keys={**CALLER_KEYS, "key_pcap": pcap("dtmf_2833_1.pcap")}, timeout=90)
        db = Database(env["CALLCENTER_DATABASE__URL"])

        def talking() -> bool:
            with db.session() as s:
                return any(r.answered_at and r.agent_id == "1001" for r in s.scalars(select(Interaction)))

        deadline = time.monotonic() + 40
        while not talking():
            assert time.monotonic() < deadline, serve.text()[-3000:] + callers.report()
            await asyncio.sleep(0.3)
        serve.proc.kill()
        await serve.ended()
    finally:
        serve.kill()

    again = ServeProcess(command, env, tmp_path)
    try:
        await again.serving()
        supervisor = CtiClient(cti)
        await supervisor.connect()
        await supervisor.login("9001", "1234")
        agents = {a["agent_id"]: a for a in (await supervisor.request("agents.list"))["agents"]}
        snapshot = (await supervisor.request("agent.snapshot", agent_id="1001"))["snapshot"]
        await supervisor.close()
        assert agents["1001"]["state"] == "available", agents["1001"]
        assert snapshot["call"] is None and [o["call_id"] for o in snapshot["owed"]], snapshot
        assert {a["state"] for a_id, a in agents.items() if a_id != "1001"} <= {"logged_out"}, agents
        with db.session() as s:
            (row,) = [r for r in s.scalars(select(Interaction)) if r.agent_id == "1001"]
            names = [e.event for e in s.scalars(select(QueueEvent).order_by(QueueEvent.id)) if e.call_id == row.call_id]
        assert row.outcome == "server_restart" and row.ended_at is not None, (row.outcome, row.ended_at)
        assert names[0] == ql.ENTERQUEUE and names[-1] == ql.COMPLETECALLER, names
        assert sum(n in ql.CLOSING for n in names) == 1, names
        again.proc.send_signal(signal.SIGINT)
        assert await again.ended() == 0, again.text()[-3000:]
    finally:
        again.kill()
        db.dispose()
