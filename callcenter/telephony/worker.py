"""A media worker: one process, one pjsua2 endpoint, a few call legs, driven over stdin/stdout.

Run by :class:`callcenter.telephony.pool.WorkerPool`, or by hand::

    python -m callcenter.telephony.worker --id w1 --address 127.0.0.1 --port 5070 \\
        --rtp-start 20000 --rtp-end 20099 --legs 4

Commands arrive as JSON lines on stdin and events leave as JSON lines on stdout
(:mod:`callcenter.core.telephony_protocol`); logs go to stderr. stdin closing (the control process
died) makes the worker hang up and exit, so a worker never outlives its parent.

This is the only module of the project that imports ``pjsua2``. Rules it follows (see
docs/telephony.md): one thread, the main thread, calls into pjsua2 and runs ``libHandleEvents``
(``threadCnt = 0``, ``mainThreadOnly``); pjsua2 callbacks do no work beyond noting what happened
(each body in its own try/except); every ``Call`` stays in a registry keyed by our own leg id
until its DISCONNECTED callback, where the reference is dropped; players and recorders stay
referenced while in use and are destroyed from the loop, never from a callback; nothing that
holds a Call is alive at ``libDestroy``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from collections import deque

from callcenter.core import telephony_protocol as p
from callcenter.telephony.admission import LegBudget, RateLimiter
from callcenter.telephony.legs import Leg, Recording, Refused, SharedLoop, monotonic, pj_reason
from callcenter.telephony.sip_text import from_uri, guess_id, parse_invite
from callcenter.telephony.worker_media import MediaCommands

log = logging.getLogger("callcenter.telephony.worker")

BUILD_MAX_CALLS = 4
"""Simultaneous calls the pjsua2-python 2.15 wheel allows per process (compiled in, measured)."""
DEFAULT_MAX_RATE = 20.0
"""New legs per second per worker."""
MAX_RATE = 25.0
"""Highest rate limit allowed. Every INVITE that reaches pjsua opens two sockets (RTP, RTCP), and a
closed socket's slot in the 64-slot I/O queue (shared with SIP, now that media has no poller of
its own) stays taken for 500 ms; when none is left the wheel aborts the process. Measured with an
INVITE flood straight at a worker (tests/telephony/bench_worker.py flood --rate 300): with the
0.5 s refusal hold a worker lives at a limit of 20 and 25/s and dies at 30/s."""
DEFAULT_DECIDE_TIMEOUT = 5.0
IDLE_POLL = 1.0
"""Longest wait in ``libHandleEvents`` when nothing is due: commands and prompt ends wake the loop."""
BUSY_POLL = 0.1
"""Longest wait while calls are up (RTP wakes the loop far more often; this bounds pjsua2's own jobs)."""
TIMER_STEP = 0.05
"""The loop's longest wait while shutting down."""
CLOCK_LINGER = 2.0
"""Seconds the conference clock keeps running after the last call, so pjmedia carries out the port
removals it queued for that clock (they leak if the clock stops first)."""
WAKE = b"\0"
"""The datagram that wakes the loop: pjsip drops UDP packets of 32 bytes or less unread."""
CANCEL_LINGER = 32.0
"""Seconds pjsua may keep a cancelled outgoing call's slot (SIP Timer B) when no 487 comes."""
PJ_ETOOMANY = 70010
ENDING_WATCHDOG = 40.0
"""Seconds after a hangup by which pjsua must have reported the call disconnected."""
DEFAULT_RTP_TIMEOUT = 30.0
"""Seconds without RTP from the far end after which a confirmed leg is hung up (a vanished peer)."""
DEFAULT_SESSION_EXPIRES = 90
"""RFC 4028 session interval offered when dialling; 90 is also pjsip's floor (its ABS_MIN_SE)."""
MIN_SESSION_EXPIRES = 90
DEAD_CAUSES = ("rtp_timeout", "session_timer")
"""LegEnded causes of calls the worker ended because the far end vanished without a BYE."""
# ------------------------------------------------------------------------------- leg bookkeeping


# ------------------------------------------------------------------------------------- the worker


class Worker(MediaCommands):
    """State and behaviour of one worker; everything here runs on the pjsua2 thread."""

    def __init__(self, args: argparse.Namespace, ipc_out: int) -> None:
        self.args = args
        self.name = args.id
        self.prefix = args.leg_prefix or args.id
        self.budget = LegBudget(args.legs)
        self.rate = RateLimiter(args.max_rate)
        self.legs: dict[str, Leg] = {}
        self.calls: dict[str, object] = {}  # leg id -> _Call: the only strong reference to a Call
        self.recordings: dict[str, Recording] = {}
        self.loops: dict[str, SharedLoop] = {}  # looped files (hold music) by path, one player each
        self.inbox: deque[tuple] = deque()  # notes from pjsua2 callbacks, handled by the loop
        self.commands: deque[p.Command | None] = deque()  # from the reader thread; None: stdin closed
        self.out: queue.Queue = queue.Queue()
        self.seq = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.parent_gone = threading.Event()
        self.refused = 0
        self.last_cancel = 0.0
        self.stuck_until = 0.0
        self.signalled = 0
        self._ipc_out = ipc_out
        self._last_capacity: tuple[int, int, int] | None = None
        self._next_due = 0.0  # when the loop's bookkeeping must run next (_poll_wait)
        self._rtp_due = 0.0  # next RTP inactivity check, while calls are up (_check_rtp)
        self.rtp_every = min(5.0, max(0.5, args.rtp_timeout / 4))
        self._calls_seen = 0
        self._pj_thread = threading.get_ident()
        self.sleeping = False  # the loop is (about to be) waiting in libHandleEvents
        self.clock_on = False
        self.busy_until = 0.0  # the conference clock may stop after this
        self._waker: socket.socket | None = None
        self._wake_to: tuple | None = None

    # ---------------------------------------------------------------- IPC plumbing (any thread)

    def emit(self, event: p.Event) -> None:
        if not event.worker:
            event = _with_worker(event, self.name)
        self.out.put(p.encode(event))

    def writer(self) -> None:
        while True:
            line = self.out.get()
            if line is None:
                return
            try:
                _write_all(self._ipc_out, line)
            except OSError:
                self.parent_gone.set()
                return

    def reader(self) -> None:
        stream = os.fdopen(0, "rb", buffering=65536, closefd=False)
        while True:
            try:
                line = stream.readline(p.MAX_LINE + 1)
            except (OSError, ValueError):
                line = b""
            if not line:
                self.parent_gone.set()
                self.commands.append(None)
                self.wake()
                return
            if not line.endswith(b"\n") and len(line) > p.MAX_LINE:
                while True:  # skip the rest of an over-long line
                    more = stream.readline(p.MAX_LINE + 1)
                    if not more or more.endswith(b"\n"):
                        break
                self.emit(p.CommandFailed(command_id="", command="", reason="line too long"))
                continue
            if not line.strip():
                continue
            try:
                msg = p.decode(line)
            except p.MalformedMessage as exc:
                self.emit(p.CommandFailed(command_id=guess_id(line), command="", reason=str(exc)))
                continue
            if not isinstance(msg, p.Command):
                self.emit(p.CommandFailed(command_id="", command=type(msg).__name__, reason="not a command"))
                continue
            self.commands.append(msg)
            self.wake()

    def wake(self) -> None:
        """Make the loop leave ``libHandleEvents`` now (any thread): a tiny datagram to our SIP port.

        The loop waits up to a second when idle; this is what keeps a command's latency at a few ms
        anyway. Sent only when the loop may be waiting: it checks for work after marking itself
        ``sleeping`` and before it waits, so no command can slip between the two.
        """
        if not self.sleeping or self._waker is None:
            return
        try:
            self._waker.sendto(WAKE, self._wake_to)
        except OSError:
            pass

    # ------------------------------------------------------------------------------ pjsua2 setup

    def start(self) -> None:
        a = self.args
        _check_port_free(a.address, a.port, a.tcp)
        import pjsua2 as pj

        self.pj = pj
        self.player_class = _Player  # prompts (worker_media.py) create players of this class
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = BUILD_MAX_CALLS  # room to answer 503 beyond our own leg budget
        cfg.uaConfig.userAgent = "callcenter-media-worker"
        cfg.logConfig.level = a.pj_log_level
        cfg.logConfig.consoleLevel = a.pj_log_level
        med = cfg.medConfig
        med.sndAutoCloseTime = -1  # pjsua must not stop the clock behind our back (see _sync_clock)
        med.noVad = True
        # No media thread: RTP is served by the SIP poller in our loop, so an idle worker sleeps.
        # (pjmedia's own I/O thread wakes every 10 ms whether or not a call is up.)
        med.hasIoqueue = False
        med.threadCnt = 0
        # The conference runs at the trunk's rate: G.711 calls and 8 kHz prompts need no resampling.
        med.clockRate = a.clock_rate
        med.sndClockRate = a.clock_rate
        med.channelCount = 1
        med.audioFramePtime = 20
        med.ecTailLen = 0
        self.ep = ep
        # The loop calls this hundreds of times a second with calls up: skip pjsua2.py's wrapper.
        self._handle_events = getattr(pj._pjsua2, "Endpoint_libHandleEvents", None) or pj.Endpoint.libHandleEvents
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = a.port
        tcfg.boundAddress = a.address
        tcfg.publicAddress = a.address
        self.transport_id = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        if a.tcp:
            ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tcfg)
        ep.libStart()
        ep.audDevManager().setNoDev()  # no conference clock until a call is up (_sync_clock)
        wide = a.clock_rate >= 16000
        for codec, prio in (("PCMU/8000/1", 250), ("PCMA/8000/1", 249), ("G722/16000/1", 251 if wide else 248)):
            try:
                ep.codecSetPriority(codec, prio)
            except pj.Error:
                pass
        family = socket.AF_INET6 if ":" in a.address else socket.AF_INET
        self._waker = socket.socket(family, socket.SOCK_DGRAM)
        self._wake_to = (a.address, a.port)

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{self.name}@{a.address}:{a.port}"
        acfg.sipConfig.transportId = self.transport_id
        mt = acfg.mediaConfig.transportConfig
        mt.port = a.rtp_start
        mt.portRange = max(0, a.rtp_end - a.rtp_start)
        mt.boundAddress = a.address
        mt.publicAddress = a.address
        # RFC 4028 session timers only with peers that support them (PJSUA_SIP_TIMER_OPTIONAL): a
        # timer-less peer (SIPp, many phones) gets no re-INVITE/UPDATE it does not expect; dead
        # calls with such peers are found by RTP inactivity (_check_rtp). pjsip's floor is 90 s.
        acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL if a.session_expires else pj.PJSUA_SIP_TIMER_INACTIVE
        acfg.callConfig.timerMinSESec = MIN_SESSION_EXPIRES
        acfg.callConfig.timerSessExpiresSec = max(MIN_SESSION_EXPIRES, a.session_expires)
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        self.account = _Account(self)
        self.account.create(acfg, True)
        self.emit(p.WorkerStarted(
            pid=os.getpid(), address=a.address, port=a.port, rtp_start=a.rtp_start, rtp_end=a.rtp_end,
            legs=a.legs, max_rate=a.max_rate,
        ))

    # ----------------------------------------------------------------------------------- the loop

    def run(self) -> int:
        threading.Thread(target=self.reader, name="ipc-in", daemon=True).start()
        writer = threading.Thread(target=self.writer, name="ipc-out", daemon=True)
        writer.start()
        try:
            self.start()
        except Exception as exc:  # noqa: BLE001 - e.g. the SIP port is taken
            log.error("cannot start on %s:%d (RTP %d-%d): %s", self.args.address, self.args.port,
                      self.args.rtp_start, self.args.rtp_end, pj_reason(exc))
            if getattr(self, "ep", None) is not None:
                self.account = None
                gc.collect()
                self.ep.libDestroy()
            self.out.put(None)
            writer.join(timeout=2.0)
            return 4
        self._report_capacity()
        handle = self._handle_events
        while True:
            now = time.monotonic()
            wait = self._poll_wait(now)
            self.sleeping = True
            if self.commands or self.inbox:
                wait = 0.0
            # Whole milliseconds, rounded up: a wait of 0.4 ms must not become a busy poll.
            handle(self.ep, math.ceil(wait * 1000))
            self.sleeping = False
            now = time.monotonic()
            if (not self.inbox and not self.commands and now < self._next_due and len(self.calls) == self._calls_seen
                    and not self.signalled and not self.stopping):
                continue  # only media moved (an RTP packet): nothing for us to do
            self._turn(now)
            if self.stopping and (not self.calls or now >= self.stop_deadline):
                break
        self._teardown()
        self.out.put(None)
        writer.join(timeout=2.0)
        return 0

    def _turn(self, now: float) -> None:
        """The loop's bookkeeping after a poll that brought something besides media."""
        if self.inbox:
            self._drain_inbox()
        if self.commands:
            self._drain_commands()
        if now >= self._next_due:
            self._timers(now)
        if self.inbox:
            self._drain_inbox()
        self._calls_seen = len(self.calls)
        self._sync_clock(now)
        self._report_capacity()
        if self.parent_gone.is_set() and not self.stopping:
            log.warning("control process gone: hanging up and exiting")
            self._begin_shutdown(2.0)
        if self.signalled and not self.stopping:
            log.info("signal %d: hanging up and exiting", self.signalled)
            self._begin_shutdown(2.0)

    def _poll_wait(self, now: float) -> float:
        """Seconds the loop may wait in pjsua2: until our next deadline, at most IDLE_POLL.

        Sets ``_next_due``, when the loop's bookkeeping (``_turn``) must run next. While calls are
        up every RTP packet ends the wait, so the loop turns hundreds of times a second; the turns
        that brought nothing but media skip the bookkeeping.
        """
        due = now + (BUSY_POLL if self.calls else IDLE_POLL)
        for leg in self.legs.values():
            if leg.deadline is not None and leg.deadline < due:
                due = leg.deadline
        if self.budget.blocked:
            due = min(due, self.stuck_until)
        if self.clock_on and not self.calls:
            due = min(due, self.busy_until)
        if self.calls and self.args.rtp_timeout:
            due = min(due, max(now, self._rtp_due))
        if self.stopping:
            due = min(due, now + TIMER_STEP)
        self._next_due = due
        return min(IDLE_POLL, max(0.0, due - now))

    def _sync_clock(self, now: float) -> None:
        """Run the conference clock only while calls are up, and CLOCK_LINGER seconds after.

        The null sound device's clock costs a third of a percent of a core even with nothing to
        mix. pjmedia removes a finished call's conference port only on a clock tick, so the clock
        runs until every call has gone and then a little longer; it starts again as a call
        arrives, before its media is added. (pjsua's own auto-close is off: it stops the clock
        after any idle second, queued removals pile up and, after ~253 calls, every call gets 488.)
        """
        if self.calls:
            self.busy_until = now + self.args.clock_linger
            if not self.clock_on:
                self.ep.audDevManager().setNullDev()
                self.clock_on = True
        elif self.clock_on and now >= self.busy_until and not self.recordings and not self.loops:
            self.ep.audDevManager().setNoDev()
            self.clock_on = False

    def _teardown(self) -> None:
        self._drain_inbox()  # LegEnded for calls that ended in the last poll
        for rec in list(self.recordings.values()):
            self._finish_recording(rec, emit=not self.parent_gone.is_set())
        for leg in list(self.legs.values()):
            self._stop_playback(leg, emit=False)
        self.loops.clear()
        if self.calls:
            log.warning("%d call(s) still up at exit", len(self.calls))
            try:
                self.ep.hangupAllCalls()
            except Exception:  # noqa: BLE001
                pass
            end = monotonic() + 1.0
            while self.calls and monotonic() < end:
                self.ep.libHandleEvents(int(TIMER_STEP * 1000))
            self._drain_inbox()
        self.calls.clear()
        self.legs.clear()
        self.inbox.clear()
        try:
            self.account.shutdown()
        except Exception:  # noqa: BLE001
            pass
        self.account = None
        gc.collect()  # no Call object may be alive at libDestroy
        self.ep.libDestroy()
        self.ep = None
        if self._waker is not None:
            self._waker.close()

    def _begin_shutdown(self, grace: float) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = monotonic() + grace
        for leg in list(self.legs.values()):
            if leg.state not in ("ending", "refused"):
                self._hangup(leg, cause="shutdown", status=503 if leg.state == "arriving" else None)

    # ------------------------------------------------------------------------- callbacks → inbox

    def on_incoming(self, prm) -> None:
        self._check_thread("onIncomingCall")
        self.seq += 1
        leg_id = f"{self.prefix}-{self.seq}"
        call = _Call(self, leg_id, self.account, prm.callId)
        self.calls[leg_id] = call  # referenced before anything can disconnect it
        try:
            self._admit_or_refuse(call, leg_id, prm)
        except Exception:  # noqa: BLE001 - whatever happened, the INVITE gets a final answer
            log.exception("incoming call %s", leg_id)
            leg = self.legs.get(leg_id)
            if leg is None or leg.state == "arriving":
                self.budget.release(leg_id)
                self.legs[leg_id] = Leg(leg_id, True, monotonic(), state="refused")
                try:
                    self._answer(call, 500, "Server Internal Error")
                except Exception:  # noqa: BLE001
                    pass

    def _admit_or_refuse(self, call, leg_id: str, prm) -> None:
        now = monotonic()
        try:
            raw = prm.rdata.wholeMsg
        except Exception:  # noqa: BLE001 - undecodable bytes
            raw = ""
        info = parse_invite(raw)
        try:
            ci = call.getInfo()
            call_id, remote_uri, local_uri = ci.callIdString, ci.remoteUri, ci.localUri
        except Exception:  # noqa: BLE001
            call_id, remote_uri, local_uri = info.get("call-id", ""), "", ""
        display, ani, from_uri = p.parse_name_addr(info.get("from") or remote_uri)
        _, to_user, to_uri = p.parse_name_addr(info.get("to") or local_uri)
        dnis = info.get("ruri_user") or to_user
        try:
            source = str(prm.rdata.srcAddress)
        except Exception:  # noqa: BLE001
            source = ""

        why = None
        if self.stopping:
            why = "shutting down"
        elif not self.rate.allow(now):
            why = "rate limit"
        elif not self.budget.admit(leg_id):
            why = "no room"
        if why is not None:
            self.refused += 1
            leg = Leg(leg_id, True, now, state="refused", end_status=503)
            self.legs[leg_id] = leg
            self.emit(p.CallRefused(call_id=call_id, ani=ani, dnis=dnis, remote_address=source,
                                    status=503, reason=why))
            if why == "rate limit":
                # pjsua opened this call's RTP/RTCP sockets before asking us, and a closed socket's
                # I/O-queue slot stays blocked for 500 ms: refusing a flood at once would exhaust
                # the queue and abort the process. Holding the refusal keeps the call slot busy, so
                # further INVITEs get the stack's own stateless 486 (no sockets) meanwhile.
                self.rate.note(now)
                leg.deadline = now + self.args.refuse_hold
            else:
                self._answer(call, 503, "Service Unavailable", retry_after=5)
            return

        leg = Leg(leg_id, True, now, state="arriving", deadline=now + self.args.decide_timeout)
        self.legs[leg_id] = leg
        self._report_capacity()  # free legs are current whenever the control process sees a leg event
        self.emit(p.CallArrived(
            leg=leg_id, call_id=call_id, ani=ani, dnis=dnis, display_name=display, from_uri=from_uri,
            to_uri=to_uri, remote_address=source, headers=info.get("headers", {}),
        ))

    def _check_thread(self, where: str) -> None:
        if threading.get_ident() != self._pj_thread:
            log.error("%s called on a thread other than the pjsua2 loop", where)

    def on_call_state(self, call, prm) -> None:
        self._check_thread("onCallState")
        pj = self.pj
        ci = call.getInfo()
        state = ci.state
        if state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Drop the reference here, inside the DISCONNECTED callback: pjsua reuses call ids at once.
            self.calls.pop(call.leg_id, None)
            self.inbox.append(("ended", call.leg_id, ci.lastStatusCode, ci.lastReason, self._stack_bye(prm)))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.inbox.append(("confirmed", call.leg_id))
        elif state == pj.PJSIP_INV_STATE_EARLY:
            self.inbox.append(("early", call.leg_id, ci.lastStatusCode))

    def _stack_bye(self, prm) -> tuple[int, str] | None:
        """``(cause, text)`` when the call ended with a BYE the SIP stack sent on its own, else None.

        Our own hangups are reported at once with a user event (pjsua's immediate hangup), and a
        far end's BYE is a server transaction; a client BYE transaction here was pjsip's: the
        session timer expired without a refresh, or our refresh (re-INVITE/UPDATE) timed out or got
        408/481. Its Reason header says which.
        """
        e = prm.e
        if e.type != self.pj.PJSIP_EVENT_TSX_STATE:
            return None
        tsx = e.body.tsxState.tsx
        if tsx.role != self.pj.PJSIP_ROLE_UAC or tsx.method != "BYE":
            return None
        return _reason_header(tsx.lastTx.wholeMsg)

    def on_media_state(self, call) -> None:
        self._check_thread("onCallMediaState")
        pj = self.pj
        ci = call.getInfo()
        active = any(m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE for m in ci.media)
        audio = next((m for m in ci.media if m.type == pj.PJMEDIA_TYPE_AUDIO), None)
        # RTP is due only on an active stream that receives: pjsua calls a stream the far end made
        # sendonly/inactive REMOTE_HOLD, and a recvonly far end leaves us no decoding direction.
        watch = (audio is not None and audio.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                 and bool(audio.dir & pj.PJMEDIA_DIR_DECODING))
        self.inbox.append(("media", call.leg_id, active, watch, audio.index if audio is not None else 0))

    def on_dtmf(self, leg_id: str, digit: str, method: int) -> None:
        how = "info" if method == self.pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
        self.inbox.append(("digit", leg_id, digit, how))

    # ------------------------------------------------------------------------- inbox → behaviour

    def _drain_inbox(self) -> None:
        while self.inbox:
            note = self.inbox.popleft()
            try:
                self._handle_note(note)
            except Exception:  # noqa: BLE001 - one bad note must not stop the worker
                log.exception("while handling %r", note[:2])

    def _handle_note(self, note: tuple) -> None:
        kind, leg_id = note[0], note[1]
        leg = self.legs.get(leg_id)
        if leg is None:
            return
        if kind == "ended":
            if note[4] is not None and leg.state == "confirmed" and leg.end_cause is None:
                leg.end_cause = "session_timer"
                leg.end_status, leg.end_reason = note[4][0], note[4][1] or "session expired"
                log.warning("%s: session ended by the SIP stack (%s %s): session timer", leg.id, *note[4])
            self._ended(leg, note[2], note[3])
        elif leg.state in ("refused",):
            return
        elif kind == "confirmed":
            if leg.state != "ending" and leg.answered_at is None:
                leg.state = "confirmed"
                leg.answered_at = leg.rx_at = monotonic()
                leg.deadline = None
                self.emit(p.LegAnswered(leg=leg.id))
                self._release_waiting(leg)
        elif kind == "early":
            status = note[2]
            if not leg.incoming and not leg.ringing_sent and status in (180, 183):
                leg.ringing_sent = True
                if leg.state == "calling":
                    leg.state = "early"
                self.emit(p.LegRinging(leg=leg.id, status=status))
        elif kind == "media":
            was = leg.media_active
            leg.media_active = note[2]
            if note[3] != leg.rx_watch or note[4] != leg.audio_index:
                # (un)held or renegotiated: silence counts from now, on the stream there is now
                leg.rx_watch, leg.audio_index = note[3], note[4]
                leg.rx_packets, leg.rx_at = None, monotonic()
            if leg.media_active and not was:
                self._release_waiting(leg)
        elif kind == "digit":
            digit = note[2]
            if digit in p.DTMF_DIGITS:
                self.emit(p.DigitReceived(leg=leg.id, digit=digit, method=note[3]))
        elif kind == "eof":
            pb = leg.playback
            if pb is not None and pb.token == note[2]:
                self._advance_playback(leg)

    def _ended(self, leg: Leg, status: int, reason: str) -> None:
        now = monotonic()
        state = leg.state
        self.legs.pop(leg.id, None)
        self.budget.release(leg.id)
        if state == "refused":
            return
        self._report_capacity()
        self._stop_playback(leg, emit=True)
        for rec in [r for r in self.recordings.values() if leg.id in r.legs]:
            self._finish_recording(rec, emit=True)
        for other in leg.bridged:
            peer = self.legs.get(other)
            if peer is not None:
                peer.bridged.discard(leg.id)
        for cmd in leg.waiting:
            self._fail(cmd, "leg ended", leg.id)
        leg.waiting.clear()
        reason = p.clean_text(reason or "")
        if leg.answered_at is None and not leg.incoming:
            final = leg.end_status or status or 500
            self.emit(p.LegFailed(leg=leg.id, status=final, reason=leg.end_reason or reason))
            return
        if leg.answered_at is None:
            cause = leg.end_cause or "abandoned"
            self.emit(p.LegEnded(leg=leg.id, cause=cause, status=leg.end_status or status,
                                 reason=leg.end_reason or reason, duration=0.0))
            return
        if leg.end_cause in DEAD_CAUSES:  # say why the worker ended it, not how the stack closed it
            status, reason = leg.end_status or status, leg.end_reason or reason
        self.emit(p.LegEnded(leg=leg.id, cause=leg.end_cause or "remote", status=status, reason=reason,
                             duration=round(now - leg.answered_at, 3)))

    def _timers(self, now: float) -> None:
        if self.budget.blocked and now >= self.stuck_until:
            self.budget.blocked = 0
        if self.calls and self.args.rtp_timeout and now >= self._rtp_due:
            self._rtp_due = now + self.rtp_every
            self._check_rtp(now)
        for leg in list(self.legs.values()):
            if leg.deadline is None or now < leg.deadline:
                continue
            leg.deadline = None
            if leg.state == "refused":
                call = self.calls.get(leg.id)
                if call is not None:
                    try:
                        self._answer(call, 503, "Service Unavailable", retry_after=1)
                    except self.pj.Error as exc:
                        log.warning("%s: refusing: %s", leg.id, pj_reason(exc))
            elif leg.state == "arriving":
                log.warning("%s: no answer/reject from the control process in time: 503", leg.id)
                self._hangup(leg, cause="timeout", status=503, reason="no decision", retry_after=1)
            elif leg.state in ("calling", "early"):
                self._hangup(leg, cause="timeout", fail_status=408, reason="no answer")
            elif leg.state == "ending":
                # The stack never reported the end: let go of the call (its destructor hangs it
                # up) so the leg, its budget slot and the control process's view are freed.
                log.error("%s: still not disconnected %.0f s after hangup; releasing it", leg.id, ENDING_WATCHDOG)
                self.calls.pop(leg.id, None)
                self._ended(leg, leg.end_status or 500, "did not end after hangup")

    def _check_rtp(self, now: float) -> None:
        """Hang up confirmed legs that received no RTP for ``--rtp-timeout`` seconds.

        A far end that vanished (crashed phone, lost network, a front that forgot the call) sends
        no BYE; its RTP stops. The stream's received-packet count is read every ``rtp_every``
        seconds, only while calls are up. Legs the far end holds (sendonly/inactive) or that it
        told it will not send to (recvonly) are not watched: silence is what they announced.
        """
        timeout = self.args.rtp_timeout
        for leg in list(self.legs.values()):
            if leg.state != "confirmed" or not leg.rx_watch:
                continue
            call = self.calls.get(leg.id)
            if call is None:
                continue
            try:
                count = call.getStreamStat(leg.audio_index).rtcp.rxStat.pkt
            except self.pj.Error:
                continue  # no stream right now (media being renegotiated)
            if count != leg.rx_packets:
                leg.rx_packets, leg.rx_at = count, now
            elif now - leg.rx_at >= timeout:
                log.warning("%s: no RTP for %.0f s: the far end is gone, hanging up", leg.id, now - leg.rx_at)
                self._hangup(leg, cause="rtp_timeout", reason=f"no RTP for {now - leg.rx_at:.0f} s")

    def _leg_states(self) -> dict[str, str]:
        """Every leg this worker holds → its SIP state (Pong.legs); refused INVITEs are no legs."""
        return {leg.id: leg.sip_state for leg in self.legs.values() if leg.state not in ("refused", "new")}

    def _report_capacity(self) -> None:
        b = self.budget
        current = (b.free, b.in_use, b.reserved)
        if current != self._last_capacity:
            self._last_capacity = current
            self.emit(p.CapacityChanged(free_legs=current[0], in_use=current[1], reserved=current[2]))

    # ---------------------------------------------------------------------------- the commands

    def _drain_commands(self) -> None:
        for _ in range(64):
            try:
                cmd = self.commands.popleft()
            except IndexError:
                return
            if cmd is None:
                continue  # stdin closed; parent_gone is set
            try:
                self._dispatch(cmd)
            except Refused as exc:
                self._fail(cmd, str(exc), getattr(cmd, "leg", None))
            except Exception as exc:  # noqa: BLE001
                log.exception("command %s failed", type(cmd).__name__)
                self._fail(cmd, f"internal error: {type(exc).__name__}: {exc}", getattr(cmd, "leg", None))

    def _fail(self, cmd: p.Command, reason: str, leg: str | None = None) -> None:
        self.emit(p.CommandFailed(command_id=cmd.id, command=type(cmd).__name__, reason=reason,
                                  leg=leg if p.valid_leg_id(leg) else None))

    def _leg(self, leg_id: str) -> Leg:
        leg = self.legs.get(leg_id)
        if leg is None or leg.state == "refused":
            raise Refused(f"no leg {leg_id!r} on this worker")
        if leg.state == "ending":
            raise Refused(f"leg {leg_id!r} is ending")
        return leg

    def _dispatch(self, cmd: p.Command) -> None:
        if isinstance(cmd, p.Ping):
            self.emit(p.Pong(command_id=cmd.id, media_ports=self.ep.mediaActivePorts(),
                             legs=self._leg_states() if cmd.legs else None))
        elif isinstance(cmd, p.Shutdown):
            self._begin_shutdown(cmd.grace)
        elif isinstance(cmd, p.AnswerCall):
            leg = self._leg(cmd.leg)
            if leg.state != "arriving":
                raise Refused(f"leg {leg.id} is not waiting to be answered ({leg.state})")
            call = self.calls.get(leg.id)
            if call is None:
                raise Refused(f"leg {leg.id} is gone")
            self._answer(call, 200)
            leg.state = "answering"
            leg.deadline = None
        elif isinstance(cmd, p.RejectCall):
            leg = self._leg(cmd.leg)
            if leg.state != "arriving":
                raise Refused(f"leg {leg.id} is not waiting to be answered ({leg.state})")
            self._hangup(leg, cause="rejected", status=cmd.status, reason=cmd.reason, retry_after=cmd.retry_after)
        elif isinstance(cmd, p.Hangup):
            leg = self.legs.get(cmd.leg)
            if leg is None or leg.state in ("ending", "refused"):
                return  # already gone: hanging up is idempotent
            self._hangup(leg, cause="local" if leg.state != "arriving" else "rejected",
                         status=cmd.status if leg.state == "arriving" else None, reason=cmd.reason)
        elif isinstance(cmd, p.PlayPrompts):
            self._play(cmd)
        elif isinstance(cmd, p.StopPlayback):
            self._stop_playback(self._leg(cmd.leg), emit=True)
        elif isinstance(cmd, p.Dial):
            self._dial(cmd)
        elif isinstance(cmd, p.Bridge):
            self._bridge(cmd)
        elif isinstance(cmd, p.Unbridge):
            self._unbridge(cmd)
        elif isinstance(cmd, p.StartRecording):
            self._start_recording(cmd)
        elif isinstance(cmd, p.StopRecording):
            rec = self.recordings.get(cmd.conversation)
            if rec is None:
                raise Refused(f"no recording {cmd.conversation!r}")
            self._finish_recording(rec, emit=True)
        else:
            raise Refused(f"unsupported command {type(cmd).__name__}")

    def _media_ready(self, leg: Leg, cmd: p.Command) -> bool:
        """True when the leg's audio is up; else the command waits for it (answered legs only)."""
        if leg.media_active and leg.id in self.calls:
            return True
        if leg.state in ("answering", "confirmed"):
            if cmd not in leg.waiting:
                leg.waiting.append(cmd)
            return False
        raise Refused(f"leg {leg.id} is not answered ({leg.state})")

    def _release_waiting(self, leg: Leg) -> None:
        if not leg.media_active or leg.state != "confirmed" or not leg.waiting:
            return
        waiting, leg.waiting = leg.waiting, []
        for cmd in waiting:
            self._redispatch(cmd)

    def _redispatch(self, cmd: p.Command) -> None:
        try:
            self._dispatch(cmd)
        except Refused as exc:
            self._fail(cmd, str(exc), getattr(cmd, "leg", None))
        except Exception as exc:  # noqa: BLE001
            log.exception("command %s failed", type(cmd).__name__)
            self._fail(cmd, f"internal error: {exc}", getattr(cmd, "leg", None))

    # -- answer / hang up

    def _answer(self, call, status: int, phrase: str = "", retry_after: int | None = None) -> None:
        pj = self.pj
        op = pj.CallOpParam()
        op.statusCode = status
        if phrase:
            op.reason = phrase
        if retry_after is not None:
            h = pj.SipHeader()
            h.hName = "Retry-After"
            h.hValue = str(retry_after)
            op.txOption.headers.append(h)
        # A final failure is sent with answer(), not hangup(): only answer() adds our headers
        # (Retry-After) to the response.
        call.answer(op)

    def _hangup(self, leg: Leg, *, cause: str, status: int | None = None, reason: str = "",
                retry_after: int | None = None, fail_status: int | None = None) -> None:
        call = self.calls.get(leg.id)
        if leg.state == "arriving":
            leg.end_status = status or 480
        elif fail_status is not None:
            leg.end_status = fail_status
        leg.end_cause = cause
        if reason:
            leg.end_reason = reason
        leg.state = "ending"
        leg.deadline = monotonic() + ENDING_WATCHDOG
        self._stop_playback(leg, emit=True)
        if call is None:
            return
        try:
            if leg.end_status is not None and leg.incoming and leg.answered_at is None:
                self._answer(call, leg.end_status, reason, retry_after)
            else:
                # pjsua keeps the call slot until the far end answers the CANCEL or BYE, which a vanished
                # peer (or a phone that drops BYEs) never does (Timer B/F: 32 s). See _stack_full().
                self.last_cancel = monotonic()
                call.hangup(self.pj.CallOpParam())
        except self.pj.Error as exc:
            log.warning("%s: hangup: %s", leg.id, pj_reason(exc))

    # -- prompts

    # -- dial out

    def _dial(self, cmd: p.Dial) -> None:
        pj = self.pj
        if self.stopping:
            raise Refused("worker is shutting down")
        if cmd.leg in self.legs or cmd.leg in self.calls:
            raise Refused(f"leg {cmd.leg!r} exists already")
        if self.ep.utilVerifySipUri(cmd.uri) != 0:
            raise Refused(f"not a valid SIP URI: {cmd.uri!r}")
        if cmd.peer is not None and (cmd.peer not in self.legs or self.legs[cmd.peer].state in ("ending", "refused")):
            raise Refused(f"peer leg {cmd.peer!r} is not on this worker")
        now = monotonic()
        if self.rate.count(now) >= self.rate.limit:
            raise Refused("rate limit: too many new calls on this worker, retry shortly")
        ok = self.budget.attach(cmd.leg, cmd.peer) if cmd.peer else self.budget.admit(cmd.leg)
        if not ok:
            raise Refused("no free leg on this worker")
        self.rate.note(now)
        self._report_capacity()
        op = pj.CallOpParam(True)
        op.opt.audioCount = 1
        op.opt.videoCount = 0
        local = from_uri(cmd.display_name, cmd.caller_id, self.args.address, self.args.port)
        if local:
            op.txOption.localUri = local
        leg = Leg(cmd.leg, False, now, state="calling", peer=cmd.peer, deadline=now + cmd.timeout)
        call = _Call(self, cmd.leg, self.account)
        self.legs[cmd.leg] = leg
        self.calls[cmd.leg] = call
        try:
            call.makeCall(cmd.uri, op)
        except pj.Error as exc:
            self.calls.pop(cmd.leg, None)
            self.legs.pop(cmd.leg, None)
            self.budget.release(cmd.leg)
            del call
            if getattr(exc, "status", 0) == PJ_ETOOMANY:
                self._stack_full(now)
                raise Refused("no call slot free in the SIP stack (a cancelled call is still closing); "
                               "retry later") from None
            raise Refused(f"cannot dial: {pj_reason(exc)}") from None

    def _stack_full(self, now: float) -> None:
        """makeCall found every pjsua call slot taken although fewer legs are live.

        pjsua reports an unanswered outgoing call DISCONNECTED as soon as it is cancelled, but
        keeps its call slot until the far end answers the CANCEL (487), or up to Timer B (32 s)
        from a phone that never does. Those slots are invisible to us; hold them out of the
        budget until the last cancel is 32 s old, so callers are not admitted without room.
        """
        stuck = max(1, BUILD_MAX_CALLS - len(self.calls))
        self.budget.blocked = stuck
        self.stuck_until = max(self.last_cancel, now - CANCEL_LINGER + 1.0) + CANCEL_LINGER
        log.warning("pjsua has no free call slot with %d call(s) live: %d slot(s) held by cancelled "
                    "calls, kept out of the budget for %.0f s", len(self.calls), stuck, self.stuck_until - now)
        self._report_capacity()

    # -- bridge and record

