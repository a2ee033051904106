"""The reconciliation sweep's shell: gather what the center believes and what the workers hold, repair, audit.

Every ``[repair] sweep_seconds`` it asks every worker for the legs it really holds, builds an
:class:`acd.reconcile.Observation` with the ACD's agents and calls, the contacts of the call flow
and the phones' registrations, and carries out the repairs :func:`acd.reconcile.sweep` returns. A
repair goes through the paths a real report would have taken (a lost leg is ended as if its
``LegEnded`` had come), so records close the way they always do; each one is written to the audit
log (actor ``reconciliation``: what was seen, since when, for how long, what was done) and counted
for the supervisors' "repairs today".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

import acd
from acd import reconcile as rc
from acd.settings import PHONE_OFFLINE
from callcenter.core import queue_log as ql
from callcenter.core import telephony_protocol as tp
from callcenter.core.calls import CALLBACK, QUEUED, RINGING
from callcenter.core.devices import OFFLINE, ONLINE

log = logging.getLogger("callcenter.core.contact_center")

ACTOR = "reconciliation"


class Reconciliation:
    """Part of :class:`~callcenter.core.contact_center.ContactCenter`: the sweep that repairs divergent state."""

    def _init_reconciliation(self) -> None:
        r = self.settings.repair
        self.sweep_rules = rc.SweepRules(grace=r.grace_seconds, max_wrap_up=r.max_wrap_up_seconds,
                                         ready_when_back=self.settings.phones.ready_when_back)
        self._sweep_pending: dict[tuple[str, str, str], float] = {}
        self._sweep_task: asyncio.Task | None = None
        self.repairs_day: dt.date | None = None
        self.counters.setdefault("repairs_today", 0)
        self.counters.setdefault("repairs", 0)
        self.last_sweep: dict[str, Any] = {}

    def _start_sweeping(self) -> None:
        self._sweep_task = asyncio.create_task(self._sweep_loop(), name="reconciliation")

    async def _stop_sweeping(self) -> None:
        if self._sweep_task is not None:
            self._sweep_task.cancel()
            try:
                await self._sweep_task
            except asyncio.CancelledError:
                pass

    async def _sweep_loop(self) -> None:
        interval = self.settings.repair.sweep_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_once()
            except Exception:
                log.exception("the reconciliation sweep failed; trying again in %.1f s", interval)

    async def sweep_once(self) -> list[rc.Repair]:
        """One sweep: observe, compare, repair. Returns the repairs carried out."""
        started = time.perf_counter()
        legs = await self.telephony.live_legs()
        obs = self._observe(legs)
        result = rc.sweep(obs, self._sweep_pending, self.sweep_rules)
        self._sweep_pending = result.pending
        for repair in result.repairs:
            try:
                self._carry_out(repair)
            except Exception:
                log.exception("repair %s of %s failed", repair.kind, repair.subject)
            self._repaired(repair)
        self.last_sweep = {"at": obs.now, "legs": len(obs.legs), "silent_workers": sorted(obs.silent_workers),
                           "pending": len(result.pending), "repairs": len(result.repairs),
                           "ms": round((time.perf_counter() - started) * 1000, 2)}
        return list(result.repairs)

    def _observe(self, legs: dict[str, dict[str, str] | None]) -> rc.Observation:
        """The picture at this instant: taken after the workers answered, in one go (no await in between)."""
        now = self.now().timestamp()
        agents = []
        for aid, cfg in self.settings.agents.items():
            if cfg.role != "agent":
                continue
            state, reason = self.engine.agent_state(aid)
            if state == "logged_out":
                continue
            since = self.state_since.get(aid)
            wrap = self.engine.agent_wrap_up(aid) if state == "wrap_up" else None
            agents.append(rc.AgentSeen(aid, state, reason, since.timestamp() if since else now,
                                       self.engine.agent_call(aid), wrap["until"] if wrap else None,
                                       self.phone_status(aid)))
        calls = tuple(rc.CallSeen(c.call_id, c.phase, c.agent_id, tuple(c.legs()), c.agent_leg)
                      for c in self.calls.values())
        held = tuple(rc.LegSeen(leg, worker, state) for worker, those in legs.items() if those is not None
                     for leg, state in those.items())
        silent = frozenset(w for w, those in legs.items() if those is None)
        leg_workers = {leg: w for c in self.calls.values() for leg in c.legs()
                       if (w := self.telephony.worker_of(leg)) is not None}
        return rc.Observation(now=now, agents=tuple(agents), calls=calls, acd_calls=frozenset(self.engine.call_ids()),
                              legs=held, silent_workers=silent, leg_workers=leg_workers)

    # ------------------------------------------------------------------ repairs

    def _carry_out(self, r: rc.Repair) -> None:
        """Each repair checks that what it repairs is still so: the state may have moved since the observation."""
        if r.kind == rc.LEG_LOST:
            if self.by_leg.get(r.leg) == r.call_id:
                self.handle(tp.LegEnded(leg=r.leg, cause="lost", reason="no worker holds this leg (reconciliation)"))
        elif r.kind == rc.LEG_UNKNOWN:
            if r.leg not in self.by_leg:
                self.telephony.send(tp.Hangup(leg=r.leg, reason="no contact owns this leg (reconciliation)"),
                                    worker=r.worker)
        elif r.kind == rc.OFFER_WITHOUT_LEG:
            self._release_lost_offer(r.agent_id, r.call_id)
        elif r.kind == rc.ANSWER_UNSEEN:
            call = self.calls.get(r.call_id)
            if call is not None and call.phase == RINGING and call.agent_leg == r.leg:
                self.handle(tp.LegAnswered(leg=r.leg))
        elif r.kind == rc.TALK_WITHOUT_CALL:
            state, _ = self.engine.agent_state(r.agent_id)
            if state == "on_call" and self.engine.agent_call(r.agent_id) == r.call_id:
                self._end_for_supervisor(ACTOR, r.agent_id)
        elif r.kind == rc.CALL_UNKNOWN:
            if self.engine.has_call(r.call_id) and r.call_id not in self.calls:
                self._acd(acd.CallAbandoned(r.call_id))
        elif r.kind == rc.WRAP_UP_OVERDUE:
            wrap = self.engine.agent_wrap_up(r.agent_id)
            if wrap is None:
                return
            if wrap["until"] is None or wrap["until"] > self.now().timestamp():
                # over the limit, not a lost timer: the agent may not be at the desk; not ready, not offered calls
                reasons = self.settings.acd.not_ready_reasons
                self._acd(acd.AgentWentNotReady(r.agent_id, "after_call_work" if "after_call_work" in reasons
                                                else reasons[0]))
            if self.engine.agent_state(r.agent_id)[0] == "wrap_up":
                self._acd(acd.WrapUpEnded(r.agent_id, forced=True))
        elif r.kind == rc.PHONE_OFFLINE_READY:
            if self.phone_status(r.agent_id) == OFFLINE and self.engine.agent_state(r.agent_id)[0] in ("available",
                                                                                                       "reserved"):
                self._acd(acd.AgentWentNotReady(r.agent_id, PHONE_OFFLINE))
        elif r.kind == rc.PHONE_BACK:
            if self.phone_status(r.agent_id) == ONLINE and \
                    self.engine.agent_state(r.agent_id) == ("not_ready", PHONE_OFFLINE):
                self._acd(acd.AgentBecameAvailable(r.agent_id))

    def _release_lost_offer(self, agent_id: str, call_id: str) -> None:
        if self.engine.agent_state(agent_id)[0] != "reserved" or self.engine.agent_call(agent_id) != call_id:
            return
        call = self.calls.get(call_id)
        if call is None:
            self._acd(acd.CallAbandoned(call_id))  # no contact: the ACD's call goes, the agent is free
            return
        if call.phase == RINGING and call.agent_id == agent_id:
            ring = (self.now() - (call.offered_at or self.now())).total_seconds()
            self.records.qlog(call.record, call.queue, agent_id, ql.RINGCANCELED, int(ring * 1000),
                              extra={"reason": "no ringing leg (reconciliation)"})
            if call.agent_leg:
                self.telephony.send(tp.Hangup(leg=call.agent_leg, reason="offer released (reconciliation)"))
                self.by_leg.pop(call.agent_leg, None)
                call.agent_leg = None
            call.phase = CALLBACK if call.callback_number else QUEUED
            self.notifier.to_agent(agent_id, {"type": "call.offer_cancelled", "call_id": call.record,
                                              "reason": "no_ringing_leg"})
        actions = self._acd(acd.OfferFailed(call_id, agent_id))
        if any(isinstance(a, acd.EventRejected) for a in actions):
            self._acd(acd.AgentWentNotReady(agent_id, "no_answer"))  # the ACD would not take it back: withdraw it

    def _repaired(self, r: rc.Repair) -> None:
        today = self.now().astimezone(ZoneInfo(self.settings.hours.timezone)).date()  # the center's day
        if self.repairs_day != today:
            self.repairs_day, self.counters["repairs_today"] = today, 0
        self.counters["repairs_today"] += 1
        self.counters["repairs"] += 1
        log.warning("repaired %s (%s): %s for %.1f s; %s", r.kind, r.subject, r.seen, r.lasted, r.action)
        self.records.write(self.store.audit, actor=ACTOR, action=f"repair.{r.kind}", target=r.subject, details={
            "seen": r.seen, "since": dt.datetime.fromtimestamp(r.since, dt.UTC).isoformat(), "lasted": r.lasted,
            "done": r.action, "agent_id": r.agent_id, "call_id": r.call_id, "leg": r.leg, "worker": r.worker})
        agents = [r.agent_id] if r.agent_id else []
        self.notifier.to_supervisors({"type": "acd.changed", "queues": [], "agents": agents, "counters": True})
