"""The contact center: one object the composition root builds and the CTI server talks to.

One asyncio loop owns all of it. The pure engines (``ivr.IvrSession`` per call, one
``acd.AcdEngine``) decide; the call flow only translates between them and the outside, keeps
timers, and writes every step to the contact store through a single writer thread (ordered,
never blocking the loop). Each event is handled in isolation: a failure in one call is logged
and never touches another.

Its jobs live in one file each:

- ``call_flow.py``: telephony events (a call arriving, legs answered, failed, ended, a worker lost)
  and how a contact ends;
- ``ivr_shell.py``: each caller's IVR session and the caller's side of the queue;
- ``acd_shell.py``: events into the ACD engine, its actions carried out;
- ``agent_desk.py``: agents' requests and the rules that say whether they may;
- ``supervision.py``: supervisors' actions, audited;
- ``devices.py``: agents' phones, registered or not, and what a phone going away means;
- ``reconciliation.py``: the sweep that compares all of the above with the workers' legs and repairs it;
- ``records.py``: the record writer and queue_log's exactly-once rule;
- ``calls.py``: the ``Call`` a contact is while it lives; ``errors.py``: the refusals.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import acd
import ivr
from acd import AcdEngine, AcdSettings
from acd.settings import PHONE_OFFLINE
from callcenter.clock import utcnow
from callcenter.config import Settings
from callcenter.core import telephony_protocol as tp
from callcenter.core.acd_shell import AcdShell
from callcenter.core.agent_desk import AgentDesk
from callcenter.core.call_flow import CallFlow
from callcenter.core.devices import OFFLINE, Devices
from callcenter.core.calls import (
    CONNECTED, DISPOSABLE_CALLS, LEAVING, OWED_LOOKBACK, BoundedDict, Call, OwedDisposition, dialable,
)
from callcenter.core.errors import CoreError, DispositionRefused, RequestRefused, SupervisorActionRefused
from callcenter.core.ivr_shell import IvrShell
from callcenter.core.ports import ContactStore, Notifier, NullNotifier, QueueLogSink, Telephony
from callcenter.core.reconciliation import Reconciliation
from callcenter.core.records import RecordWriter
from callcenter.core.supervision import Supervision
from ivr.ports import SelfServicePort

__all__ = [
    "BoundedDict", "Call", "ContactCenter", "CoreError", "DispositionRefused", "OwedDisposition", "RequestRefused",
    "SupervisorActionRefused", "dialable",
]

log = logging.getLogger(__name__)


class ContactCenter(CallFlow, IvrShell, AcdShell, AgentDesk, Supervision, Devices, Reconciliation):
    """Drives calls through IVR, queue and agent; see the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        menu: ivr.IvrMenu,
        telephony: Telephony,
        store: ContactStore,
        selfservice: SelfServicePort,
        prompts_dir: Path,
        notifier: Notifier | None = None,
        queue_log: QueueLogSink | None = None,
        recordings_dir: Path | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        front_address: str | None = None,
        reconcile: bool = False,
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
        self.records = RecordWriter(store, queue_log, self.now)
        self.phones = {aid: a.phone for aid, a in settings.agents.items()}
        self.last_call_of_agent: dict[str, str] = {}
        # agent -> the conversations they handled that still need a disposition, oldest first
        self.owed: dict[str, OrderedDict[str, OwedDisposition]] = {}
        self.disposed: BoundedDict[tuple[str, str], str] = BoundedDict(DISPOSABLE_CALLS)  # (agent, call) -> code
        # Who may save a call's disposition: kept for the last DISPOSABLE_CALLS calls, not forever.
        self.handled_by: BoundedDict[str, str] = BoundedDict(DISPOSABLE_CALLS)  # call -> agent who answered it
        self.transferred_from: BoundedDict[str, set[str]] = BoundedDict(DISPOSABLE_CALLS)  # agents before a transfer
        self.wrap_started: dict[str, dt.datetime] = {}
        self.state_since: dict[str, dt.datetime] = {}  # agent -> when their state last changed
        self.drafts: BoundedDict[tuple[str, str], str] = BoundedDict(2000)  # (agent, call) -> notes until disposed
        self.trunk_networks = [ipaddress.ip_network(n, strict=False) for n in settings.sip.trunk_allow]
        # Calls handed over by the SIP front come from its ip:port; the caller's own address is in the
        # X-Src-Addr header the front adds (it removes any copy the caller sent).
        self.front_address = front_address
        self.counters: dict[str, int] = {"arrived": 0, "refused_source": 0, "blocked": 0, "failed_worker": 0}
        self._init_devices()
        self._init_reconciliation()
        self.reconcile = reconcile  # run the sweep (the server does; unit tests drive sweep_once themselves)
        self._lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
        self._acd_timer: asyncio.TimerHandle | None = None
        self._acd_busy = False  # carrying out an ACD step's actions: events for the engine wait
        self._acd_later: deque[acd.Event] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Close what a previous run left open, log in the auto-login agents, start consuming events."""
        self._loop = asyncio.get_running_loop()
        self.records.bind(self._loop)
        closed = await self.records.run(lambda: self.store.close_unfinished(reason="server_restart"))
        if closed:
            log.warning("closed %d interaction(s) left open by the previous run", closed)
        since = self.now() - OWED_LOOKBACK
        left_open = await self.records.close_left_open(since)
        if left_open:
            log.warning("closed %d queue_log call(s) left open by the previous run", left_open)
        rows = await self.records.run(lambda: self.store.owed_dispositions(since=since))
        for row in rows:
            agent_id = row.pop("agent_id")
            if agent_id in self.settings.agents:
                self._owe(agent_id, OwedDisposition(**row), notify=False)
        if rows:
            log.info("%d disposition(s) still owed from before the restart", len(rows))
        for agent_id, agent in self.settings.agents.items():
            if agent.auto_login and agent.role == "agent":
                offline = self.phone_status(agent_id) == OFFLINE
                self._acd(acd.AgentLoggedIn(agent_id, not_ready_reason=PHONE_OFFLINE if offline else None))
        self._runner = asyncio.create_task(self._consume(), name="contact-center")
        if self.reconcile:
            self._start_sweeping()

    async def stop(self) -> None:
        await self._stop_sweeping()
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
                self.records.write(self.store.update, call.record,
                            talk_seconds=round((self.now() - call.answered_at).total_seconds(), 3))
            self._finish(call)
        await self.drain()
        self.records.shutdown()
        self._lookups.shutdown(wait=False, cancel_futures=True)

    async def drain(self) -> None:
        """Wait until every record write queued so far is done (tests, shutdown)."""
        await self.records.drain()

    async def _consume(self) -> None:
        while True:
            event = await self.telephony.events.get()
            self.handle(event)

    # ------------------------------------------------------------------ plumbing

    def now(self) -> dt.datetime:
        return self.clock()

    def _send(self, command: tp.Command) -> str:
        return self.telephony.send(command)

    def _call_of_leg(self, leg: str) -> Call | None:
        call_id = self.by_leg.get(leg)
        return self.calls.get(call_id) if call_id else None

    def handle(self, event: tp.Event) -> None:
        """Entry point for every telephony event; one event's failure never stops the next."""
        try:
            handler = self.EVENT_HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
        except Exception:
            log.exception("handling %s failed", type(event).__name__)