# ------------------------------------------------------------------------- pjsua2 subclasses

def _subclasses():
    import pjsua2 as pj

    class _Call(pj.Call):
        def __init__(self, worker: Worker, leg_id: str, account, call_id: int | None = None) -> None:
            if call_id is None:
                super().__init__(account)
            else:
                super().__init__(account, call_id)
            self.worker = worker
            self.leg_id = leg_id

        def onCallState(self, prm) -> None:
            try:
                self.worker.on_call_state(self, prm)
            except Exception:  # noqa: BLE001
                log.exception("onCallState %s", self.leg_id)

        def onCallMediaState(self, prm) -> None:
            try:
                self.worker.on_media_state(self)
            except Exception:  # noqa: BLE001
                log.exception("onCallMediaState %s", self.leg_id)

        def onDtmfDigit(self, prm) -> None:
            try:
                self.worker.on_dtmf(self.leg_id, str(prm.digit)[:1], prm.method)
            except Exception:  # noqa: BLE001
                log.exception("onDtmfDigit %s", self.leg_id)

    class _Account(pj.Account):
        def __init__(self, worker: Worker) -> None:
            super().__init__()
            self.worker = worker

        def onIncomingCall(self, prm) -> None:
            try:
                self.worker.on_incoming(prm)
            except Exception:  # noqa: BLE001
                log.exception("onIncomingCall")

    class _Player(pj.AudioMediaPlayer):
        def __init__(self, worker: Worker, leg_id: str, token: int) -> None:
            super().__init__()
            self.worker = worker
            self.leg_id = leg_id
            self.token = token

        def onEof2(self) -> None:
            try:
                self.worker.inbox.append(("eof", self.leg_id, self.token))
                self.worker.wake()  # the conference clock's thread: the loop may be asleep
            except Exception:  # noqa: BLE001
                log.exception("onEof2 %s", self.leg_id)

    return _Call, _Account, _Player


