"""Supervisors' requests over CTI: the dashboard's views and the actions on agents (audited by the center)."""

from __future__ import annotations

import logging
from typing import Any

from callcenter.core.errors import SupervisorActionRefused
from callcenter.cti import protocol as p
from callcenter.cti.sessions import Session

__all__ = ["SupervisorRequests"]

log = logging.getLogger("callcenter.cti")


class SupervisorRequests:
    """Part of :class:`~callcenter.cti.server.CtiServer`: the supervisor dashboard's requests."""

    async def _r_agents_list(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        agents = []
        for agent_id, agent in self.settings.agents.items():
            if agent.role != "agent":
                continue
            snapshot = self.center.agent_snapshot(agent_id)
            agents.append({"agent_id": agent_id, "name": agent.name, "state": snapshot["state"],
                           "reason": snapshot["reason"], "call": snapshot["call"],
                           "console": agent_id in self._agents})
        return {"agents": agents}

    async def _r_supervisor_snapshot(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        return self.feed.snapshot()

    async def _r_supervisor_trends(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        queue = message.get("queue")
        if queue is not None and queue not in self.settings.queues:
            raise p.ProtocolError(p.NOT_FOUND, f"no queue {queue[:32]!r}")
        return self.feed.trends(queue)

    async def _r_queue_detail(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        queue = message["queue"]
        if queue not in self.settings.queues:
            raise p.ProtocolError(p.NOT_FOUND, f"no queue {queue[:32]!r}; known: " + ", ".join(self.settings.queues))
        return self.feed.queue_detail(queue, message.get("limit") or 100)

    def _supervised_agent(self, message: dict[str, Any]) -> str:
        agent_id = message["agent_id"]
        agent = self.settings.agents.get(agent_id)
        if agent is None or agent.role != "agent":
            raise p.ProtocolError(p.NOT_FOUND, f"no agent {agent_id[:32]!r}")
        return agent_id

    async def _r_agent_force_state(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        agent_id = self._supervised_agent(message)
        state, reason = message["state"], message.get("reason")
        if state not in p.FORCE_STATES:
            raise p.ProtocolError(p.BAD_REQUEST, f"agent.force_state: 'state' must be one of {', '.join(p.FORCE_STATES)}")
        if state == "not_ready" and not reason:
            raise p.ProtocolError(p.BAD_REQUEST, "agent.force_state: give a 'reason' for not_ready; known: "
                                  + ", ".join(self.settings.acd.not_ready_reasons))
        try:
            done = self.center.force_state(session.agent_id, agent_id, state, reason if state == "not_ready" else None)
        except SupervisorActionRefused as exc:
            log.info("CTI supervisor %s: %s %s refused: %s", session.agent_id, state, agent_id, exc)
            raise p.ProtocolError(p.REFUSED, str(exc), state=self._state(agent_id)) from None
        await self.center.drain()  # the audit row is written before the supervisor hears it is done
        return done

    async def _r_agent_set_skills(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        agent_id = self._supervised_agent(message)
        try:
            done = self.center.set_skills(session.agent_id, agent_id, message["skills"])
        except SupervisorActionRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc)) from None
        await self.center.drain()
        return done
