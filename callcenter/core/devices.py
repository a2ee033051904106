"""Agents' phones as devices: which are registered, how to reach them, and what a phone going away means.

A phone at ``[phones] domain`` registers at the SIP front; the front reports each registration,
unregistration and expiry as it happens, and a full list of bindings when it (re)connects. An agent
whose phone is not registered is never offered a call: they are made not ready with the reason
``phone_offline`` (at once, or by the sweep), their ready requests are refused, and an offer that
raced the news is released before the phone is dialled. Phones outside the domain are fixed URIs
the center cannot see: always taken as there.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import acd
from acd.settings import PHONE_OFFLINE
from callcenter.core.errors import RequestRefused
from callcenter.logsafe import log_safe

log = logging.getLogger("callcenter.core.contact_center")

ONLINE, OFFLINE, FIXED = "online", "offline", "fixed"


@dataclass(frozen=True)
class Binding:
    """One registered contact of a phone, as the front reported it."""

    contact: str
    received: str = ""
    expires_at: dt.datetime | None = None
    user_agent: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"contact": self.contact, "received": self.received, "user_agent": self.user_agent,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


class Devices:
    """Part of :class:`~callcenter.core.contact_center.ContactCenter`: phone registrations and device state."""

    def _init_devices(self) -> None:
        self.phone_users: dict[str, str] = {}  # agent -> SIP user, for phones that register
        for aid in self.settings.agents:
            user = self.settings.phone_user(aid)
            if user is not None:
                self.phone_users[aid] = user
        self.agent_of_user = {user: aid for aid, user in self.phone_users.items()}
        self.bindings: dict[str, dict[str, Binding]] = {}  # user -> contact -> binding
        self.phone_since: dict[str, dt.datetime] = {}  # agent -> when their phone's status last changed

    def phone_status(self, agent_id: str) -> str:
        user = self.phone_users.get(agent_id)
        if user is None:
            return FIXED
        return ONLINE if self.bindings.get(user) else OFFLINE

    def phone_dial_uri(self, agent_id: str) -> str | None:
        """Where a worker dials the agent: a registering phone through the front (which knows its contact)."""
        user = self.phone_users.get(agent_id)
        if user is None:
            return self.phones.get(agent_id)
        if not self.front_address:
            return None
        return f"sip:{user}@{self.front_address}"

    def _check_phone_for_ready(self, agent_id: str) -> None:
        if self.phone_status(agent_id) == OFFLINE:
            raise RequestRefused(f"the phone {self.phones.get(agent_id)} is not registered: start or connect it first "
                                 "(it signs in with the agent's SIP password)")

    # ------------------------------------------------------------------ news from the front

    def phone_registered(self, user: str, contact: str, *, received: str = "", expires: int = 0,
                         user_agent: str = "") -> None:
        """The front accepted a REGISTER (new binding or refresh)."""
        agent = self.agent_of_user.get(user)
        if agent is None:
            log.warning("phone %s registered but belongs to no agent", log_safe(user, 40))
            return
        was = self.phone_status(agent)
        until = self.now() + dt.timedelta(seconds=expires) if expires > 0 else None
        self.bindings.setdefault(user, {})[contact] = Binding(contact, received, until, user_agent)
        if was != ONLINE:
            self._phone_changed(agent, ONLINE, f"registered from {received or contact}")

    def phone_unregistered(self, user: str, contact: str | None, *, why: str = "unregistered") -> None:
        """A binding ended: the phone unregistered, its registration expired, or it stopped answering keepalives.

        ``contact`` None: every binding of the user.
        """
        agent = self.agent_of_user.get(user)
        if agent is None:
            return
        was = self.phone_status(agent)
        held = self.bindings.get(user, {})
        if contact is None:
            held.clear()
        else:
            held.pop(contact, None)
        if not held:
            self.bindings.pop(user, None)
        if was == ONLINE and self.phone_status(agent) == OFFLINE:
            self._phone_changed(agent, OFFLINE, why)

    def phones_synced(self, bindings: dict[str, list[Binding]]) -> None:
        """The registrar's whole table (after a (re)connection): the truth replaces what events built."""
        for user, agent in self.agent_of_user.items():
            was = self.phone_status(agent)
            now_held = {b.contact: b for b in bindings.get(user, ())}
            if now_held:
                self.bindings[user] = now_held
            else:
                self.bindings.pop(user, None)
            status = self.phone_status(agent)
            if status != was:
                self._phone_changed(agent, status, "registrar table")

    def _phone_changed(self, agent_id: str, status: str, why: str) -> None:
        self.phone_since[agent_id] = self.now()
        log.info("agent %s's phone is %s (%s)", agent_id, status, log_safe(why, 120))
        state, reason = self.engine.agent_state(agent_id)
        if status == OFFLINE and state != "logged_out" and self.settings.phones.offline_not_ready:
            if not (state == "not_ready" and reason != PHONE_OFFLINE):  # the agent's own reason stands
                self._acd(acd.AgentWentNotReady(agent_id, PHONE_OFFLINE))
        elif status == ONLINE and state == "not_ready" and reason == PHONE_OFFLINE and \
                self.settings.phones.ready_when_back:
            self._acd(acd.AgentBecameAvailable(agent_id))
        self.notifier.to_agent(agent_id, {"type": "agent.phone", "agent_id": agent_id, "phone": status,
                                          "why": why[:120]})
        self.notifier.to_supervisors({"type": "acd.changed", "queues": [], "agents": [agent_id]})