_Call = _Account = _Player = None  # bound by main(), so importing this module does not load pjsua2


# ---------------------------------------------------------------------------------------- helpers

def _with_worker(event: p.Event, name: str) -> p.Event:
    import dataclasses

    return dataclasses.replace(event, worker=name)


def _reason_header(message: str) -> tuple[int, str]:
    """``(cause, text)`` of a request's ``Reason: SIP ;cause=408 ;text="..."`` header ((408, "") if none)."""
    for line in (message or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "reason":
            cause = re.search(r"cause\s*=\s*(\d{3})", value)
            text = re.search(r'text\s*=\s*"([^"]*)"', value)
            return (int(cause.group(1)) if cause else 408), p.clean_text(text.group(1) if text else "", p.TEXT)
        if not line.strip():
            break  # end of the headers
    return 408, ""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _check_port_free(address: str, port: int, tcp: bool) -> None:
    """Fail early, naming the port, when the SIP port is taken (pjsua2's own error names none)."""
    import socket

    kinds = [socket.SOCK_DGRAM] + ([socket.SOCK_STREAM] if tcp else [])
    for kind in kinds:
        family, _, _, _, sockaddr = socket.getaddrinfo(address, port, type=kind)[0]
        with socket.socket(family, kind) as sock:
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                raise OSError(f"SIP port {address}:{port} is in use ({exc.strerror})") from None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m callcenter.telephony.worker", description=__doc__.split("\n")[0])
    ap.add_argument("--id", default="w1", help="worker name, used in events and logs (default w1)")
    ap.add_argument("--leg-prefix", default="", help="prefix of leg ids (default: the worker name)")
    ap.add_argument("--address", default="127.0.0.1", help="address for SIP and RTP (default 127.0.0.1)")
    ap.add_argument("--port", type=int, required=True, help="SIP port (UDP)")
    ap.add_argument("--tcp", action="store_true", help="also listen for SIP over TCP on the same port")
    ap.add_argument("--rtp-start", type=int, required=True, help="first RTP port")
    ap.add_argument("--rtp-end", type=int, required=True, help="last RTP port (inclusive)")
    ap.add_argument("--legs", type=int, default=BUILD_MAX_CALLS,
                    help=f"leg budget (default and maximum {BUILD_MAX_CALLS}: the installed pjsua2 build's call limit)")
    ap.add_argument("--max-rate", type=float, default=DEFAULT_MAX_RATE,
                    help=f"new legs per second before INVITEs get 503 (default {DEFAULT_MAX_RATE:g})")
    ap.add_argument("--decide-timeout", type=float, default=DEFAULT_DECIDE_TIMEOUT,
                    help="seconds the control process has to answer or reject an arrived call (default 5)")
    ap.add_argument("--refuse-hold", type=float, default=0.5,
                    help="seconds an INVITE over the rate limit waits for its 503 (default 0.5: meanwhile "
                         "further INVITEs get the stack's 486, which opens no sockets)")
    ap.add_argument("--clock-rate", type=int, choices=(8000, 16000), default=8000,
                    help="conference clock in Hz: 8000 for G.711 trunks (default), 16000 for G.722 (wideband)")
    ap.add_argument("--clock-linger", type=float, default=CLOCK_LINGER,
                    help=f"seconds the conference clock runs on after the last call (default {CLOCK_LINGER:g})")
    ap.add_argument("--rtp-timeout", type=float, default=DEFAULT_RTP_TIMEOUT,
                    help=f"hang up a confirmed leg that received no RTP for this many seconds, cause rtp_timeout "
                         f"(default {DEFAULT_RTP_TIMEOUT:g}; 0: off). Not while the far end holds the call")
    ap.add_argument("--session-expires", type=int, default=DEFAULT_SESSION_EXPIRES,
                    help=f"RFC 4028 session interval in seconds, used with peers that support session timers "
                         f"(default {DEFAULT_SESSION_EXPIRES}, at least {MIN_SESSION_EXPIRES}; 0: off). An expired "
                         "session is ended with cause session_timer")
    ap.add_argument("--pj-log-level", type=int, default=1, help="pjsua2 log level to stderr, 0-6 (default 1)")
    ap.add_argument("--log-level", default="INFO", help="Python log level (default INFO)")
    args = ap.parse_args(argv)
    if not 1 <= args.legs <= BUILD_MAX_CALLS:
        ap.error(f"--legs must be 1-{BUILD_MAX_CALLS}: the installed pjsua2 build holds at most {BUILD_MAX_CALLS} calls per process")
    if not 0 < args.max_rate <= MAX_RATE:
        ap.error(f"--max-rate must be in (0, {MAX_RATE:g}]: above it an INVITE flood can exhaust the pjsua2 "
                 "build's I/O queue, which aborts the process")
    if not 1 <= args.port <= 65535 or not 1024 <= args.rtp_start < args.rtp_end <= 65535:
        ap.error("ports out of range (RTP: 1024 <= rtp-start < rtp-end <= 65535)")
    if args.rtp_end - args.rtp_start < 4 * args.legs:
        ap.error("the RTP range needs at least 4 ports per leg")
    if not 0 <= args.rtp_timeout <= 86400:
        ap.error("--rtp-timeout must be 0 (off) to 86400 seconds")
    if args.session_expires != 0 and not MIN_SESSION_EXPIRES <= args.session_expires <= 86400:
        ap.error(f"--session-expires must be 0 (off) or {MIN_SESSION_EXPIRES}-86400 seconds (pjsip refuses less "
                 f"than {MIN_SESSION_EXPIRES})")
    if not p.valid_leg_id(args.id) or (args.leg_prefix and not p.valid_leg_id(args.leg_prefix)):
        ap.error("--id and --leg-prefix: letters, digits, '.', '_', ':', '-' only")
    return args


def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()
    args = _parse_args(argv)
    # stdout is the event channel: keep a private copy of it and point fd 1 at stderr, so nothing
    # pjsua2 (or anything else) prints can ever corrupt the event stream.
    ipc_out = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format=f"%(asctime)s {args.id} %(levelname)s %(message)s", stream=sys.stderr)
    _set_parent_death_signal(parent)
    global _Call, _Account, _Player
    try:
        _Call, _Account, _Player = _subclasses()
    except ImportError as exc:
        log.error("pjsua2 is not installed (pip install pjsua2-python): %s", exc)
        return 3
    worker = Worker(args, ipc_out)

    def _on_signal(signum, frame):  # only sets a flag: the loop notices it after this poll
        worker.signalled = signum
        worker.wake()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        return worker.run()
    except Exception:  # noqa: BLE001
        log.exception("worker failed")
        return 1


def _set_parent_death_signal(parent: int) -> None:
    """Linux: SIGTERM this process when the parent dies (stdin EOF covers the rest)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before we asked
            os.kill(os.getpid(), signal.SIGTERM)
    except Exception:  # noqa: BLE001 - not Linux: stdin EOF still stops the worker
        pass


if __name__ == "__main__":
    sys.exit(main())
