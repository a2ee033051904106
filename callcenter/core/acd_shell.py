"""The ACD shell: events into the pure ``acd.AcdEngine``, its actions carried out on calls, phones and records."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import acd
from callcenter.core import queue_log as ql
from callcenter.core import telephony_protocol as tp
from callcenter.core.calls import (
    CALLBACK,
    QUEUED,
    RINGING,
    dialable,
)
from acd.settings import PHONE_OFFLINE
from callcenter.core.devices import OFFLINE
from callcenter.core.errors import RequestRefused
from callcenter.logsafe import log_safe
from ivr.queue_prompts import BUSY, CALLBACK_OFFER, OVERFLOW_CALLBACK, position_announcement

log = logging.getLogger("callcenter.core.contact_center")


def _for_people(reason: str) -> str:
    """An ACD refusal in the agent's words (the engine's own names agents and calls by id)."""
    if "owes the disposition of call" in reason:
        call = reason.rsplit(" ", 1)[-1].strip("'")
        return f"save the disposition of call {call} first (this queue needs it before the next call)"
    return reason.replace("_", " ")


class AcdShell:
    """Part of :class:`~callcenter.core.contact_center.ContactCenter`: everything between the call flow and the ACD."""

    def _acd(self, event: acd.Event) -> list[acd.Action]:
        """Hand ``event`` to the engine and carry out what it decides.

        News a handler has for the engine while carrying out actions (an offer that could not be
        dialled, a call gone meanwhile) waits until every action of the current step is carried
        out: the engine never sees an event in the middle of its own decision's actions.
        """
        if self._acd_busy:
            self._acd_later.append(event)
            return []
        return self._acd_run(lambda: self.engine.handle(event, self.now().timestamp()), event)

    def _acd_run(self, step: Callable[[], list[acd.Action]], event: acd.Event | None) -> list[acd.Action]:
        self._acd_busy = True
        try:
            actions = self._acd_step(step, event)
            while self._acd_later:
                later = self._acd_later.popleft()
                self._acd_step(lambda: self.engine.handle(later, self.now().timestamp()), later)
        finally:
            self._acd_busy = False
            self._schedule_acd()
        return actions

    def _acd_step(self, step: Callable[[], list[acd.Action]], event: acd.Event | None) -> list[acd.Action]:
        try:
            actions = step()
        except acd.AcdError as exc:
            log.error("ACD refused %s: %s", type(event).__name__ if event else "tick", exc)
            return []
        self._acd_changed(event, actions)
        self._apply_acd(actions)
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
            self._acd_run(lambda: self.engine.tick(self.now().timestamp()), None)
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
                handler = self.ACTION_HANDLERS.get(type(action))
                if handler is not None:
                    handler(self, action)
            except Exception:
                log.exception("carrying out %s failed", type(action).__name__)

    def _do_offer_call(self, action: acd.OfferCall) -> None:
        call = self.calls.get(action.call_id)
        if call is None:  # gone while the engine decided: release the agent at once
            self._acd(acd.CallAbandoned(action.call_id))
            return
        if self.phone_status(action.agent_id) == OFFLINE:  # the news raced this offer: never dial a phone not there
            log.warning("call %s: agent %s's phone is not registered; the offer is withdrawn", call.call_id,
                        action.agent_id)
            self._acd(acd.AgentWentNotReady(action.agent_id, PHONE_OFFLINE))
            return
        now = self.now()
        uri = self.phone_dial_uri(action.agent_id)
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
        self.records.write(self.store.update, call.record, offered_at=now, agent_id=action.agent_id)
        self._callback_progress(call, "in_progress", f"offered to agent {action.agent_id} on call {call.record}",
                                attempt=True)
        self.notifier.to_agent(action.agent_id, {
            "type": "call.offered", "call_id": call.record, "queue": action.queue, "ani": call.ani,
            "display_name": call.display_name, "customer_id": call.customer_id, "callback": action.callback_number,
            "waited": (now - (call.queued_at or now)).total_seconds(),
            "ivr_path": call.session.path_json() if call.session else [],
        })

    def _do_cancel_offer(self, action: acd.CancelOffer) -> None:
        call = self.calls.get(action.call_id)
        if call is None or call.agent_leg is None:
            return
        ring = (self.now() - (call.offered_at or self.now())).total_seconds()
        if call.outbound:
            pass  # the agent's own dial: not picking up is not a missed offer
        elif action.reason == "ring_timeout":
            self.records.qlog(call.record, call.queue, action.agent_id, ql.RINGNOANSWER, int(ring * 1000))
        else:
            self.records.qlog(call.record, call.queue, action.agent_id, ql.RINGCANCELED, int(ring * 1000))
        if call.phase == RINGING:
            call.phase = CALLBACK if call.callback_number else QUEUED
        self._drop_agent_leg(call)
        self.notifier.to_agent(action.agent_id, {"type": "call.offer_cancelled", "call_id": call.record,
                                                 "reason": action.reason})
        if call.outbound:  # the ACD drops an agent's own dial that they do not pick up
            self._end_dial(call, "agent_no_answer", f"agent {action.agent_id} did not answer ({action.reason})")

    def _do_dial_customer(self, action: acd.DialCustomer) -> None:
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
            self._on_leg_answered(tp.LegAnswered(leg=call.customer_leg))
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

    def _do_overflow_call(self, action: acd.OverflowCall) -> None:
        call = self.calls.get(action.call_id)
        if call is None:
            return
        event = ql.EXITEMPTY if action.reason in ("empty", "no_agents") else ql.EXITWITHTIMEOUT
        self.records.qlog(call.record, action.queue, None, event, action.reason, action.target)
        if action.target.startswith("queue:"):
            call.queue = action.target.split(":", 1)[1]
            self.records.write(self.store.update, call.record, queue=call.queue)
            self.records.qlog(call.record, call.queue, None, ql.ENTERQUEUE, "", call.ani)
            return
        if action.target == "callback":
            self._leave_with_callback(call, prompt=OVERFLOW_CALLBACK, outcome="overflowed_callback")
        else:
            self._finish_with_prompt(call, BUSY, outcome="overflowed")

    def _do_offer_callback(self, action: acd.OfferCallback) -> None:
        call = self.calls.get(action.call_id)
        if call is not None and call.phase == QUEUED:
            self._play_in_queue(call, (CALLBACK_OFFER,))

    def _do_refuse_call(self, action: acd.RefuseCall) -> None:
        call = self.calls.get(action.call_id)
        if call is None:
            return
        self.records.qlog(call.record, action.queue, None, ql.EXITEMPTY, action.reason)
        self._finish_with_prompt(call, BUSY, outcome="refused")

    def _do_announce_position(self, action: acd.AnnouncePosition) -> None:
        call = self.calls.get(action.call_id)
        if call is None or call.phase != QUEUED:
            return
        queue = self.settings.queues.get(action.queue)
        key = queue.callback_key if queue else None
        self._play_in_queue(call, position_announcement(action.position - 1, action.estimated_wait,
                                                        call.language, callback_key=key))

    def _do_agent_state_changed(self, action: acd.AgentStateChanged) -> None:
        agent, state, previous = action.agent_id, action.state, action.previous
        self.state_since[agent] = self.now()
        if previous == "logged_out":
            self.records.qlog(None, None, agent, ql.AGENTLOGIN, self.phones.get(agent, ""))
        if state == "logged_out":
            self.records.qlog(None, None, agent, ql.AGENTLOGOFF, self.phones.get(agent, ""))
        if state == "not_ready" and previous != "not_ready":
            self.records.qlog(None, None, agent, ql.PAUSE, action.reason or "")
        if previous == "not_ready" and state == "available":
            self.records.qlog(None, None, agent, ql.UNPAUSE, "")
        if state == "wrap_up":
            self.wrap_started[agent] = self.now()
        elif previous == "wrap_up":
            started = self.wrap_started.pop(agent, None)
            call_id = self.last_call_of_agent.get(agent)
            if started and call_id:
                self.records.write(self.store.update, call_id, wrap_seconds=(self.now() - started).total_seconds())
        message = {"type": "agent.state", "agent_id": agent, "state": state, "reason": action.reason,
                   "previous": previous}
        if state == "wrap_up":
            message["wrap"] = self.wrap_up_of(agent)
        self.notifier.to_agent(agent, message)
        self.notifier.to_supervisors(message)

    def _do_event_rejected(self, action: acd.EventRejected) -> None:
        log.warning("ACD rejected %s: %s", type(action.event).__name__, action.reason)

    # ACD action type -> what carries it out
    ACTION_HANDLERS: ClassVar[dict[type, Callable[[Any, Any], None]]] = {
        acd.AgentStateChanged: _do_agent_state_changed,
        acd.AnnouncePosition: _do_announce_position,
        acd.CancelOffer: _do_cancel_offer,
        acd.DialCustomer: _do_dial_customer,
        acd.EventRejected: _do_event_rejected,
        acd.OfferCall: _do_offer_call,
        acd.OfferCallback: _do_offer_callback,
        acd.OverflowCall: _do_overflow_call,
        acd.RefuseCall: _do_refuse_call,
    }
