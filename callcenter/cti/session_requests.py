"""Sessions over CTI: logging in (PIN checks throttled before they run), what a console gets at login,
logging out, and the agent snapshot a reconnecting console redraws from."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from callcenter import __version__
from callcenter.cti import protocol as p
from callcenter.cti.auth import DUMMY_PIN_HASH, check_pin
from callcenter.cti.sessions import Session
from callcenter.dispositions import rules_to_wire
from callcenter.logsafe import log_safe

__all__ = ["SessionRequests"]

log = logging.getLogger("callcenter.cti")


class SessionRequests:
    """Part of :class:`~callcenter.cti.server.CtiServer`: login, logout, ping, snapshots."""

    async def _r_login(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        if session.agent_id is not None:
            raise p.ProtocolError(p.ALREADY_LOGGED_IN, f"this connection is already logged in as {session.agent_id}")
        version = message["protocol"]
        if version not in p.SUPPORTED_VERSIONS:
            raise p.ProtocolError(p.UNSUPPORTED_PROTOCOL, f"protocol {version} is not supported",
                                  supported=list(p.SUPPORTED_VERSIONS))
        agent_id = message["agent_id"]
        keys = (f"agent:{agent_id}", f"addr:{session.address}")
        # The slot is taken before the first await: parallel guesses cannot all be checked before one fails.
        now = self.monotonic()
        wait = self.limiter.acquire(keys, now)
        if wait > 0:
            locked = any(self.limiter.retry_after(key, now) > 0 for key in keys)
            log.warning("CTI login for agent %r from %s refused: %s", agent_id, session.address,
                        f"locked for {wait:.0f}s after repeated wrong PINs" if locked else
                        "as many PIN checks under way as failures are allowed")
            raise p.ProtocolError(p.RATE_LIMITED, f"too many failed logins; try again in {wait:.0f} s",
                                  retry_after=round(wait, 1))
        agent = self.settings.agents.get(agent_id)
        stored = agent.pin_hash if agent is not None else DUMMY_PIN_HASH
        try:
            good = await check_pin(message["pin"], stored)
        finally:
            self.limiter.release(keys, self.monotonic())
        if not good or agent is None:
            locked = max(self.limiter.failure(key, self.monotonic()) for key in keys)
            session.failed_logins += 1
            log.warning("CTI login failed for agent %r from %s: %s (%d recent failure(s) for this agent)%s",
                        agent_id, session.address, "unknown agent" if agent is None else "wrong PIN",
                        self.limiter.failures(keys[0], self.monotonic()),
                        f"; locked for {locked:.0f}s" if locked else "")
            policy = self.limiter.policy
            if policy.failure_delay:
                await asyncio.sleep(policy.failure_delay)
            if session.failed_logins >= policy.max_failures_per_connection:
                # after the reply below has been queued
                asyncio.get_running_loop().call_soon(session.close, p.CLOSE_POLICY, "too many failed logins")
            raise p.ProtocolError(p.AUTH_FAILED, "unknown agent or wrong PIN")
        self.limiter.success(keys[0])
        wanted = message.get("role")
        if wanted is not None and wanted != agent.role:
            # Before the ACD login: an agent who opens the dashboard by mistake is not made available.
            log.warning("CTI login of %s %s from %s refused: the console needs the %s role", agent.role, agent_id,
                        session.address, wanted)
            raise p.ProtocolError(p.FORBIDDEN, f"{agent_id} has the {agent.role} role, not {wanted}",
                                  role=agent.role)
        phone = message.get("phone")
        if phone is not None and not p.valid_sip_uri(phone):
            raise p.ProtocolError(p.BAD_REQUEST, "login: 'phone' must be a SIP URI such as sip:1001@10.0.0.5")
        reason = message.get("not_ready_reason")
        if reason is not None and reason not in self.settings.acd.not_ready_reasons:
            raise p.ProtocolError(p.BAD_REQUEST, f"login: unknown not-ready reason {reason!r}")

        previous = self._agents.get(agent_id)
        if previous is not None and previous is not session:
            log.info("CTI agent %s logged in again from %s: closing the console at %s", agent_id, session.address,
                     previous.address)
            previous.push(previous.event({"type": "session.closed", "reason": "replaced"}, self.clock()))
            previous.close(p.CLOSE_REPLACED, "logged in elsewhere")
            self._agents.pop(agent_id, None)
        session.agent_id = agent_id
        session.role = agent.role
        session.client = str(message.get("client") or "")[:100]
        if agent.role == "supervisor":
            self._supervisors.add(session)
        else:
            self._agents[agent_id] = session
            state = self.center.agent_snapshot(agent_id)["state"]
            if state == "logged_out":
                self.center.login(agent_id, phone=phone, not_ready_reason=reason)
        log.info("CTI %s logged in (%s)", session.who, log_safe(session.client or "unknown client", 100))
        data = self._login_data(agent_id, agent)
        if agent.role == "agent":
            call = data["snapshot"].get("call")
            if call is not None:
                self._spawn(self.pops.resend(agent_id, call))
        return data

    @staticmethod
    def _features() -> dict[str, bool]:
        # every server of this protocol version has them (consoles of earlier versions asked)
        return {"hold": True, "transfer": True, "dial": True}

    def _login_data(self, agent_id: str, agent: Any) -> dict[str, Any]:
        s = self.settings
        return {
            "protocol": p.PROTOCOL_VERSION,
            "server": f"callcenter/{__version__}",
            "agent": {"id": agent_id, "name": agent.name, "role": agent.role},
            "session": secrets.token_hex(8),
            "center": s.center.name,
            "region": s.center.default_region,
            "timezone": self.zone,
            "repeat_hours": self.repeat_hours,
            "dispositions": rules_to_wire(s.dispositions),
            "not_ready_reasons": list(s.acd.not_ready_reasons),
            "queues": [{"id": qid, "name": s.queue_display_name(qid)} for qid in s.queues],
            "agents": [{"id": aid, "name": a.name} for aid, a in s.agents.items() if a.role == "agent"],
            "features": self._features(),
            "limits": {"max_frame_bytes": p.MAX_FRAME_BYTES, "max_note_chars": p.MAX_NOTE_CHARS},
            "snapshot": self._snapshot(agent_id) if agent.role == "agent" else None,
        }

    def _snapshot(self, agent_id: str) -> dict[str, Any]:
        return {**self.center.agent_snapshot(agent_id), "server_time": self.clock().isoformat()}

    async def _r_ping(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        return {"server_time": self.clock().isoformat()}

    async def _r_logout(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        state = "logged_out"
        if session.role == "agent":
            self.center.logout(session.agent_id)
            state = self._state(session.agent_id)
            if state != "logged_out":
                raise p.ProtocolError(p.REFUSED, f"cannot log out while {state}", state=state)
        log.info("CTI %s logged out", session.who)
        if self._agents.get(session.agent_id) is session:
            del self._agents[session.agent_id]
        asyncio.get_running_loop().call_soon(session.close, 1000, "logged out")
        return {"state": state}

    async def _r_agent_snapshot(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        target = message.get("agent_id") or session.agent_id
        if target not in self.settings.agents or self.settings.agents[target].role != "agent":
            raise p.ProtocolError(p.NOT_FOUND, f"no agent {target!r}")
        return {"snapshot": self._snapshot(target)}
