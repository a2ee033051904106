"""The agent console's view of the world, kept apart from the widgets: login data and pushed events in, state out.

The model is only ever changed by what the server says (the login reply with its snapshot, and
events), so the console shows the server's truth. Timers are anchored on the console's monotonic
clock, corrected by the server's own timestamps, so a console that reconnects mid-call shows the
right talk time. No Textual here: tests drive it with plain dicts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from callcenter.clock import parse_time
from screenpop.pop import ScreenPop
from screenpop.text import STATE_LABELS
from screenpop.wire import WireError, pop_from_wire


@dataclass
class CallView:
    call_id: str
    phase: str  # ringing | connected | ended
    ani: str | None = None
    display_name: str | None = None
    queue: str | None = None
    customer_id: int | None = None
    callback: str | None = None
    waited: float | None = None
    offered_local: float | None = None
    answered_local: float | None = None
    ended_local: float | None = None
    held: bool = False
    pop: ScreenPop | None = None
    pop_error: str | None = None
    notes: str = ""
    disposed: bool = False
    ended_at: dt.datetime | None = None  # server time, for the list of dispositions owed

    @classmethod
    def from_owed(cls, item: dict[str, Any]) -> CallView:
        """A call the server lists as owing a disposition (no pop: the console was not there, or restarted)."""
        return cls(call_id=str(item["call_id"]), phase="ended", ani=item.get("ani"),
                   display_name=item.get("display_name"), queue=item.get("queue"),
                   customer_id=item.get("customer_id"), notes=item.get("notes") or "",
                   ended_at=parse_time(item.get("ended_at")))


@dataclass
class AgentModel:
    agent_id: str
    name: str = ""
    role: str = "agent"
    state: str = "logged_out"
    reason: str | None = None
    phone: str = "fixed"  # online / offline for a phone that registers; fixed when the center cannot tell
    state_since: float = 0.0
    link: str = "connecting"
    link_detail: str = ""
    call: CallView | None = None
    # Calls this agent still owes a disposition for, oldest first: the server's list, with what the
    # console knows of each (pop, notes). A list, never a stack of forms.
    owed: dict[str, CallView] = field(default_factory=dict)
    wrap: dict[str, Any] | None = None  # the wrap-up as the server has it (mode, until, owed_call)
    dispositions: list[dict[str, Any]] = field(default_factory=list)
    not_ready_reasons: list[str] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, bool] = field(default_factory=dict)
    region: str = "CN"
    timezone: str = "UTC"
    center: str = ""
    repeat_hours: float = 24.0
    logins: int = 0

    # ------------------------------------------------------------------ derived

    @property
    def label(self) -> str:
        if self.link in ("down", "connecting") and self.logins:
            return "Reconnecting"
        if self.call is not None and self.call.held:
            return "On hold"
        label = STATE_LABELS.get(self.state, self.state)
        if self.state == "not_ready" and self.reason:
            label += f": {self.reason.replace('_', ' ')}"
        if self.phone == "offline" and self.reason != "phone_offline":
            label += " · phone offline"
        return label

    def elapsed(self, now: float) -> float | None:
        """Seconds to show beside the state: talk time on a call, time in state otherwise."""
        if self.state == "on_call" and self.call is not None and self.call.answered_local is not None:
            return max(0.0, now - self.call.answered_local)
        if self.state_since:
            return max(0.0, now - self.state_since)
        return None

    def disposition(self, code: str) -> dict[str, Any] | None:
        return next((d for d in self.dispositions if d.get("code") == code), None)

    @property
    def needs_disposition(self) -> bool:
        return bool(self.owed)

    @property
    def wrap_call(self) -> CallView | None:
        """The call the wrap-up is for (or else the latest one owed): what the pop pane shows between calls."""
        owed_call = (self.wrap or {}).get("owed_call")
        if owed_call in self.owed:
            return self.owed[owed_call]
        return next(reversed(self.owed.values()), None)

    @property
    def disposition_blocks(self) -> bool:
        """The queue's after-call work waits for a disposition before the next call."""
        return self.state == "wrap_up" and bool((self.wrap or {}).get("owed_call"))

    def owns(self, call_id: str | None) -> CallView | None:
        if self.call is not None and self.call.call_id == call_id:
            return self.call
        return self.owed.get(call_id) if call_id is not None else None

    def set_owed(self, items: list[dict[str, Any]]) -> None:
        """Replace the list with the server's, keeping what this console already knows of each call."""
        known = dict(self.owed)
        if self.call is not None:
            known.setdefault(self.call.call_id, self.call)
        owed: dict[str, CallView] = {}
        for item in items:
            if not isinstance(item, dict) or not item.get("call_id"):
                continue
            call_id = str(item["call_id"])
            view = known.get(call_id) or CallView.from_owed(item)
            view.ended_at = view.ended_at or parse_time(item.get("ended_at"))
            owed[call_id] = view
        self.owed = owed

    def mark_disposed(self, call_id: str) -> None:
        view = self.owed.pop(call_id, None)
        if view is not None:
            view.disposed = True

    # ------------------------------------------------------------------ inputs

    def _local(self, server_moment: Any, server_now: dt.datetime | None, now: float) -> float | None:
        """A server time as a point on the local monotonic clock."""
        moment = parse_time(server_moment)
        if moment is None or server_now is None:
            return None
        return now - max(0.0, (server_now - moment).total_seconds())

    def on_login(self, data: dict[str, Any], now: float) -> None:
        """A login reply: configuration, and the agent's state and call as the server has them."""
        self.logins += 1
        self.link, self.link_detail = "up", ""
        agent = data.get("agent") or {}
        self.name = agent.get("name") or self.agent_id
        self.role = agent.get("role") or "agent"
        self.dispositions = list(data.get("dispositions") or [])
        self.not_ready_reasons = list(data.get("not_ready_reasons") or [])
        self.queues = list(data.get("queues") or [])
        self.agents = [a for a in data.get("agents") or [] if a.get("id") != self.agent_id]
        self.features = dict(data.get("features") or {})
        self.region = data.get("region") or self.region
        self.timezone = data.get("timezone") or self.timezone
        self.center = data.get("center") or ""
        self.repeat_hours = float(data.get("repeat_hours") or 24)
        snapshot = data.get("snapshot")
        if not snapshot:
            self.state, self.reason, self.call = "logged_out", None, None
            return
        server_now = parse_time(snapshot.get("server_time"))
        self.state = snapshot.get("state") or "logged_out"
        self.reason = snapshot.get("reason")
        self.phone = snapshot.get("phone_status") or "fixed"
        self.state_since = self._local(snapshot.get("since"), server_now, now) or now
        raw = snapshot.get("call")
        previous = self.call
        if raw:
            call = CallView(
                call_id=raw["call_id"], phase="connected" if raw.get("phase") == "connected" else "ringing",
                ani=raw.get("ani"), display_name=raw.get("display_name"), queue=raw.get("queue"),
                customer_id=raw.get("customer_id"), callback=raw.get("callback"), waited=raw.get("waited"),
                held=bool(raw.get("held")), notes=raw.get("notes") or "",
            )
            call.answered_local = self._local(raw.get("answered_at"), server_now, now)
            if previous is not None and previous.call_id == call.call_id:
                call.pop, call.pop_error, call.offered_local = previous.pop, previous.pop_error, previous.offered_local
                call.notes = call.notes or previous.notes
            self.call = call
        else:
            if previous is not None and previous.phase == "connected":
                previous.phase, previous.ended_local = "ended", now
            self.call = None
        if previous is not None and previous is not self.call:
            self.owed.setdefault(previous.call_id, previous)  # kept only if the server lists it below
        self.wrap = snapshot.get("wrap") if self.state == "wrap_up" else None
        self.set_owed(list(snapshot.get("owed") or []))

    def on_event(self, message: dict[str, Any], now: float) -> str | None:
        """Apply one pushed event; returns what changed: 'state', 'offer', 'pop', 'call', 'ended' or None."""
        kind = message.get("type")
        call_id = message.get("call_id")
        if kind == "agent.state":
            if message.get("agent_id") not in (None, self.agent_id):
                return None
            self.state = message.get("state") or self.state
            self.reason = message.get("reason")
            self.state_since = now
            self.wrap = message.get("wrap") if self.state == "wrap_up" else None
            if self.call is not None and self.call.phase == "ringing" and self.state in (
                    "available", "not_ready", "logged_out"):
                self.call = None  # the offer is gone (the caller hung up while the phone rang)
            return "state"
        if kind == "agent.phone":
            if message.get("agent_id") not in (None, self.agent_id):
                return None
            self.phone = message.get("phone") or self.phone
            return "state"
        if kind == "call.offered":
            self.call = CallView(
                call_id=call_id, phase="ringing", ani=message.get("ani"), display_name=message.get("display_name"),
                queue=message.get("queue"), customer_id=message.get("customer_id"), callback=message.get("callback"),
                waited=message.get("waited"), offered_local=now,
            )
            return "offer"
        if kind == "call.pop":
            call = self.owns(call_id)
            if call is None:
                return None
            call.pop_error = message.get("error")
            try:
                call.pop = pop_from_wire(message["pop"]) if message.get("pop") is not None else None
            except (WireError, KeyError) as exc:
                call.pop, call.pop_error = None, f"unreadable screen pop: {exc}"
            return "pop"
        if kind == "call.offer_cancelled":
            if self.call is not None and self.call.call_id == call_id:
                self.call = None
                return "call"
            return None
        if kind == "call.connected":
            if self.call is not None and self.call.call_id == call_id:
                self.call.phase = "connected"
                self.call.answered_local = now
                return "call"
            return None
        if kind in ("call.held", "call.resumed"):
            if self.call is not None and self.call.call_id == call_id:
                self.call.held = kind == "call.held"
                return "call"
            return None
        if kind in ("call.ended", "call.transferred"):
            call = self.call if self.call is not None and self.call.call_id == call_id else None
            if call is not None:
                call.phase, call.ended_local, call.held = "ended", now, False
                self.call = None
                if call.answered_local is not None and "owed" not in message:
                    self.owed[call.call_id] = call
            if "owed" in message:
                if call is not None:
                    self.owed.setdefault(call.call_id, call)
                self.set_owed(list(message.get("owed") or []))
            return "ended" if call is not None or "owed" in message else None
        if kind == "disposition.owed":
            self.set_owed(list(message.get("owed") or []))
            return "owed"
        if kind == "agent.wrap_up":
            self.wrap = message.get("wrap") if self.state == "wrap_up" else None
            return "state"
        return None
