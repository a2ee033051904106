"""Supervision: what a supervisor may do to agents (force a state, change skills), each action audited."""

from __future__ import annotations

import logging
from typing import Any

import acd
from acd.settings import normalize_skills
from callcenter.core import queue_log as ql
from callcenter.core.calls import (
    CONNECTED,
    RINGING,
    Call,
)
from callcenter.core.errors import SupervisorActionRefused

log = logging.getLogger("callcenter.core.contact_center")


class Supervision:
    """Part of :class:`~callcenter.core.contact_center.ContactCenter`: supervisors' actions."""

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
            if self.phone_status(agent_id) == "offline":
                raise SupervisorActionRefused(f"agent {agent_id}'s phone is not registered: they cannot take calls "
                                              "until it is")
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
            self.records.qlog(call.record, call.queue, agent_id, ql.COMPLETEAGENT,
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
        self.records.write(self.store.audit, actor=actor, action=action, target=target, details=details)
