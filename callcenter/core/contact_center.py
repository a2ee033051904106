"""The call flow: telephony events in, IVR and ACD decisions, telephony commands and records out.

One asyncio loop owns all of it. The pure engines (``ivr.IvrSession`` per call, one
``acd.AcdEngine``) decide; this module only translates between them and the outside, keeps
timers, and writes every step to the contact store through a single writer thread (ordered,
never blocking the loop). Each event is handled in isolation: a failure in one call is logged
and never touches another.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import acd
import ivr
from acd import AcdEngine, AcdSettings
from acd.settings import normalize_skills
from callcenter.config import Settings
from callcenter.core import queue_log as ql
from callcenter.logsafe import log_safe
from callcenter.core.ports import ContactStore, Notifier, NullNotifier, QueueLogSink
from callcenter.telephony import protocol as tp
from ivr.ports import SelfServicePort, run_lookup
from ivr.queue_prompts import BUSY, CALLBACK_CONFIRM, CALLBACK_OFFER, OVERFLOW_CALLBACK, position_announcement
from screenpop.numbers import normalize

log = logging.getLogger(__name__)

IVR, QUEUED, RINGING, CONNECTED, CALLBACK, LEAVING, ENDED = (
    "ivr", "queued", "ringing", "connected", "callback", "leaving", "ended",
)


DISPOSABLE_CALLS = 50_000


class BoundedDict(OrderedDict):
    """A dict that forgets its oldest entries beyond ``limit`` (a long-running server's per-call notes)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


@dataclass
class OwedDisposition:
    """A conversation an agent handled and has not given a disposition yet: what their console lists."""

    call_id: str
    ani: str | None
    display_name: str | None
    queue: str | None
    customer_id: int | None
    direction: str
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    engine_id: str = ""  # the ACD's id of the call (a kept-place callback's differs from call_id)

    def __post_init__(self) -> None:
        self.engine_id = self.engine_id or self.call_id

    def to_wire(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "ani": self.ani, "display_name": self.display_name, "queue": self.queue,
                "customer_id": self.customer_id, "direction": self.direction,
                "answered_at": self.answered_at.isoformat() if self.answered_at else None,
                "ended_at": self.ended_at.isoformat() if self.ended_at else None}


OFFER_RETRY_SECONDS = 1.0  # an offer that could not be dialled goes back to the queue after this
OWED_PER_AGENT = 500  # a console's list of dispositions owed; beyond this the oldest are dropped (and logged)
OWED_LOOKBACK = dt.timedelta(days=2)  # owed dispositions reloaded from the records at start-up


class RequestRefused(ValueError):
    """An agent request (dial, transfer) that cannot be carried out now; the message is for the agent."""


class DispositionRefused(ValueError):
    """A disposition that breaks a rule of ``[dispositions]``; the message is for the agent."""


class SupervisorActionRefused(ValueError):
    """A supervisor action that cannot be carried out now; nothing changed; the message says why."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def dialable(number: str | None) -> bool:
    """A number the center may dial back: digits only (E.164 or national), never a SIP user part."""
    return bool(number) and re.fullmatch(r"\+?\d{3,20}", number) is not None


def _for_people(reason: str) -> str:
    """An ACD refusal in the agent's words (the engine's own names agents and calls by id)."""
    if "owes the disposition of call" in reason:
        call = reason.rsplit(" ", 1)[-1].strip("'")
        return f"save the disposition of call {call} first (this queue needs it before the next call)"
    return reason.replace("_", " ")


@dataclass
class Call:
    """One contact as the control process sees it (the interaction row's live twin)."""

    call_id: str
    leg: str | None
    ani: str
    dnis: str
    display_name: str
    arrived_at: dt.datetime
    language: str
    session: ivr.IvrSession | None = None
    phase: str = IVR
    customer_id: int | None = None
    queue: str | None = None
    priority: int = 0
    queued_at: dt.datetime | None = None
    agent_id: str | None = None
    agent_leg: str | None = None
    customer_leg: str | None = None
    offered_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    callback_number: str | None = None
    outcome: str | None = None
    playback: str | None = None
    announcing: bool = False
    on_hold: bool = False
    hangup_after_playback: bool = False
    outbound: bool = False  # an agent's dial-now: the agent's phone first, then the customer
    callback_id: int | None = None  # the callback row a dial-now works
    ivr_plays: dict[str, int] = field(default_factory=dict)
    timers: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    # The contact the records (interaction row, queue_log, dispositions, consoles) are about. The
    # same as call_id, except for a kept-place callback: the caller's own call is closed when they
    # hang up, and the callback is a contact of its own while the ACD keeps its place (call_id).
    record: str = ""
    inbound_record: str | None = None  # the caller's call, still open until their leg ends
    kept: bool = False  # a kept-place callback: the ACD holds it after the caller has left
    caller_leaving: bool = False  # the caller's leg of a kept-place callback is being hung up

    def __post_init__(self) -> None:
        self.record = self.record or self.call_id

    @property
    def caller_on_line(self) -> bool:
        """The caller who left a kept-place callback is still listening (their leg is up and not being hung up)."""
        return self.leg is not None and not self.caller_leaving

    def legs(self) -> list[str]:
        return [leg for leg in (self.leg, self.agent_leg, self.customer_leg) if leg]


class ContactCenter:
    """Drives calls through IVR, queue and agent; see the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        menu: ivr.IvrMenu,
        telephony: Any,
        store: ContactStore,
        selfservice: SelfServicePort,
        prompts_dir: Path,
        notifier: Notifier | None = None,
        queue_log: QueueLogSink | None = None,
        recordings_dir: Path | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        front_address: str | None = None,
    ) -> None:
        self.settings = settings
        self.menu = menu
        self.telephony = telephony
        self.store = store
        self.selfservice = selfservice
        self.prompts_dir = Path(prompts_dir)
        self.notifier = notifier or NullNotifier()
        self.queue_log = queue_log
        self.recordings_dir = recordings_dir
        self.clock = clock
        self.engine = AcdEngine(AcdSettings.from_config(settings))
        self.calls: dict[str, Call] = {}
        self.by_leg: dict[str, str] = {}
        self.by_record: dict[str, str] = {}  # a kept-place callback's record -> its call id
        # queue_log calls entered and not yet closed -> whether they were connected: every one gets
        # exactly one closing event, on faults too (see close_queue_log)
        self._queue_open: dict[str, bool] = {}
        self.phones = {aid: a.phone for aid, a in settings.agents.items()}
        self.last_call_of_agent: dict[str, str] = {}
        # agent -> the conversations they handled that still need a disposition, oldest first
        self.owed: dict[str, OrderedDict[str, OwedDisposition]] = {}
        self.disposed: BoundedDict[tuple[str, str], str] = BoundedDict(DISPOSABLE_CALLS)  # (agent, call) -> code
        # Who may save a call's disposition: kept for the last DISPOSABLE_CALLS calls, not forever.
        self.handled_by: BoundedDict[str, str] = BoundedDict(DISPOSABLE_CALLS)  # call -> agent who answered it
        self.transferred_from: BoundedDict[str, set[str]] = BoundedDict(DISPOSABLE_CALLS)  # agents before a transfer
        self.wrap_started: dict[str, dt.datetime] = {}
        self.trunk_networks = [ipaddress.ip_network(n, strict=False) for n in settings.sip.trunk_allow]
        # Calls handed over by the SIP front come from its ip:port; the caller's own address is in the
        # X-Src-Addr header the front adds (it removes any copy the caller sent).
        self.front_address = front_address
        self.counters: dict[str, int] = {"arrived": 0, "refused_source": 0, "blocked": 0, "failed_worker": 0}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contact-store")
        self._lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
        self._pending: set[asyncio.Future] = set()
        self._acd_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Close what a previous run left open, log in the auto-login agents, start consuming events."""
        self._loop = asyncio.get_running_loop()
        closed = await self._loop.run_in_executor(
            self._writer, lambda: self.store.close_unfinished(reason="server_restart")
        )
        if closed:
            log.warning("closed %d interaction(s) left open by the previous run", closed)
        since = self.now() - OWED_LOOKBACK
        left_open = await self._loop.run_in_executor(self._writer, lambda: self.store.open_queue_calls(since=since))
        for entry in left_open:  # queue_log: every call that entered a queue ends exactly once
            self._queue_open[entry["call_id"]] = entry["connected_at"] is not None
            if entry["connected_at"] is not None:
                self._qlog(entry["call_id"], entry["queue"], entry["agent_id"], ql.COMPLETECALLER, 0, 0, 1,
                           extra={"reason": "server_restart"})
            else:
                self._qlog(entry["call_id"], entry["queue"], None, ql.ABANDON, 1, 1, 0,
                           extra={"reason": "server_restart"})
        if left_open:
            log.warning("closed %d queue_log call(s) left open by the previous run", len(left_open))
        rows = await self._loop.run_in_executor(self._writer, lambda: self.store.owed_dispositions(since=since))
        for row in rows:
            agent_id = row.pop("agent_id")
            if agent_id in self.settings.agents:
                self._owe(agent_id, OwedDisposition(**row), notify=False)
        if rows:
            log.info("%d disposition(s) still owed from before the restart", len(rows))
        for agent_id, agent in self.settings.agents.items():
            if agent.auto_login and agent.role == "agent":
                self._acd(acd.AgentLoggedIn(agent_id))
        self._runner = asyncio.create_task(self._consume(), name="contact-center")

    async def stop(self) -> None:
        if self._runner:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        if self._acd_timer:
            self._acd_timer.cancel()
        for call in list(self.calls.values()):  # the server stops: every open contact is closed
            self._cancel_timers(call)
            for leg in call.legs():
                self._send(tp.Hangup(leg=leg, reason="server stopping"))
            if call.phase not in (CONNECTED, LEAVING) or not call.outcome:
                call.outcome = "server_stopped"  # a contact already decided keeps its outcome
            if call.phase == CONNECTED and call.answered_at:
                self._write(self.store.update, call.record,
                            talk_seconds=round((self.now() - call.answered_at).total_seconds(), 3))
            self._finish(call)
        await self.drain()
        self._writer.shutdown(wait=True)
        self._lookups.shutdown(wait=False, cancel_futures=True)

    async def drain(self) -> None:
        """Wait until every record write queued so far is done (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _consume(self) -> None:
        while True:
            event = await self.telephony.events.get()
            self.handle(event)

    # ------------------------------------------------------------------ plumbing

    def now(self) -> dt.datetime:
        return self.clock()

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue a record write on the writer thread: ordered, and never blocking the loop."""
        loop = self._loop or asyncio.get_running_loop()
        future = loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs))
        self._pending.add(future)

        def done(f: asyncio.Future) -> None:
            self._pending.discard(f)
            if not f.cancelled() and f.exception() is not None:
                log.error("record write %s failed: %s", getattr(fn, "__name__", fn), f.exception())

        future.add_done_callback(done)

    def _qlog(self, call_id: str | None, queue: str | None, agent: str | None, event: str, *data: Any,
              extra: dict[str, Any] | None = None) -> None:
        if call_id is not None:
            if event == ql.ENTERQUEUE:
                if call_id in self._queue_open:
                    return  # already waiting (a transfer to an agent who became busy): entered once
                self._queue_open[call_id] = False
            elif event == ql.CONNECT and call_id in self._queue_open:
                self._queue_open[call_id] = True
            if event == ql.CONNECT or event in ql.CLOSING:
                if call_id not in self._queue_open:
                    # an agent's own dial (never queued), or a call already closed: no second closing line
                    log.debug("queue_log: no %s for call %s, which is not in a queue", event, call_id)
                    return
                if event != ql.CONNECT:
                    self._queue_open.pop(call_id, None)
        at = self.now()
        self._write(self.store.log_queue_event, at=at, event=event, queue=queue, call_id=call_id, agent_id=agent,
                    data={"data": [str(d) for d in data], **(extra or {})})
        if self.queue_log is not None:
            try:
                self.queue_log.write(ql.line(at, call_id, queue, agent, event, *data))
            except OSError as exc:
                log.error("queue_log file: %s", exc)

    def _send(self, command: tp.Command) -> str:
        return self.telephony.send(command)

    def _call_of_leg(self, leg: str) -> Call | None:
        call_id = self.by_leg.get(leg)
        return self.calls.get(call_id) if call_id else None

    def handle(self, event: tp.Event) -> None:
        """Entry point for every telephony event; one event's failure never stops the next."""
        try:
            handler = getattr(self, f"_on_{type(event).__name__}", None)
            if handler is not None:
                handler(event)
        except Exception:
            log.exception("handling %s failed", type(event).__name__)

    # ------------------------------------------------------------------ ACD

    def _acd(self, event: acd.Event) -> list[acd.Action]:
        try:
            actions = self.engine.handle(event, self.now().timestamp())
        except acd.AcdError as exc:
            log.error("ACD refused %s: %s", type(event).__name__, exc)
            return []
        self._acd_changed(event, actions)
        self._apply_acd(actions)
        self._schedule_acd()
        return actions

    def _acd_request(self, event: acd.Event) -> list[acd.Action]:
        """An agent's or supervisor's request to the ACD: a refusal becomes :class:`RequestRefused`."""
        actions = self._acd(event)
        refusal = next((a for a in actions if isinstance(a, acd.EventRejected) and a.event is event), None)
        if refusal is not None:
            raise RequestRefused(_for_people(refusal.reason))
        return actions

    def wrap_up_of(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's wrap-up as consoles show it: mode, end (ISO time), the call it waits for, extensions left."""
        wrap = self.engine.agent_wrap_up(agent_id)
        if wrap is None:
            return None
        until = wrap["until"]
        owed_call = wrap["owed_call"]
        if owed_call is not None:
            owed_call = next((o.call_id for o in self.owed.get(agent_id, {}).values() if o.engine_id == owed_call),
                             owed_call)
        return {**wrap, "owed_call": owed_call,
                "until": dt.datetime.fromtimestamp(until, dt.UTC).isoformat() if until is not None else None}

    def _acd_tick(self) -> None:
        self._acd_timer = None
        try:
            actions = self.engine.tick(self.now().timestamp())
            self._acd_changed(None, actions)
            self._apply_acd(actions)
        except Exception:
            log.exception("ACD tick failed")
        self._schedule_acd()

    def _acd_changed(self, event: acd.Event | None, actions: list[acd.Action]) -> None:
        """Tell the supervisors' feed which queues and agents an ACD step touched (it coalesces them)."""
        if not actions and event is None:
            return
        queues: set[str] = set()
        agents: set[str] = set()
        for item in (event, *actions) if event is not None else actions:
            if (queue := getattr(item, "queue", None)) is not None:
                queues.add(queue)
            if (agent := getattr(item, "agent_id", None)) is not None:
                agents.add(agent)
            call = self.calls.get(getattr(item, "call_id", None) or "")
            if call is not None:
                if call.queue:
                    queues.add(call.queue)
                if call.agent_id:
                    agents.add(call.agent_id)
        if queues or agents:
            self.notifier.to_supervisors({"type": "acd.changed", "queues": sorted(queues), "agents": sorted(agents)})

    def _schedule_acd(self) -> None:
        deadline = self.engine.next_deadline()
        if self._acd_timer is not None:
            self._acd_timer.cancel()
            self._acd_timer = None
        if deadline is not None and self._loop is not None:
            delay = max(0.0, deadline - self.now().timestamp())
            self._acd_timer = self._loop.call_later(delay, self._acd_tick)

    def _apply_acd(self, actions: list[acd.Action]) -> None:
        for action in actions:
            try:
                handler = getattr(self, f"_do_{type(action).__name__}", None)
                if handler is not None:
                    handler(action)
            except Exception:
                log.exception("carrying out %s failed", type(action).__name__)

    def _do_OfferCall(self, action: acd.OfferCall) -> None:
        call = self.calls.get(action.call_id)
        if call is None:  # gone while the engine decided: release the agent at once
            self._acd(acd.CallAbandoned(action.call_id))
            return
        now = self.now()
        uri = self.phones.get(action.agent_id)
        call.agent_id = action.agent_id
        call.offered_at = now
        call.phase = RINGING
        try:
            if action.callback_number is not None and not (call.kept and call.caller_on_line):
                # A kept-place callback: ring the agent first, the customer once the agent answers.
                call.agent_leg = self.telephony.dial(uri, caller_id=action.callback_number,
                                                     display_name=f"Callback {call.display_name}"[:80],
                                                     timeout=action.ring_timeout + 2)
            else:
                call.agent_leg = self.telephony.dial(uri, peer=call.leg, caller_id=call.ani,
                                                     display_name=call.display_name, timeout=action.ring_timeout + 2)
        except Exception as exc:  # no phone, a phone the stack refuses: the offer never reaches it
            log.error("call %s: agent %s's phone %s cannot be dialled: %s", call.call_id, action.agent_id,
                      log_safe(uri, 120), exc)
            call.agent_leg = None
            self._offer_never_rang(call, f"cannot dial the phone: {exc}")
            return
        self.by_leg[call.agent_leg] = call.call_id
        self._write(self.store.update, call.record, offered_at=now, agent_id=action.agent_id)
        self._callback_progress(call, "in_progress", f"offered to agent {action.agent_id} on call {call.record}",
                                attempt=True)
        self.notifier.to_agent(action.agent_id, {
            "type": "call.offered", "call_id": call.record, "queue": action.queue, "ani": call.ani,
            "display_name": call.display_name, "customer_id": call.customer_id, "callback": action.callback_number,
            "waited": (now - (call.queued_at or now)).total_seconds(),
            "ivr_path": call.session.path_json() if call.session else [],
        })

    def _do_CancelOffer(self, action: acd.CancelOffer) -> None:
        call = self.calls.get(action.call_id)
        if call is None or call.agent_leg is None:
            return
        ring = (self.now() - (call.offered_at or self.now())).total_seconds()
        if call.outbound:
            pass  # the agent's own dial: not picking up is not a missed offer
        elif action.reason == "ring_timeout":
            self._qlog(call.record, call.queue, action.agent_id, ql.RINGNOANSWER, int(ring * 1000))
        else:
            self._qlog(call.record, call.queue, action.agent_id, ql.RINGCANCELED, int(ring * 1000))
        if call.phase == RINGING:
            call.phase = CALLBACK if call.callback_number else QUEUED
        self._drop_agent_leg(call)
        self.notifier.to_agent(action.agent_id, {"type": "call.offer_cancelled", "call_id": call.record,
                                                 "reason": action.reason})
        if call.outbound:  # the ACD drops an agent's own dial that they do not pick up
            self._end_dial(call, "agent_no_answer", f"agent {action.agent_id} did not answer ({action.reason})")

    def _do_DialCustomer(self, action: acd.DialCustomer) -> None:
        call = self.calls.get(action.call_id)
        if call is None or call.agent_leg is None:
            return
        if call.kept and call.caller_on_line:
            # The caller who asked for the callback is still on the line (the confirmation is
            # playing): connect them now rather than ring their phone while they hold it.
            if call.playback:
                self._send(tp.StopPlayback(leg=call.leg))
            call.playback = None
            call.hangup_after_playback = False
            call.ivr_plays.clear()
            self._close_inbound(call)
            call.customer_leg, call.leg = call.leg, None
            self._on_LegAnswered(tp.LegAnswered(leg=call.customer_leg))
            return
        if not dialable(action.number):
            log.warning("call %s: callback number %s cannot be dialled", call.call_id, log_safe(action.number, 40))
            call.outcome = "callback_failed_484"
            self._callback_progress(call, "pending", f"number {action.number[:40]!r} cannot be dialled")
            self._send(tp.Hangup(leg=call.agent_leg, reason="number cannot be dialled"))
            return
        uri = self.settings.sip.outbound_uri.format(number=action.number.lstrip("+"))
        call.customer_leg = self.telephony.dial(uri, peer=call.agent_leg, caller_id=self.settings.sip.caller_id,
                                                display_name=self.settings.center.name[:60], timeout=45)
        self.by_leg[call.customer_leg] = call.call_id

    def _do_OverflowCall(self, action: acd.OverflowCall) -> None:
        call = self.calls.get(action.call_id)
        if call is None:
            return
        event = ql.EXITEMPTY if action.reason in ("empty", "no_agents") else ql.EXITWITHTIMEOUT
        self._qlog(call.record, action.queue, None, event, action.reason, action.target)
        if action.target.startswith("queue:"):
            call.queue = action.target.split(":", 1)[1]
            self._write(self.store.update, call.record, queue=call.queue)
            self._qlog(call.record, call.queue, None, ql.ENTERQUEUE, "", call.ani)
            return
        if action.target == "callback":
            self._leave_with_callback(call, prompt=OVERFLOW_CALLBACK, outcome="overflowed_callback")
        else:
            self._finish_with_prompt(call, BUSY, outcome="overflowed")

    def _do_OfferCallback(self, action: acd.OfferCallback) -> None:
        call = self.calls.get(action.call_id)
        if call is not None and call.phase == QUEUED:
            self._play_in_queue(call, (CALLBACK_OFFER,))

    def _do_RefuseCall(self, action: acd.RefuseCall) -> None:
        call = self.calls.get(action.call_id)
        if call is None:
            return
        self._qlog(call.record, action.queue, None, ql.EXITEMPTY, action.reason)
        self._finish_with_prompt(call, BUSY, outcome="refused")

    def _do_AnnouncePosition(self, action: acd.AnnouncePosition) -> None:
        call = self.calls.get(action.call_id)
        if call is None or call.phase != QUEUED:
            return
        queue = self.settings.queues.get(action.queue)
        key = queue.callback_key if queue else None
        self._play_in_queue(call, position_announcement(action.position - 1, action.estimated_wait,
                                                        call.language, callback_key=key))

    def _do_AgentStateChanged(self, action: acd.AgentStateChanged) -> None:
        agent, state, previous = action.agent_id, action.state, action.previous
        if previous == "logged_out":
            self._qlog(None, None, agent, ql.AGENTLOGIN, self.phones.get(agent, ""))
        if state == "logged_out":
            self._qlog(None, None, agent, ql.AGENTLOGOFF, self.phones.get(agent, ""))
        if state == "not_ready" and previous != "not_ready":
            self._qlog(None, None, agent, ql.PAUSE, action.reason or "")
        if previous == "not_ready" and state == "available":
            self._qlog(None, None, agent, ql.UNPAUSE, "")
        if state == "wrap_up":
            self.wrap_started[agent] = self.now()
        elif previous == "wrap_up":
            started = self.wrap_started.pop(agent, None)
            call_id = self.last_call_of_agent.get(agent)
            if started and call_id:
                self._write(self.store.update, call_id, wrap_seconds=(self.now() - started).total_seconds())
        message = {"type": "agent.state", "agent_id": agent, "state": state, "reason": action.reason,
                   "previous": previous}
        if state == "wrap_up":
            message["wrap"] = self.wrap_up_of(agent)
        self.notifier.to_agent(agent, message)
        self.notifier.to_supervisors(message)

    def _do_EventRejected(self, action: acd.EventRejected) -> None:
        log.warning("ACD rejected %s: %s", type(action.event).__name__, action.reason)

    # ------------------------------------------------------------------ IVR

    def _ivr(self, call: Call, event: Any) -> None:
        if call.session is None or call.phase != IVR:
            return
        try:
            actions = call.session.handle(event, self.now())
        except ivr.IvrError as exc:
            log.error("IVR session of %s: %s", call.call_id, exc)
            self._enqueue(call, self.settings.ivr.fallback_queue, 0, {})
            return
        self._apply_ivr(call, actions)

    def _apply_ivr(self, call: Call, actions: list[Any]) -> None:
        for action in actions:
            if call.phase != IVR:
                break
            if isinstance(action, ivr.SetLanguage):
                call.language = action.language
            elif isinstance(action, ivr.Play):
                files = tuple(str(self._prompt(action.language, p)) for p in action.prompts)
                playback = self._send(tp.PlayPrompts(leg=call.leg, files=files))
                call.playback = playback
                call.ivr_plays[playback] = action.play_id
            elif isinstance(action, ivr.StartTimer):
                old = call.timers.pop(action.timer_id, None)
                if old:
                    old.cancel()
                call.timers[action.timer_id] = self._loop.call_later(
                    action.seconds, self._ivr_timeout, call.call_id, action.timer_id)
            elif isinstance(action, ivr.Lookup):
                self._lookup(call, action)
            elif isinstance(action, ivr.RouteToQueue):
                self._save_ivr(call)
                self._enqueue(call, action.queue, action.priority, dict(action.skills))
            elif isinstance(action, ivr.RequestCallback):
                self._ivr_callback(call, action)
            elif isinstance(action, ivr.Transfer):
                self._save_ivr(call)
                log.warning("call %s: transfer to %s is not supported; routing to %s", call.call_id,
                            action.destination, self.settings.ivr.fallback_queue)
                self._enqueue(call, self.settings.ivr.fallback_queue, 0, {})
            elif isinstance(action, ivr.Hangup):
                self._save_ivr(call)
                if call.kept:  # the caller leaves; the callback keeps its place in the ACD
                    call.phase = CALLBACK
                    call.caller_leaving = True
                else:
                    call.outcome = call.outcome or action.reason
                    call.phase = LEAVING
                self._send(tp.Hangup(leg=call.leg, reason=action.reason))

    def _prompt(self, language: str, prompt_id: str) -> Path:
        return self.prompts_dir / language / f"{prompt_id}.wav"

    def _ivr_timeout(self, call_id: str, timer_id: int) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.timers.pop(timer_id, None)
            self._ivr(call, ivr.TimedOut(timer_id))

    def _lookup(self, call: Call, action: ivr.Lookup) -> None:
        future = self._loop.run_in_executor(self._lookups, run_lookup, self.selfservice, action)

        def done(f: asyncio.Future) -> None:
            current = self.calls.get(call.call_id)
            if current is None or f.cancelled():
                return
            result = f.result() if f.exception() is None else ivr.LookupCompleted(action.request_id, error=str(f.exception()))
            if action.kind == "caller" and result.result is not None:
                current.customer_id = getattr(result.result, "customer_id", None)
                if current.customer_id is not None:
                    self._write(self.store.update, current.call_id, customer_id=current.customer_id)
            self._ivr(current, result)

        future.add_done_callback(done)

    def _save_ivr(self, call: Call) -> None:
        if call.session is not None:
            self._write(self.store.update, call.inbound_record or call.record, ivr_path=call.session.path_json(),
                        language=call.language)

    def _ivr_callback(self, call: Call, action: ivr.RequestCallback) -> None:
        now = self.now()
        number = action.number or call.ani
        self._write(self.store.add_callback, number=number, customer_id=action.customer_id or call.customer_id,
                    queue=action.queue, due_from=action.due or now,
                    due_until=(action.due or now) + dt.timedelta(hours=2), source="ivr", call_id=call.record)
        if action.keep_place:
            call.queue = action.queue
            call.queued_at = now
            self._keep_place(call, number)
            request = acd.CallbackRequested(call.call_id, number, queue=action.queue, priority=action.priority)
            # After the IVR's next steps (the confirmation and the hang-up) are under way: an agent
            # free at once would otherwise stop the session before the caller hears them.
            self._loop.call_soon(lambda: self._acd(request) if call.call_id in self.calls else None)
            return
        call.outcome = "callback_requested"

    # ------------------------------------------------------------------ queue

    def _enqueue(self, call: Call, queue: str, priority: int, skills: dict[str, int]) -> None:
        if queue not in self.settings.queues:
            log.error("call %s routed to unknown queue %r; using %s", call.call_id, queue,
                      self.settings.ivr.fallback_queue)
            queue = self.settings.ivr.fallback_queue
        now = self.now()
        self._cancel_timers(call)
        call.phase = QUEUED
        call.queue = queue
        call.priority = priority
        call.queued_at = now
        self._write(self.store.update, call.record, queue=queue, queued_at=now)
        self._qlog(call.record, queue, None, ql.ENTERQUEUE, "", call.ani)
        self._hold_music(call)
        self._acd(acd.CallQueued(call.call_id, queue, priority=priority, skills=skills or None, caller=call.ani))

    def _hold_music(self, call: Call) -> None:
        if call.leg and call.phase in (QUEUED, RINGING):
            call.announcing = False
            call.playback = self._send(tp.PlayPrompts(leg=call.leg, files=(str(self.prompts_dir / "moh.wav"),),
                                                      loop=True))

    def _play_in_queue(self, call: Call, prompts: tuple[str, ...]) -> None:
        if call.leg is None:
            return
        call.announcing = True
        files = tuple(str(self._prompt(call.language, p)) for p in prompts)
        call.playback = self._send(tp.PlayPrompts(leg=call.leg, files=files))

    def _leave_with_callback(self, call: Call, *, prompt: str, outcome: str) -> None:
        now = self.now()
        self._write(self.store.add_callback, number=call.ani, customer_id=call.customer_id, queue=call.queue,
                    due_from=now, due_until=now + dt.timedelta(hours=4), source="ivr", call_id=call.record)
        self._finish_with_prompt(call, prompt, outcome=outcome)

    def _finish_with_prompt(self, call: Call, prompt: str, *, outcome: str) -> None:
        """Say one last thing, then hang up (the call has already left the ACD)."""
        call.outcome = outcome
        call.phase = LEAVING
        if call.leg is None:
            self._finish(call)
            return
        call.hangup_after_playback = True
        call.playback = self._send(tp.PlayPrompts(leg=call.leg, files=(str(self._prompt(call.language, prompt)),)))

    def _caller_wants_callback(self, call: Call) -> None:
        """The caller pressed the callback key while waiting: keep the place, hang up, ring back later.

        queue_log: ``EXITWITHKEY`` closes the caller's call; the callback is a call of its own
        (``ENTERQUEUE`` … ``CONNECT`` … ``COMPLETE*``, or ``ABANDON`` when it ends unanswered).
        """
        self._qlog(call.record, call.queue, None, ql.EXITWITHKEY, self.settings.queues[call.queue].callback_key)
        self._write(self.store.add_callback, number=call.ani, customer_id=call.customer_id, queue=call.queue,
                    due_from=self.now(), due_until=None, source="ivr", call_id=call.record)
        self._keep_place(call, call.ani)
        call.phase = CALLBACK
        call.hangup_after_playback = True
        call.playback = self._send(tp.PlayPrompts(leg=call.leg,
                                                  files=(str(self._prompt(call.language, CALLBACK_CONFIRM)),)))
        self._acd(acd.CallbackRequested(call.call_id, call.ani))

    def _keep_place(self, call: Call, number: str) -> None:
        """A kept-place callback starts: a contact of its own in the records, while the ACD keeps the place."""
        now = self.now()
        call.kept = True
        call.callback_number = number
        call.inbound_record = call.record
        call.record = uuid.uuid4().hex
        self.by_record[call.record] = call.call_id
        self._write(self.store.update, call.inbound_record, outcome="callback_requested")
        self._write(self.store.open, call_id=call.record, direction="outbound", ani=number,
                    dnis=self.settings.sip.caller_id or "", display_name=call.display_name or None,
                    customer_id=call.customer_id, arrived_at=now)
        self._write(self.store.update, call.record, queue=call.queue, queued_at=call.queued_at or now)
        self._qlog(call.record, call.queue, None, ql.ENTERQUEUE, "", number)
        call.outcome = "callback_waiting"

    def _close_inbound(self, call: Call) -> None:
        """The caller's own call ends (they hung up after leaving a callback, or talk on it as the callback)."""
        if call.inbound_record is None:
            return
        values: dict[str, Any] = {"ended_at": self.now(), "outcome": "callback_requested"}
        if call.session is not None:
            values["ivr_path"] = call.session.path_json()
        self._write(self.store.update, call.inbound_record, **values)
        call.inbound_record = None

    def _callback_progress(self, call: Call, status: str, result: str, *, attempt: bool = False) -> None:
        """The callback row of a kept-place callback follows its attempts: in progress, done, or pending again."""
        if not call.kept:
            return
        self._write(self.store.callback_progress_of_request, call.call_id, status=status, result=result,
                    attempt=attempt, attempt_call_id=call.record if attempt else None)

    # ------------------------------------------------------------------ telephony events

    def _on_CallArrived(self, event: tp.CallArrived) -> None:
        now = self.now()
        self.counters["arrived"] += 1
        host = self._source_host(event)
        if not self._allowed(host):
            self.counters["refused_source"] += 1
            log.warning("refused call from %s (not in sip.trunk_allow): ani=%s dnis=%s", log_safe(host or "unknown"),
                        log_safe(event.ani, 80), log_safe(event.dnis, 80))
            self._send(tp.RejectCall(leg=event.leg, status=403, reason="Forbidden"))
            return
        number = normalize(event.ani, self.settings.center.default_region, strict=False)
        ani = number.e164 if number else event.ani
        call = Call(call_id=uuid.uuid4().hex, leg=event.leg, ani=ani, dnis=event.dnis,
                    display_name=event.display_name, arrived_at=now, language=self.settings.ivr.default_language)
        self.calls[call.call_id] = call
        self.by_leg[event.leg] = call.call_id
        self._write(self.store.open, call_id=call.call_id, direction="inbound", ani=ani, dnis=event.dnis,
                    display_name=event.display_name, customer_id=None, arrived_at=now)
        self._send(tp.AnswerCall(leg=event.leg))
        call.session = ivr.IvrSession(self.menu, ivr.CallInfo(call.call_id, caller=ani, dialed=event.dnis,
                                                              display_name=event.display_name),
                                      hours=self.settings.hours, language=call.language)
        self._apply_ivr(call, call.session.start(now))

    def _source_host(self, event: tp.CallArrived) -> str:
        """The caller's address: the remote address, or behind the SIP front the one it forwards."""
        remote = event.remote_address or ""
        if self.front_address and remote == self.front_address:
            remote = next((value for name, value in event.headers.items() if name.lower() == "x-src-addr"), "")
        return remote.strip().rsplit(":", 1)[0].strip("[]") if remote else ""

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trunk_networks)

    def _on_CallRefused(self, event: tp.CallRefused) -> None:
        if self.front_address and event.worker != "front" and event.remote_address == self.front_address:
            # Behind the SIP front a worker's refusal is a failover: the front tries the next worker
            # and reports the callers it really turns away (worker "front").
            self.counters["worker_refused"] = self.counters.get("worker_refused", 0) + 1
            return
        self.counters["blocked"] += 1
        now = self.now()
        call_id = uuid.uuid4().hex
        self._write(self.store.open, call_id=call_id, direction="inbound", ani=event.ani, dnis=event.dnis,
                    display_name=None, customer_id=None, arrived_at=now)
        self._write(self.store.update, call_id, ended_at=now, outcome="blocked")
        self.notifier.to_supervisors({"type": "call.blocked", "status": event.status, "reason": event.reason})

    def _on_PlaybackFinished(self, event: tp.PlaybackFinished) -> None:
        call = self._call_of_leg(event.leg)
        if call is None or event.playback != call.playback:
            return
        call.playback = None
        if call.hangup_after_playback:
            call.hangup_after_playback = False
            if not call.kept:  # a kept-place callback may already ring an agent: its phase is not ours
                call.phase = LEAVING
            call.caller_leaving = call.kept and event.leg == call.leg
            self._send(tp.Hangup(leg=event.leg, reason=call.outcome or ""))
            return
        if call.kept and event.leg == call.leg and call.phase != IVR:
            # the callback was offered while the caller still listened to the IVR: their part is over
            call.ivr_plays.pop(event.playback, None)
            call.caller_leaving = True
            self._send(tp.Hangup(leg=event.leg, reason="callback_requested"))
            return
        play_id = call.ivr_plays.pop(event.playback, None)
        if play_id is not None:
            self._ivr(call, ivr.PromptFinished(play_id))
        elif call.announcing and call.phase in (QUEUED, RINGING):
            self._hold_music(call)

    def _on_DigitReceived(self, event: tp.DigitReceived) -> None:
        call = self._call_of_leg(event.leg)
        if call is None or event.leg != call.leg:
            return
        if call.phase == IVR:
            if (call.playback in call.ivr_plays and call.session is not None and len(event.digit) == 1
                    and event.digit in ivr.events.DTMF_KEYS and call.session.waiting_for == "digits"):
                # barge-in (Play.barge_in): the key stops the prompt now, not when the next one replaces it
                call.ivr_plays.pop(call.playback)
                call.playback = None
                self._send(tp.StopPlayback(leg=call.leg))
            self._ivr(call, ivr.DigitReceived(event.digit))
        elif call.phase == QUEUED and call.queue:
            key = self.settings.queues[call.queue].callback_key
            if key and event.digit == key and call.callback_number is None:
                if dialable(call.ani):
                    self._caller_wants_callback(call)
                else:
                    log.info("call %s: callback key pressed, but the caller's number %s cannot be dialled back",
                             call.call_id, log_safe(call.ani, 40))

    def _on_LegAnswered(self, event: tp.LegAnswered) -> None:
        call = self._call_of_leg(event.leg)
        if call is None:
            return
        now = self.now()
        if event.leg == call.agent_leg and call.phase == RINGING:
            self._acd(acd.OfferAccepted(call.call_id, call.agent_id))
            if call.call_id not in self.calls or call.phase != RINGING:
                return
            call.phase = CONNECTED
            call.answered_at = now
            call.outcome = "answered" if call.callback_number is None else (
                "customer_no_answer" if call.outbound else call.outcome)
            self.last_call_of_agent[call.agent_id] = call.record
            self.handled_by[call.record] = call.agent_id
            ring = (now - (call.offered_at or now)).total_seconds()
            if call.callback_number is None:
                wait = (now - (call.queued_at or now)).total_seconds()
                self._send(tp.Bridge(a=call.leg, b=call.agent_leg))
                self._record(call)
                self._write(self.store.update, call.record, answered_at=now, wait_seconds=round(wait, 3),
                            outcome="answered")
                self._qlog(call.record, call.queue, call.agent_id, ql.CONNECT, int(wait), call.agent_leg, int(ring))
            self.notifier.to_agent(call.agent_id, {"type": "call.connected", "call_id": call.record})
        elif event.leg == call.customer_leg:
            if call.phase not in (RINGING, CONNECTED) or not call.agent_leg:  # the agent hung up meanwhile
                self._send(tp.Hangup(leg=event.leg, reason="agent gone"))
                return
            call.outcome = "callback_answered"
            self._send(tp.Bridge(a=call.agent_leg, b=call.customer_leg))
            self._record(call)
            self._write(self.store.update, call.record, answered_at=now, outcome="callback_answered")
            self._callback_result(call, "done", f"reached on call {call.call_id} by agent {call.agent_id}")
            self._callback_progress(call, "done", f"reached on call {call.record} by agent {call.agent_id}")
            self._qlog(call.record, call.queue, call.agent_id, ql.CONNECT, 0, call.customer_leg, 0)

    def _record(self, call: Call) -> None:
        if not self.settings.recording.enabled or self.recordings_dir is None:
            return
        path = self.recordings_dir / f"{self.now():%Y%m%d}" / f"{call.call_id}.wav"  # the worker makes the folder
        self._send(tp.StartRecording(conversation=call.call_id, legs=tuple(l for l in (call.leg or call.customer_leg,
                                     call.agent_leg) if l), path=str(path)))
        self._write(self.store.update, call.record, recording_path=str(path))

    def _on_LegFailed(self, event: tp.LegFailed) -> None:
        call = self._call_of_leg(event.leg)
        self.by_leg.pop(event.leg, None)
        if call is None:
            return
        if event.leg == call.agent_leg:
            call.agent_leg = None
            if call.phase == RINGING:
                agent = call.agent_id
                if not call.outbound:  # the agent's own dial: not a missed offer
                    self._qlog(call.record, call.queue, agent, ql.RINGNOANSWER, 0,
                               extra={"status": event.status, "reason": event.reason})
                call.phase = CALLBACK if call.callback_number else QUEUED
                self._acd(acd.OfferRejected(call.call_id, agent))
                if call.outbound:
                    self._end_dial(call, "agent_no_answer", f"agent {agent} did not answer ({event.status})")
        elif event.leg == call.customer_leg:
            call.customer_leg = None
            if call.phase != CONNECTED:  # the conversation already ended (the agent hung up): its outcome stands
                if not call.legs() and call.phase == LEAVING:
                    self._finish(call)
                return
            log.warning("callback %s to %s failed: %s %s", call.call_id, log_safe(call.callback_number, 80),
                        event.status, log_safe(event.reason, 120))
            call.outcome = f"callback_failed_{event.status}"
            self._callback_result(call, "pending", f"not reached on call {call.call_id}: {event.status} {event.reason}")
            self._callback_progress(call, "pending", f"not reached on call {call.record}: {event.status} {event.reason}")
            if call.agent_leg:
                self._send(tp.Hangup(leg=call.agent_leg, reason="customer unreachable"))
            elif call.phase == LEAVING:  # the agent's leg is gone already: nothing else will close it
                self._finish(call)

    def _on_CommandFailed(self, event: tp.CommandFailed) -> None:
        log.warning("telephony command %s (%s) failed: %s", event.command, event.command_id,
                    log_safe(event.reason, 200))
        call = self._call_of_leg(event.leg) if event.leg else None
        if call is None:
            return
        if event.command == "PlayPrompts" and event.command_id == call.playback:
            # A missing prompt must not strand the caller: carry on as if it had been heard.
            self._on_PlaybackFinished(tp.PlaybackFinished(leg=event.leg, playback=event.command_id, completed=False))
        elif event.command == "Dial" and event.leg == call.agent_leg and call.phase == RINGING and not call.outbound:
            self._offer_never_rang(call, event.reason)
        elif event.command == "Dial":
            self._on_LegFailed(tp.LegFailed(leg=event.leg, status=500, reason=event.reason))

    def _offer_never_rang(self, call: Call, reason: str) -> None:
        """The agent's phone was never dialled (no room on a worker): not a missed offer.

        The agent stays reserved a moment before the call goes back to its place, so a pool that
        is full is not asked again in a tight loop.
        """
        agent = call.agent_id
        if call.agent_leg:
            self.by_leg.pop(call.agent_leg, None)
        call.agent_leg = None
        self._qlog(call.record, call.queue, agent, ql.RINGCANCELED, 0, extra={"reason": f"not dialled: {reason}"})
        log.warning("call %s: the offer to agent %s could not be dialled (%s); trying again", call.call_id, agent,
                    log_safe(reason, 120))

        def retry() -> None:
            current = self.calls.get(call.call_id)
            if current is None or current.phase != RINGING or current.agent_id != agent or current.agent_leg:
                return
            current.phase = CALLBACK if current.callback_number else QUEUED
            self._acd(acd.OfferFailed(current.call_id, agent))

        self._loop.call_later(OFFER_RETRY_SECONDS, retry)

    def _on_LegEnded(self, event: tp.LegEnded) -> None:
        call = self._call_of_leg(event.leg)
        self.by_leg.pop(event.leg, None)
        if call is None:
            return
        now = self.now()
        if event.leg == call.leg and call.kept:
            # The caller hung up after leaving a kept-place callback: their call is over, the
            # callback (its own contact) goes on in the ACD whatever phase it is in.
            call.leg = None
            self._cancel_timers(call)
            if call.session is not None and not call.session.ended:
                call.session.handle(ivr.CallerHungUp(), now)
            self._close_inbound(call)
        elif event.leg == call.leg:
            call.leg = None
            self._cancel_timers(call)
            if call.phase == IVR:
                if call.session is not None and not call.session.ended:
                    call.session.handle(ivr.CallerHungUp(), now)
                self._save_ivr(call)
                call.outcome = call.outcome or "abandoned_ivr"
            elif call.phase in (QUEUED, RINGING):
                waited = (now - (call.queued_at or now)).total_seconds()
                self._qlog(call.record, call.queue, None, ql.ABANDON, 1, 1, int(waited))
                call.outcome = "abandoned"
                self._write(self.store.update, call.record, wait_seconds=round(waited, 3))
                self._drop_agent_leg(call)
                self._acd(acd.CallAbandoned(call.call_id))
            elif call.phase == CONNECTED:
                self._qlog(call.record, call.queue, call.agent_id, ql.COMPLETECALLER,
                           int((call.answered_at - call.queued_at).total_seconds()) if call.queued_at else 0,
                           int((now - call.answered_at).total_seconds()), 1)
                self._end_conversation(call, now)
            elif call.phase == CALLBACK:
                return  # the caller left on purpose; the callback stays queued
        elif event.leg == call.agent_leg:
            call.agent_leg = None
            if call.phase == CONNECTED and call.callback_number is not None and not call.outbound \
                    and call.outcome != "callback_answered":
                # the customer was not reached, or the agent hung up first: the callback ends unanswered
                if not (call.outcome or "").startswith("callback_failed"):
                    call.outcome = "callback_agent_hung_up"
                    self._callback_progress(call, "pending", f"agent {call.agent_id} hung up before the customer "
                                                             f"answered on call {call.record}")
                self._qlog(call.record, call.queue, call.agent_id, ql.ABANDON, 1, 1,
                           int((now - (call.queued_at or now)).total_seconds()), extra={"reason": call.outcome})
                self._end_conversation(call, now)
            elif call.phase == CONNECTED:
                self._qlog(call.record, call.queue, call.agent_id, ql.COMPLETEAGENT,
                           int((call.answered_at - call.queued_at).total_seconds()) if call.queued_at else 0,
                           int((now - call.answered_at).total_seconds()), 1)
                self._end_conversation(call, now)
            elif call.phase == RINGING:
                self._on_LegFailed(tp.LegFailed(leg=event.leg, status=event.status or 487, reason=event.cause))
                return
        elif event.leg == call.customer_leg:
            call.customer_leg = None
            if call.phase == CONNECTED and call.outcome == "callback_answered":
                self._qlog(call.record, call.queue, call.agent_id, ql.COMPLETECALLER,
                           int((call.answered_at - call.queued_at).total_seconds())
                           if call.queued_at and call.answered_at else 0,
                           int((now - (call.answered_at or now)).total_seconds()), 1)
                self._end_conversation(call, now)
            elif call.phase == CONNECTED:  # the customer was never reached (busy, no answer)
                self._qlog(call.record, call.queue, call.agent_id, ql.ABANDON, 1, 1,
                           int((now - (call.queued_at or now)).total_seconds()),
                           extra={"reason": call.outcome or "customer_not_reached"})
                self._end_conversation(call, now)
        if not call.legs() and call.phase != CALLBACK:
            self._finish(call)

    def _end_conversation(self, call: Call, now: dt.datetime) -> None:
        talk = (now - call.answered_at).total_seconds() if call.answered_at else 0.0
        self._write(self.store.update, call.record, talk_seconds=round(talk, 3))
        if self.settings.recording.enabled and self.recordings_dir is not None:
            self._send(tp.StopRecording(conversation=call.call_id))
        call.phase = LEAVING
        for leg in call.legs():
            self._send(tp.Hangup(leg=leg, reason="conversation ended"))
        if call.agent_id and call.answered_at is not None:
            self._owe(call.agent_id, self._owed_of(call, now), notify=False)  # told with call.ended below
        self._acd(acd.CallEnded(call.call_id))
        if call.agent_id and (call.agent_id, call.record) in self.disposed:  # saved while it was on
            self._acd(acd.CallDisposed(call.agent_id, call.call_id))
        if call.agent_id:
            self.notifier.to_agent(call.agent_id, {"type": "call.ended", "call_id": call.record,
                                                   "owed": self.owed_list(call.agent_id)})

    def _drop_agent_leg(self, call: Call) -> None:
        """Cancel a ringing agent leg at once; whatever that leg reports afterwards is ignored."""
        if call.agent_leg:
            self._send(tp.Hangup(leg=call.agent_leg, reason="offer cancelled"))
            self.by_leg.pop(call.agent_leg, None)
            call.agent_leg = None
            if call.phase == RINGING and call.agent_id:
                self.notifier.to_agent(call.agent_id, {"type": "call.offer_cancelled", "call_id": call.record,
                                                       "reason": "caller_hung_up"})

    def _on_WorkerDied(self, event: tp.WorkerDied) -> None:
        lost = {self.by_leg.get(leg) for leg in event.legs} - {None}
        log.error("worker %s died (rc %s): %d call(s) lost", event.worker, event.returncode, len(lost))
        self.counters["failed_worker"] += len(lost)
        for call_id in lost:
            call = self.calls.get(call_id)
            if call is None:
                continue
            for leg in call.legs():
                self.by_leg.pop(leg, None)
            call.leg = call.agent_leg = call.customer_leg = None
            self._cancel_timers(call)
            call.outcome = "failed_worker"
            if call.phase == CONNECTED:
                self._end_conversation(call, self.now())  # owed, wrap-up and call.ended as for any call
            elif call.phase in (QUEUED, RINGING, CALLBACK):
                self._acd(acd.CallAbandoned(call.call_id))
            self._finish(call)

    def _close_queue_log(self, call: Call, reason: str) -> None:
        """A call still open in queue_log when it ends (worker death, shutdown): one closing event with the reason.

        Connected: ``COMPLETECALLER|hold|talk|1`` (Asterisk has no event for a failure; the reason is in
        the queue_events row); never connected: ``ABANDON|1|1|wait``.
        """
        connected = self._queue_open.get(call.record)
        if connected is None:
            return
        now = self.now()
        wait = int(((call.answered_at or now) - call.queued_at).total_seconds()) if call.queued_at else 0
        if connected:
            talk = int((now - call.answered_at).total_seconds()) if call.answered_at else 0
            self._qlog(call.record, call.queue, call.agent_id, ql.COMPLETECALLER, wait, talk, 1,
                       extra={"reason": reason})
        else:
            self._qlog(call.record, call.queue, None, ql.ABANDON, 1, 1, wait, extra={"reason": reason})

    def _cancel_timers(self, call: Call) -> None:
        for handle in call.timers.values():
            handle.cancel()
        call.timers.clear()

    def _finish(self, call: Call) -> None:
        """The contact is over: complete its row and forget it."""
        if call.phase == ENDED:
            return
        call.phase = ENDED
        now = self.now()
        if call.outbound:  # a dial-now that ends without reaching the customer leaves its callback to do
            self._callback_result(call, "pending", f"not reached on call {call.call_id}: {call.outcome or 'ended'}")
        if call.kept and call.outcome != "callback_answered":  # never reached: left for agents to call
            self._callback_progress(call, "pending", f"not reached on call {call.record}: {call.outcome or 'ended'}")
        values: dict[str, Any] = {"ended_at": now, "outcome": call.outcome or "ended"}
        if call.session is not None and call.queued_at is None:
            values["ivr_path"] = call.session.path_json()
        self._close_queue_log(call, call.outcome or "ended")
        self._close_inbound(call)
        self._write(self.store.update, call.record, **values)
        self.calls.pop(call.call_id, None)
        self.by_record.pop(call.record, None)
        for leg in (call.leg, call.agent_leg, call.customer_leg):
            if leg:
                self.by_leg.pop(leg, None)

    # ------------------------------------------------------------------ agent requests (CTI)

    def login(self, agent_id: str, *, phone: str | None = None, not_ready_reason: str | None = None) -> None:
        if phone:
            self.phones[agent_id] = phone
        self._acd(acd.AgentLoggedIn(agent_id, not_ready_reason=not_ready_reason))

    def logout(self, agent_id: str) -> None:
        self._acd(acd.AgentLoggedOut(agent_id))

    def ready(self, agent_id: str) -> None:
        """Available now; refused (:class:`RequestRefused`) while a disposition the queue requires is owed."""
        self._acd_request(acd.AgentBecameAvailable(agent_id))

    def not_ready(self, agent_id: str, reason: str) -> None:
        self._acd(acd.AgentWentNotReady(agent_id, reason))

    def end_wrap_up(self, agent_id: str) -> None:
        """End after-call work; refused (:class:`RequestRefused`) while a required disposition is owed."""
        self._acd_request(acd.WrapUpEnded(agent_id))

    def extend_wrap_up(self, agent_id: str) -> dict[str, Any]:
        """More after-call time (``timed_extendable`` queues); returns the wrap-up with its new end."""
        self._acd_request(acd.WrapUpExtended(agent_id))
        wrap = self.wrap_up_of(agent_id)
        self.notifier.to_agent(agent_id, {"type": "agent.wrap_up", "agent_id": agent_id, "wrap": wrap})
        return wrap or {}

    # ------------------------------------------------------------------ supervisor actions (CTI)

    def force_state(self, supervisor: str, agent_id: str, state: str, reason: str | None = None) -> dict[str, Any]:
        """A supervisor sets an agent ready, not ready (with a reason) or logged out; audited.

        Raises :class:`SupervisorActionRefused` (and changes nothing) when the agent cannot be
        put in that state now. Returns the agent's state afterwards and a pending not-ready.
        """
        if agent_id not in self.settings.agents or self.settings.agents[agent_id].role != "agent":
            raise SupervisorActionRefused(f"no agent {agent_id!r}")
        before, before_reason = self.engine.agent_state(agent_id)
        said = before.replace("_", " ")
        if before == "logged_out":
            raise SupervisorActionRefused(f"agent {agent_id} is logged out; they log in from their console")
        if state == "ready":
            if before == "not_ready":
                self.ready(agent_id)
            elif before == "wrap_up":
                self._acd(acd.WrapUpEnded(agent_id, forced=True))  # a disposition owed stays listed
            else:
                raise SupervisorActionRefused(f"agent {agent_id} is {said}: only a not-ready agent or one in "
                                              "wrap-up can be made ready")
        elif state == "not_ready":
            if before == "on_call" and self._live_call_of(agent_id) is None:
                self._end_for_supervisor(supervisor, agent_id)  # on a call that no longer exists: free them
            if reason not in self.settings.acd.not_ready_reasons:
                raise SupervisorActionRefused(f"unknown not-ready reason {str(reason)[:40]!r}; known: "
                                              + ", ".join(self.settings.acd.not_ready_reasons))
            if before == "not_ready" and before_reason == reason:
                raise SupervisorActionRefused(f"agent {agent_id} is already not ready ({reason})")
            self.not_ready(agent_id, reason)
        elif state == "logged_out":
            if before in ("on_call", "reserved"):
                self._end_for_supervisor(supervisor, agent_id)
                before_ended, _ = self.engine.agent_state(agent_id)
                if before_ended in ("on_call", "reserved"):
                    raise SupervisorActionRefused(f"agent {agent_id} is still {before_ended.replace('_', ' ')}")
            if self.engine.agent_state(agent_id)[0] == "wrap_up":
                self._acd(acd.WrapUpEnded(agent_id, forced=True))
            self.logout(agent_id)
        else:
            raise SupervisorActionRefused(f"unknown state {state[:20]!r}: ready, not_ready or logged_out")
        after, after_reason = self.engine.agent_state(agent_id)
        waits = after == "on_call" or (after == "wrap_up" and (self.wrap_up_of(agent_id) or {}).get("owed_call"))
        pending = reason if state == "not_ready" and waits else None
        if (after, after_reason) == (before, before_reason) and pending is None:
            raise SupervisorActionRefused(f"agent {agent_id} stayed {said}: the ACD did not accept the change")
        self._audit(supervisor, f"agent.{state}", f"agent:{agent_id}",
                    {"before": before, "before_reason": before_reason, "after": after, "after_reason": after_reason,
                     "reason": reason, "pending": pending})
        log.info("supervisor %s set agent %s %s (was %s)", supervisor, agent_id, state, before)
        return {"agent_id": agent_id, "state": after, "reason": after_reason, "pending": pending}

    def _live_call_of(self, agent_id: str) -> Call | None:
        return next((c for c in self.calls.values() if c.agent_id == agent_id and c.phase in (RINGING, CONNECTED)),
                    None)

    def _end_for_supervisor(self, supervisor: str, agent_id: str) -> None:
        """Take the agent off the call they hold (recorded), or off one the ACD believes in that no longer exists."""
        call = self._live_call_of(agent_id)
        now = self.now()
        if call is not None and call.phase == CONNECTED:
            self._qlog(call.record, call.queue, agent_id, ql.COMPLETEAGENT,
                       int((call.answered_at - call.queued_at).total_seconds())
                       if call.queued_at and call.answered_at else 0,
                       int((now - (call.answered_at or now)).total_seconds()), 1,
                       extra={"reason": f"ended by supervisor {supervisor}"})
            call.outcome = call.outcome or "ended_by_supervisor"
            self._end_conversation(call, now)
            return
        if call is not None:  # ringing: the offer is withdrawn, the caller keeps their place
            self._acd(acd.AgentWentNotReady(agent_id, "no_answer" if "no_answer" in self.settings.acd.not_ready_reasons
                                            else self.settings.acd.not_ready_reasons[0]))
            return
        phantom = self.engine.agent_call(agent_id)
        if phantom is not None:
            log.error("agent %s was held on call %s, which no longer exists: released by supervisor %s",
                      agent_id, phantom, supervisor)
            self._acd(acd.CallEnded(phantom))
            if self.engine.agent_state(agent_id)[0] == "wrap_up":
                self._acd(acd.WrapUpEnded(agent_id, forced=True))

    def set_skills(self, supervisor: str, agent_id: str, skills: dict[str, int]) -> dict[str, Any]:
        """A supervisor replaces an agent's skills (levels 1-5) until the server restarts; audited."""
        if agent_id not in self.settings.agents or self.settings.agents[agent_id].role != "agent":
            raise SupervisorActionRefused(f"no agent {agent_id!r}")
        known = self.known_skills()
        unknown = sorted(str(name)[:40] for name in skills if name not in known)
        if unknown:
            raise SupervisorActionRefused(f"unknown skill{'s' if len(unknown) > 1 else ''} "
                                          f"{', '.join(repr(u) for u in unknown[:5])}{' …' if len(unknown) > 5 else ''}"
                                          f"; known: {', '.join(sorted(known))}")
        if not skills:
            raise SupervisorActionRefused("give at least one skill: an agent with none is offered only calls "
                                          "that need no skill")
        try:
            new = normalize_skills(skills, "skills")
        except acd.AcdError as exc:
            raise SupervisorActionRefused(str(exc)) from None
        before = self.engine.agent_skills(agent_id)
        if new == before:
            raise SupervisorActionRefused(f"agent {agent_id} already has these skills")
        self._acd(acd.SkillsChanged(agent_id, new))
        after = self.engine.agent_skills(agent_id)
        if after != new:
            raise SupervisorActionRefused(f"the ACD did not accept the skills for agent {agent_id}")
        self.notifier.to_supervisors({"type": "acd.changed", "queues": [], "agents": [agent_id]})
        self._audit(supervisor, "agent.skills", f"agent:{agent_id}", {"before": before, "after": after})
        log.info("supervisor %s changed the skills of agent %s: %s -> %s", supervisor, agent_id, before, after)
        return {"agent_id": agent_id, "skills": after}

    def known_skills(self) -> set[str]:
        """The skills the configuration speaks of (agents' and queues'): the only ones a supervisor may set."""
        known = {name for agent in self.settings.agents.values() for name in agent.skills}
        known.update(name for queue in self.settings.queues.values() for name in queue.required_skills)
        return known

    def _audit(self, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
        self._write(self.store.audit, actor=actor, action=action, target=target, details=details)

    def dispose(self, agent_id: str, call_id: str, code: str, notes: str | None = None,
                callback: dict[str, Any] | None = None) -> None:
        """Save the agent's wrap-up code for one named call they handled; rules come from ``[dispositions]``.

        The pair (agent, call) must be one the agent owes (or their connected call): nothing here
        ever picks "the agent's latest call". Raises :class:`DispositionRefused` with a message for
        the agent when a rule is not met; nothing is written then.
        """
        rule = self.settings.dispositions.get(code)
        if rule is None:
            raise DispositionRefused(f"unknown disposition code {code!r}; known: {', '.join(self.settings.dispositions)}")
        if rule.requires_note and not (notes or "").strip():
            raise DispositionRefused(f"{rule.label}: a note is required")
        if rule.requires_callback and not callback:
            raise DispositionRefused(f"{rule.label}: schedule a callback (number and time)")
        if callback and not callback.get("number"):
            raise DispositionRefused("a callback needs a number")
        if (agent_id, call_id) in self.disposed:
            raise DispositionRefused(f"call {call_id} already has your disposition "
                                     f"({self.disposed[(agent_id, call_id)]}); it is not saved twice")
        if not self.may_dispose(agent_id, call_id):
            live = self._live(call_id)
            if live is not None and live.agent_id == agent_id and live.phase == RINGING:
                raise DispositionRefused(f"call {call_id} has not been answered yet")
            raise DispositionRefused(f"call {call_id} was not handled by agent {agent_id}")
        self._write(self.store.save_disposition, call_id=call_id, code=code, notes=(notes or None) and notes[:4000],
                    agent_id=agent_id, callback=callback)
        self.disposed[(agent_id, call_id)] = code
        owed = self.owed.get(agent_id)
        entry = owed.pop(call_id, None) if owed is not None else None
        if entry is not None:
            self._owed_changed(agent_id)
        live = self._live(call_id)
        engine_id = entry.engine_id if entry is not None else (live.call_id if live is not None else call_id)
        self._acd(acd.CallDisposed(agent_id, engine_id))

    def owed_list(self, agent_id: str) -> list[dict[str, Any]]:
        """The dispositions the agent owes, oldest first, as the consoles show them."""
        return [o.to_wire() for o in self.owed.get(agent_id, {}).values()]

    def _owed_of(self, call: Call, now: dt.datetime) -> OwedDisposition:
        return OwedDisposition(call_id=call.record, ani=call.callback_number or call.ani,
                               display_name=call.display_name, queue=call.queue, customer_id=call.customer_id,
                               direction="outbound" if call.outbound or call.kept else "inbound",
                               answered_at=call.answered_at, ended_at=now, engine_id=call.call_id)

    def _owe(self, agent_id: str, owed: OwedDisposition, *, notify: bool = True) -> None:
        if (agent_id, owed.call_id) in self.disposed:
            return  # saved while the call was still on
        listed = self.owed.setdefault(agent_id, OrderedDict())
        listed[owed.call_id] = owed
        while len(listed) > OWED_PER_AGENT:
            dropped, _ = listed.popitem(last=False)
            log.warning("agent %s owes more than %d dispositions: call %s is no longer listed", agent_id,
                        OWED_PER_AGENT, dropped)
        if notify:
            self._owed_changed(agent_id)

    def _owed_changed(self, agent_id: str) -> None:
        self.notifier.to_agent(agent_id, {"type": "disposition.owed", "owed": self.owed_list(agent_id)})
        self.notifier.to_supervisors({"type": "acd.changed", "queues": [], "agents": [agent_id]})

    def agent_snapshot(self, agent_id: str) -> dict[str, Any]:
        """The agent's state and current call, for a console that (re)connects."""
        state, reason = self.engine.agent_state(agent_id)
        call_id = self.last_call_of_agent.get(agent_id)
        call = self._live(call_id)
        ringing = next((c for c in self.calls.values() if c.agent_id == agent_id and c.phase == RINGING), None)
        # a call transferred away keeps its id: it is this agent's only while they are its agent
        current = ringing or (call if call is not None and call.phase == CONNECTED and call.agent_id == agent_id
                              else None)
        return {
            "agent_id": agent_id, "state": state, "reason": reason,
            "phone": self.phones.get(agent_id),
            "call": None if current is None else {
                "call_id": current.record, "phase": current.phase, "queue": current.queue, "ani": current.ani,
                "display_name": current.display_name, "customer_id": current.customer_id,
                "ivr_path": current.session.path_json() if current.session else [],
                "answered_at": current.answered_at.isoformat() if current.answered_at else None,
            },
            "last_call_id": call_id,
            "owed": self.owed_list(agent_id),
            "wrap": self.wrap_up_of(agent_id),
        }

    def _live(self, record: str | None) -> Call | None:
        """The call in progress behind a record id (what consoles and records call it)."""
        if not record:
            return None
        return self.calls.get(self.by_record.get(record, record))

    def _conversation_of(self, agent_id: str) -> Call | None:
        call = self._live(self.last_call_of_agent.get(agent_id))
        if call is None or call.phase != CONNECTED or call.agent_id != agent_id or not call.agent_leg:
            return None
        return call

    def hang_up(self, agent_id: str) -> bool:
        """The agent ends their own current conversation."""
        call = self._conversation_of(agent_id)
        if call is None:
            return False
        self._send(tp.Hangup(leg=call.agent_leg, reason="agent hung up"))
        return True

    def hold(self, agent_id: str) -> bool:
        """Hold music for the caller; the agent hears nothing until unhold."""
        call = self._conversation_of(agent_id)
        if call is None or call.on_hold or not call.leg:
            return False
        self._send(tp.Unbridge(a=call.leg, b=call.agent_leg))
        call.on_hold = True
        call.playback = self._send(tp.PlayPrompts(leg=call.leg, files=(str(self.prompts_dir / "moh.wav"),), loop=True))
        self.notifier.to_agent(agent_id, {"type": "call.held", "call_id": call.record})
        return True

    def unhold(self, agent_id: str) -> bool:
        call = self._conversation_of(agent_id)
        if call is None or not call.on_hold or not call.leg:
            return False
        self._send(tp.StopPlayback(leg=call.leg))
        self._send(tp.Bridge(a=call.leg, b=call.agent_leg))
        call.on_hold = False
        self.notifier.to_agent(agent_id, {"type": "call.resumed", "call_id": call.record})
        return True

    def transfer(self, agent_id: str, target: str) -> bool:
        """Blind transfer of the agent's caller to ``queue:ID`` or ``agent:ID``; the agent goes to wrap-up.

        A queue: the caller waits there like any caller. An agent: that agent must be available
        now (else :class:`RequestRefused`, and the call stays as it was); their phone rings while
        the caller hears hold music, and if they do not answer the caller waits in the call's queue.
        """
        call = self._conversation_of(agent_id)
        kind, _, name = target.partition(":")
        if call is None or not call.leg:
            return False
        if kind == "agent":
            agent = self.settings.agents.get(name)
            if agent is None or agent.role != "agent":
                raise RequestRefused(f"there is no agent {name!r}")
            if name == agent_id:
                raise RequestRefused("you cannot transfer a call to yourself")
            state, _ = self.engine.agent_state(name)
            if state != "available":
                raise RequestRefused(f"agent {name} ({agent.name}) is {state.replace('_', ' ')}, not available")
        elif kind != "queue" or name not in self.settings.queues:
            return False
        now = self.now()
        talk = (now - call.answered_at).total_seconds() if call.answered_at else 0.0
        self._write(self.store.update, call.record, talk_seconds=round(talk, 3))
        self._send(tp.Unbridge(a=call.leg, b=call.agent_leg))
        self._qlog(call.record, call.queue, agent_id, ql.BLINDTRANSFER, name if kind == "queue" else target, "", 0)
        # They still dispose of their part (not setdefault: that would bypass the bound).
        self.transferred_from[call.record] = self.transferred_from.get(call.record, set()) | {agent_id}
        self._owe(agent_id, self._owed_of(call, now), notify=False)  # told with call.ended below
        self._acd(acd.CallEnded(call.call_id))
        self._send(tp.Hangup(leg=call.agent_leg, reason="transferred"))
        self.by_leg.pop(call.agent_leg, None)
        call.agent_leg = call.agent_id = None
        call.answered_at = call.offered_at = None
        call.on_hold = False
        self.notifier.to_agent(agent_id, {"type": "call.ended", "call_id": call.record, "reason": "transferred",
                                          "owed": self.owed_list(agent_id)})
        if kind == "queue":
            self._enqueue(call, name, call.priority, {})
            return True
        queue = call.queue if call.queue in self.settings.queues else self.settings.ivr.fallback_queue
        call.phase = QUEUED
        call.queue = queue
        call.queued_at = now
        self._write(self.store.update, call.record, queue=queue, queued_at=now)
        self._hold_music(call)
        self._qlog(call.record, queue, None, ql.ENTERQUEUE, "", call.ani)
        self._acd(acd.DirectCallRequested(call.call_id, name, queue, priority=call.priority, caller=call.ani))
        if call.phase != RINGING:  # the target became busy in between: the caller waits in the queue instead
            log.warning("call %s: transfer to agent %s not offered; queueing in %s", call.call_id, name, queue)
            self._enqueue(call, queue, call.priority, {})
        return True

    def may_dispose(self, agent_id: str, call_id: str) -> bool:
        """The agent owes this call's disposition, or is talking on it now."""
        if call_id in self.owed.get(agent_id, {}):
            return True
        call = self._live(call_id)
        return call is not None and call.phase == CONNECTED and call.agent_id == agent_id and \
            self.handled_by.get(call_id) == agent_id

    def owns_call(self, agent_id: str, call_id: str) -> bool:
        """The call is the agent's: ringing or connected for them now, or handled by them (for notes)."""
        call = self._live(call_id)
        if call is not None and call.agent_id == agent_id and call.phase in (RINGING, CONNECTED):
            return True
        return call_id in self.owed.get(agent_id, {}) or self.handled_by.get(call_id) == agent_id or \
            agent_id in self.transferred_from.get(call_id, ())

    def dial(self, agent_id: str, number: str, *, callback_id: int | None = None, customer_id: int | None = None,
             queue: str | None = None, display_name: str | None = None) -> bool:
        """The agent calls a customer now (a callback, or a number): their own phone rings first, then the customer's.

        The agent must be available or in wrap-up and have no call; otherwise :class:`RequestRefused`.
        The contact is an outbound interaction; a callback is marked in progress (one more attempt)
        and then done when the customer answers, or pending again with what went wrong.
        """
        state, _ = self.engine.agent_state(agent_id)
        if state not in ("available", "wrap_up"):
            raise RequestRefused(f"you can dial when available or in wrap-up, not while {state.replace('_', ' ')}")
        if any(c.agent_id == agent_id and c.phase in (RINGING, CONNECTED) for c in self.calls.values()):
            raise RequestRefused("you already have a call")
        if callback_id is not None and any(c.callback_id == callback_id for c in self.calls.values()):
            raise RequestRefused(f"callback {callback_id} is being dialled already")
        last = self.last_call_of_agent.get(agent_id)
        if state == "wrap_up" and last is not None and last in self.owed.get(agent_id, {}):
            # Dialling ends the wrap-up: the contact just handled must not be left without its code.
            raise RequestRefused(f"save the disposition of your last call ({last}) first")
        if not self.phones.get(agent_id):
            raise RequestRefused("no phone is configured for you")
        if queue not in self.settings.queues:
            agent = self.settings.agents.get(agent_id)
            homes = [q for q in (agent.queues if agent else ()) if q in self.settings.queues]
            queue = homes[0] if homes else self.settings.ivr.fallback_queue
        now = self.now()
        call = Call(call_id=uuid.uuid4().hex, leg=None, ani=number, dnis=self.settings.sip.caller_id or "",
                    display_name=(display_name or "")[:80], arrived_at=now, language=self.settings.ivr.default_language,
                    phase=CALLBACK, customer_id=customer_id, queue=queue, queued_at=now, callback_number=number,
                    outcome="agent_no_answer", outbound=True, callback_id=callback_id)
        self.calls[call.call_id] = call
        self._write(self.store.open, call_id=call.call_id, direction="outbound", ani=number, dnis=call.dnis,
                    display_name=display_name, customer_id=customer_id, arrived_at=now)
        self._write(self.store.update, call.record, queue=queue, queued_at=now)
        self._acd(acd.DirectCallRequested(call.call_id, agent_id, queue, number=number, caller=number))
        if call.phase != RINGING:
            self.calls.pop(call.call_id, None)
            self._write(self.store.update, call.record, ended_at=now, outcome="dial_refused")
            raise RequestRefused(f"{number} could not be dialled now (agent state: {self.engine.agent_state(agent_id)[0]})")
        if callback_id is not None:
            self._write(self.store.callback_progress, callback_id, status="in_progress", attempt=True,
                        call_id=call.call_id, result=f"dialled on call {call.call_id} by agent {agent_id}")
        log.info("agent %s dials %s (callback %s) on call %s", agent_id, log_safe(number, 80), callback_id,
                 call.call_id)
        return True

    def _callback_result(self, call: Call, status: str, result: str) -> None:
        """Settle the callback a dial-now worked, once: ``done`` (reached) or ``pending`` (to try again)."""
        if call.callback_id is None:
            return
        self._write(self.store.callback_progress, call.callback_id, status=status, result=result)
        call.callback_id = None

    def _end_dial(self, call: Call, outcome: str, why: str) -> None:
        """An agent's dial ends before the customer was dialled: close it, and leave its callback to do."""
        call.outcome = outcome
        self._callback_result(call, "pending", why)
        if call.agent_leg:
            self._send(tp.Hangup(leg=call.agent_leg, reason=outcome))
        call.phase = LEAVING
        self._finish(call)
