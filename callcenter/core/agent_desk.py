"""The agent desk: what an agent may ask of the center (log in, ready, hold, transfer, dial, dispose) and the
rules that say whether they may."""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from typing import Any

import acd
from callcenter.core import queue_log as ql
from callcenter.core import telephony_protocol as tp
from callcenter.core.calls import (
    CALLBACK,
    CONNECTED,
    LEAVING,
    OWED_PER_AGENT,
    QUEUED,
    RINGING,
    Call,
    OwedDisposition,
    new_call_id,
)
from acd.settings import PHONE_OFFLINE
from callcenter.core.devices import OFFLINE
from callcenter.core.errors import DispositionRefused, RequestRefused
from callcenter.dispositions import check_disposition
from callcenter.logsafe import log_safe

log = logging.getLogger("callcenter.core.contact_center")


class AgentDesk:
    """Part of :class:`~callcenter.core.contact_center.ContactCenter`: agents' requests and their rules."""

    def login(self, agent_id: str, *, phone: str | None = None, not_ready_reason: str | None = None) -> None:
        if phone:
            self.phones[agent_id] = phone
        if not_ready_reason is None and self.phone_status(agent_id) == OFFLINE:
            not_ready_reason = PHONE_OFFLINE  # logged in, but never offered a call until the phone registers
        self._acd(acd.AgentLoggedIn(agent_id, not_ready_reason=not_ready_reason))

    def logout(self, agent_id: str) -> None:
        self._acd(acd.AgentLoggedOut(agent_id))

    def ready(self, agent_id: str) -> None:
        """Available now; refused (:class:`RequestRefused`) while a disposition the queue requires is owed,
        or while the agent's phone is not registered."""
        self._check_phone_for_ready(agent_id)
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


    def dispose(self, agent_id: str, call_id: str, code: str, notes: str | None = None,
                callback: dict[str, Any] | None = None, *, end_wrap_up: bool = False) -> None:
        """Save the agent's wrap-up code for one named call they handled; rules come from ``[dispositions]``.

        The pair (agent, call) must be one the agent owes (or their connected call): nothing here
        ever picks "the agent's latest call". Raises :class:`DispositionRefused` with a message for
        the agent when a rule is not met; nothing is written then. With ``end_wrap_up`` (what the
        console asks by default), saving also ends the wrap-up this call put the agent in: never
        one of a later call, and never one still waiting for another call's disposition.
        """
        problem = check_disposition(code, notes, callback, self.settings.dispositions)
        if problem is not None:
            raise DispositionRefused(problem)
        if (agent_id, call_id) in self.disposed:
            raise DispositionRefused(f"call {call_id} already has your disposition "
                                     f"({self.disposed[(agent_id, call_id)]}); it is not saved twice")
        if not self.may_dispose(agent_id, call_id):
            live = self._live(call_id)
            if live is not None and live.agent_id == agent_id and live.phase == RINGING:
                raise DispositionRefused(f"call {call_id} has not been answered yet")
            raise DispositionRefused(f"call {call_id} was not handled by agent {agent_id}")
        self.records.write(self.store.save_disposition, call_id=call_id, code=code, notes=(notes or None) and notes[:4000],
                    agent_id=agent_id, callback=callback)
        self.disposed[(agent_id, call_id)] = code
        self.drafts.pop((agent_id, call_id), None)
        owed = self.owed.get(agent_id)
        entry = owed.pop(call_id, None) if owed is not None else None
        if entry is not None:
            self._owed_changed(agent_id)
        live = self._live(call_id)
        engine_id = entry.engine_id if entry is not None else (live.call_id if live is not None else call_id)
        self._acd(acd.CallDisposed(agent_id, engine_id))
        if end_wrap_up and self.engine.agent_state(agent_id)[0] == "wrap_up" and \
                self.last_call_of_agent.get(agent_id) == call_id and not (self.wrap_up_of(agent_id) or {}).get("owed_call"):
            self.end_wrap_up(agent_id)

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
        """The agent's state and current call, for a console that (re)connects: all it needs to redraw."""
        state, reason = self.engine.agent_state(agent_id)
        call_id = self.last_call_of_agent.get(agent_id)
        call = self._live(call_id)
        ringing = next((c for c in self.calls.values() if c.agent_id == agent_id and c.phase == RINGING), None)
        # a call transferred away keeps its id: it is this agent's only while they are its agent
        current = ringing or (call if call is not None and call.phase == CONNECTED and call.agent_id == agent_id
                              else None)
        since = self.state_since.get(agent_id)
        return {
            "agent_id": agent_id, "state": state, "reason": reason,
            "since": since.isoformat() if since else None,
            "phone": self.phones.get(agent_id),
            "phone_status": self.phone_status(agent_id),
            "call": None if current is None else {
                "call_id": current.record, "phase": current.phase, "queue": current.queue, "ani": current.ani,
                "display_name": current.display_name, "customer_id": current.customer_id,
                "ivr_path": current.session.path_json() if current.session else [],
                "answered_at": current.answered_at.isoformat() if current.answered_at else None,
                "waited": (current.offered_at - current.queued_at).total_seconds()
                if current.offered_at and current.queued_at else None,
                "callback": current.callback_number, "held": current.on_hold,
                "notes": self.drafts.get((agent_id, current.record), ""),
            },
            "last_call_id": call_id,
            "last_call_notes": self.drafts.get((agent_id, call_id), "") if call_id else "",
            "owed": [{**item, "notes": self.drafts.get((agent_id, item["call_id"]), "")}
                     for item in self.owed_list(agent_id)],
            "wrap": self.wrap_up_of(agent_id),
        }

    def keep_notes(self, agent_id: str, call_id: str, text: str) -> None:
        """The agent's draft notes on a call they own, kept until its disposition is saved (consoles reconnect)."""
        self.drafts[(agent_id, call_id)] = text

    def link_customer(self, call_id: str, customer_id: int) -> None:
        """The agent said who the caller is: the call in progress (pops, owed list, records) is about them."""
        call = self._live(call_id)
        if call is not None:
            call.customer_id = customer_id
        for owed in self.owed.values():
            if call_id in owed:
                owed[call_id].customer_id = customer_id

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
        self.records.write(self.store.update, call.record, talk_seconds=round(talk, 3))
        self._send(tp.Unbridge(a=call.leg, b=call.agent_leg))
        self.records.qlog(call.record, call.queue, agent_id, ql.BLINDTRANSFER, name if kind == "queue" else target, "", 0)
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
        self.notifier.to_agent(agent_id, {"type": "call.transferred", "call_id": call.record, "target": target})
        if kind == "queue":
            self._enqueue(call, name, call.priority, {})
            return True
        queue = call.queue if call.queue in self.settings.queues else self.settings.ivr.fallback_queue
        call.phase = QUEUED
        call.queue = queue
        call.queued_at = now
        self.records.write(self.store.update, call.record, queue=queue, queued_at=now)
        self._hold_music(call)
        self.records.qlog(call.record, queue, None, ql.ENTERQUEUE, "", call.ani)
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

    def belongs_to_another(self, agent_id: str, call_id: str) -> bool:
        """Another agent handled or holds this call: asking about it is an intrusion, not a mistake."""
        handled = self.handled_by.get(call_id)
        if handled is not None and handled != agent_id:
            return True
        live = self._live(call_id)
        return live is not None and live.agent_id not in (None, agent_id)

    def may(self, agent_id: str, action: str, call_id: str) -> bool:
        """Whether the agent may do ``action`` on call ``call_id``: the one place consoles and CTI ask.

        ``dispose``: a call they owe, talk on, or handled; ``notes``, ``link``: a call they own
        (ringing or connected for them, owed, handled, or transferred away by them).
        """
        if action == "dispose":
            return self.may_dispose(agent_id, call_id) or self.owns_call(agent_id, call_id)
        if action in ("notes", "link"):
            return self.owns_call(agent_id, call_id)
        raise ValueError(f"unknown call action {action!r}")

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
        self._check_phone_for_ready(agent_id)
        if queue not in self.settings.queues:
            agent = self.settings.agents.get(agent_id)
            homes = [q for q in (agent.queues if agent else ()) if q in self.settings.queues]
            queue = homes[0] if homes else self.settings.ivr.fallback_queue
        now = self.now()
        call = Call(call_id=new_call_id(), leg=None, ani=number, dnis=self.settings.sip.caller_id or "",
                    display_name=(display_name or "")[:80], arrived_at=now, language=self.settings.ivr.default_language,
                    phase=CALLBACK, customer_id=customer_id, queue=queue, queued_at=now, callback_number=number,
                    outcome="agent_no_answer", outbound=True, callback_id=callback_id)
        self.calls[call.call_id] = call
        self.records.write(self.store.open, call_id=call.call_id, direction="outbound", ani=number, dnis=call.dnis,
                    display_name=display_name, customer_id=customer_id, arrived_at=now)
        self.records.write(self.store.update, call.record, queue=queue, queued_at=now)
        self._acd(acd.DirectCallRequested(call.call_id, agent_id, queue, number=number, caller=number))
        if call.phase != RINGING:
            self.calls.pop(call.call_id, None)
            self.records.write(self.store.update, call.record, ended_at=now, outcome="dial_refused")
            raise RequestRefused(f"{number} could not be dialled now (agent state: {self.engine.agent_state(agent_id)[0]})")
        if callback_id is not None:
            self.records.write(self.store.callback_progress, callback_id, status="in_progress", attempt=True,
                        call_id=call.call_id, result=f"dialled on call {call.call_id} by agent {agent_id}")
        log.info("agent %s dials %s (callback %s) on call %s", agent_id, log_safe(number, 80), callback_id,
                 call.call_id)
        return True

    def _callback_result(self, call: Call, status: str, result: str) -> None:
        """Settle the callback a dial-now worked, once: ``done`` (reached) or ``pending`` (to try again)."""
        if call.callback_id is None:
            return
        self.records.write(self.store.callback_progress, call.callback_id, status=status, result=result)
        call.callback_id = None

    def _end_dial(self, call: Call, outcome: str, why: str) -> None:
        """An agent's dial ends before the customer was dialled: close it, and leave its callback to do."""
        call.outcome = outcome
        self._callback_result(call, "pending", why)
        if call.agent_leg:
            self._send(tp.Hangup(leg=call.agent_leg, reason=outcome))
        call.phase = LEAVING
        self._finish(call)
