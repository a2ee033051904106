"""Agents' requests over CTI: state, the call in hand, dispositions and customers.

Each handler checks the request's shape and asks the contact center (``CenterPort``), which owns
every rule: whether the agent may act on that call, what a disposition needs. A refusal comes
back as an error naming what to do; an attempt on another agent's call is also logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from callcenter.core.errors import DispositionRefused, RequestRefused
from callcenter.cti import protocol as p
from callcenter.cti.sessions import Session
from callcenter.dispositions import (
    bad_number, callback_number, callback_owner_problem, callback_time_problem, callback_window_problem,
    unknown_code_problem,
)
from screenpop.numbers import normalize
from screenpop.wire import to_wire

__all__ = ["AgentRequests"]

log = logging.getLogger("callcenter.cti")


class AgentRequests:
    """Part of :class:`~callcenter.cti.server.CtiServer`: the agent console's requests."""

    # ------------------------------------------------------------------ helpers

    def _state(self, agent_id: str) -> str:
        return self.center.agent_snapshot(agent_id)["state"]

    def _current_call(self, session: Session, kind: str, call_id: str | None) -> str:
        """The agent's connected call; ``call_id``, if given, must be it."""
        snapshot = self.center.agent_snapshot(session.agent_id)
        call = snapshot.get("call")
        current = call["call_id"] if call and call.get("phase") == "connected" else None
        if call_id is not None and call_id != current:
            if self.center.belongs_to_another(session.agent_id, call_id):
                raise self._refuse(session, kind, f"call {call_id} is not agent {session.agent_id}'s call")
            raise p.ProtocolError(p.REFUSED, f"call {call_id} is not your connected call")
        if current is None:
            raise p.ProtocolError(p.REFUSED, "you have no connected call")
        return current

    def _own_call(self, session: Session, kind: str, call_id: str, action: str = "notes") -> None:
        """The core's rule: may this agent do ``action`` on this call? Refused and logged when not."""
        if not self.center.may(session.agent_id, action, call_id):
            raise self._refuse(session, kind, f"call {call_id} is not agent {session.agent_id}'s call")

    async def _in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.directory is None:
            raise p.ProtocolError(p.NOT_AVAILABLE, "no customer database is configured on this server")
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ------------------------------------------------------------------ state

    async def _r_state_ready(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        before = self._state(session.agent_id)
        try:
            self.center.ready(session.agent_id)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), state=before) from None
        after = self._state(session.agent_id)
        if after == "on_call":  # the ACD keeps the agent on the call and drops a pending not-ready
            return {"state": after, "pending": None}
        if after == before and after != "available":
            raise p.ProtocolError(p.REFUSED, f"cannot become available while {before.replace('_', ' ')}", state=after)
        return {"state": after}

    async def _r_state_not_ready(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        reason = message["reason"]
        if reason not in self.settings.acd.not_ready_reasons:
            raise p.ProtocolError(p.BAD_REQUEST, f"unknown not-ready reason {reason[:40]!r}; known: "
                                  + ", ".join(self.settings.acd.not_ready_reasons))
        before = self._state(session.agent_id)
        self.center.not_ready(session.agent_id, reason)
        snapshot = self.center.agent_snapshot(session.agent_id)
        if before in ("on_call", "wrap_up") and snapshot["state"] == before:  # after this call (and its wrap-up)
            return {"state": before, "pending": reason}
        if snapshot["state"] != "not_ready" or snapshot["reason"] != reason:
            raise p.ProtocolError(p.REFUSED, f"cannot go not ready while {before.replace('_', ' ')}",
                                  state=snapshot["state"])
        return {"state": "not_ready", "reason": reason}

    async def _r_state_end_wrap_up(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        before = self._state(session.agent_id)
        if before != "wrap_up":
            raise p.ProtocolError(p.REFUSED, "you are not in wrap-up", state=before)
        try:
            self.center.end_wrap_up(session.agent_id)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), state=before) from None
        return {"state": self._state(session.agent_id)}

    async def _r_state_extend_wrap_up(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        try:
            wrap = self.center.extend_wrap_up(session.agent_id)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), state=self._state(session.agent_id)) from None
        return {"state": "wrap_up", "wrap": wrap}

    # ------------------------------------------------------------------ calls

    async def _r_call_hangup(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = self._current_call(session, "call.hangup", message.get("call_id"))
        if not self.center.hang_up(session.agent_id):
            raise p.ProtocolError(p.REFUSED, "the call could not be hung up (it is no longer connected)")
        return {"call_id": call_id}

    async def _r_call_hold(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = self._current_call(session, "call.hold", message.get("call_id"))
        if not self.center.hold(session.agent_id):
            raise p.ProtocolError(p.REFUSED, "the call could not be put on hold (already held?)")
        return {"call_id": call_id, "held": True}

    async def _r_call_unhold(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = self._current_call(session, "call.unhold", message.get("call_id"))
        if not self.center.unhold(session.agent_id):
            raise p.ProtocolError(p.REFUSED, "the call could not be taken off hold (not held?)")
        return {"call_id": call_id, "held": False}

    async def _r_call_transfer(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        target = message["target"]
        kind, _, ident = target.partition(":")
        if kind == "queue" and ident in self.settings.queues:
            pass
        elif kind == "agent" and ident in self.settings.agents and self.settings.agents[ident].role == "agent":
            if ident == session.agent_id:
                raise p.ProtocolError(p.BAD_REQUEST, "call.transfer: you cannot transfer a call to yourself")
        else:
            raise p.ProtocolError(p.BAD_REQUEST, "call.transfer: 'target' must be queue:ID or agent:ID of a "
                                  f"configured queue or agent, not {target[:40]!r}")
        call_id = self._current_call(session, "call.transfer", message.get("call_id"))
        try:
            done = self.center.transfer(session.agent_id, target)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc)) from None
        if not done:
            raise p.ProtocolError(p.REFUSED, f"the call could not be transferred to {target}")
        return {"call_id": call_id, "target": target}

    async def _r_call_notes(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = message["call_id"]
        self._own_call(session, "call.notes", call_id)
        self.center.keep_notes(session.agent_id, call_id, message["text"])
        return {"call_id": call_id, "chars": len(message["text"])}

    async def _r_call_dial(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        number = message.get("number")
        callback_id = message.get("callback_id")
        callback = None
        if callback_id is not None:
            callback = await self._in_thread(self.directory.callback, callback_id, session.agent_id)
            if callback is None:
                raise self._refuse(session, "call.dial", f"callback {callback_id} is not one agent "
                                   f"{session.agent_id} may work")
            number = number or callback.number
        if not number:
            raise p.ProtocolError(p.BAD_REQUEST, "call.dial: give 'number' or 'callback_id'")
        parsed = normalize(number, self.settings.center.default_region, strict=False)
        if parsed is None:
            raise p.ProtocolError(p.BAD_REQUEST, f"call.dial: {number[:40]!r} is not a phone number")
        extra = {} if callback is None else {"customer_id": callback.customer_id, "queue": callback.queue,
                                             "display_name": callback.customer_name}
        try:
            done = self.center.dial(session.agent_id, parsed.e164, callback_id=callback_id, **extra)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc)) from None
        if not done:
            raise p.ProtocolError(p.REFUSED, f"{parsed.e164} could not be dialled now")
        return {"number": parsed.e164, "callback_id": callback_id}

    # ------------------------------------------------------------------ disposition

    def _callback(self, session: Session, raw: dict[str, Any]) -> dict[str, Any]:
        """The callback asked for with a disposition, checked by the same rules the agent console pre-checks with."""
        p.check_fields(raw, p.CALLBACK_FIELDS, "disposition.save callback")
        number = callback_number(raw["number"], self.settings.center.default_region)
        if number is None:
            raise p.ProtocolError(p.BAD_REQUEST, bad_number(raw["number"]))
        due_from = p.parse_time(raw["due_from"], "callback due_from")
        due_until = p.parse_time(raw["due_until"], "callback due_until") if raw.get("due_until") else None
        if problem := callback_window_problem(due_from, due_until) or callback_owner_problem(raw.get("owner")):
            raise p.ProtocolError(p.BAD_REQUEST, problem)
        if problem := callback_time_problem(due_from, self.clock()):
            raise p.ProtocolError(p.REFUSED, problem)
        return {"number": number, "due_from": due_from.astimezone(dt.UTC),
                "due_until": due_until.astimezone(dt.UTC) if due_until else None,
                "owner_agent_id": session.agent_id if (raw.get("owner") or "me") == "me" else None,
                "notes": (raw.get("notes") or None)}

    async def _r_disposition_save(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        """The disposition of the one call named in the request: never "the agent's latest call"."""
        call_id, code = message["call_id"], message["code"]
        agent_id = session.agent_id
        if problem := unknown_code_problem(code, self.settings.dispositions):
            raise p.ProtocolError(p.BAD_REQUEST, problem)
        if not self.center.may(agent_id, "dispose", call_id):
            raise self._refuse(session, "disposition.save", f"call {call_id} was not handled by agent {agent_id}")
        callback = self._callback(session, message["callback"]) if message.get("callback") else None
        notes = message.get("notes")
        try:
            self.center.dispose(agent_id, call_id, code, notes=notes, callback=callback,
                                end_wrap_up=message.get("end_wrap_up", True))
        except DispositionRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), call_id=call_id) from None
        await self.center.drain()  # the disposition is stored before the agent hears it is saved
        state = self._state(agent_id)
        log.info("CTI agent %s disposed call %s as %s%s", agent_id, call_id, code,
                 " with a callback" if callback else "")
        return {"call_id": call_id, "code": code, "state": state, "callback": callback is not None,
                "owed": self.center.owed_list(agent_id)}

    # ------------------------------------------------------------------ customers

    async def _r_customer_search(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        found = await self._in_thread(self.directory.search, message["query"], limit=message.get("limit") or 20)
        return {"customers": [to_wire(c) for c in found]}

    async def _r_customer_get(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        profile = await self._in_thread(self.directory.profile, message["customer_id"])
        if profile is None:
            raise p.ProtocolError(p.NOT_FOUND, f"no customer {message['customer_id']}")
        return {"profile": to_wire(profile)}

    async def _r_customer_link(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id, customer_id = message["call_id"], message["customer_id"]
        self._own_call(session, "customer.link", call_id, "link")
        if not await self._in_thread(self.directory.link, call_id, customer_id):
            raise p.ProtocolError(p.NOT_FOUND, f"no customer {customer_id} or no record of call {call_id}")
        self.center.link_customer(call_id, customer_id)
        self.pops.forget(call_id)
        profile = await self._in_thread(self.directory.profile, customer_id)
        return {"call_id": call_id, "customer_id": customer_id, "profile": to_wire(profile)}

    async def _r_customer_create(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = message.get("call_id")
        if call_id is not None:
            self._own_call(session, "customer.create", call_id, "link")
        fields = {k: message.get(k) for k in ("name", "number", "company", "email", "language")}
        try:
            customer_id = await self._in_thread(self.directory.create, actor=session.agent_id, call_id=call_id, **fields)
        except ValueError as exc:  # the directory's input errors; the message is for the agent
            raise p.ProtocolError(p.BAD_REQUEST, str(exc)) from None
        if call_id is not None:
            self.center.link_customer(call_id, customer_id)
            self.pops.forget(call_id)
        profile = await self._in_thread(self.directory.profile, customer_id)
        log.info("CTI agent %s created customer %s", session.agent_id, customer_id)
        return {"customer_id": customer_id, "profile": to_wire(profile)}

    async def _r_contacts_recent(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        found = await self._in_thread(self.directory.recent_contacts, session.agent_id, limit=message.get("limit") or 20)
        return {"contacts": [to_wire(c) for c in found]}

    async def _r_callbacks_list(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        found = await self._in_thread(self.directory.callbacks, session.agent_id, limit=message.get("limit") or 50)
        return {"callbacks": [to_wire(c) for c in found], "server_time": self.clock().isoformat()}
