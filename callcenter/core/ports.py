"""What the call flow needs from the outside, as small interfaces with in-memory twins for tests."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from acd import AcdEngine
from callcenter.clock import utcnow
from callcenter.core import telephony_protocol as tp
from callcenter.core.calls import Call


class ContactStore(Protocol):
    """The durable record of contacts (``callcenter.db.interactions.SqlInteractionStore``)."""

    def open(self, *, call_id: str, direction: str, ani: str | None, dnis: str | None, display_name: str | None,
             customer_id: int | None, arrived_at: dt.datetime) -> int: ...

    def update(self, call_id: str, **values: Any) -> None: ...

    def log_queue_event(self, *, at: dt.datetime, event: str, queue: str | None, call_id: str | None,
                        agent_id: str | None, data: dict[str, Any] | None = None) -> None: ...

    def add_callback(self, *, number: str, customer_id: int | None, queue: str | None, due_from: dt.datetime,
                     due_until: dt.datetime | None, source: str, call_id: str | None = None,
                     owner_agent_id: str | None = None, notes: str | None = None) -> int: ...

    def close_unfinished(self, *, reason: str, at: dt.datetime | None = None,
                         call_ids: list[str] | None = None) -> int: ...

    def save_disposition(self, *, call_id: str, code: str, notes: str | None, agent_id: str | None,
                         callback: dict[str, Any] | None = None) -> int: ...

    def callback_progress_of_request(self, call_id: str, *, status: str, result: str, attempt: bool = False,
                                     attempt_call_id: str | None = None) -> None:
        """Progress of the callback row left on call ``call_id`` (a kept-place callback)."""

    def open_queue_calls(self, *, since: dt.datetime) -> list[dict[str, Any]]:
        """Calls whose queue events since ``since`` have no closing event (call_id, queue, entered_at,
        agent_id and connected_at when it was connected)."""

    def owed_dispositions(self, *, since: dt.datetime) -> list[dict[str, Any]]:
        """Conversations ended since ``since`` with no disposition by their agent (keys as ``OwedDisposition`` + agent_id)."""

    def callback_progress(self, callback_id: int, *, status: str, result: str, attempt: bool = False,
                          call_id: str | None = None) -> None: ...

    def audit(self, *, actor: str, action: str, target: str | None, details: dict[str, Any] | None = None) -> None:
        """Append to the audit log (who did what to whom): supervisor actions."""


class Notifier(Protocol):
    """Pushes to consoles (CTI): one agent's own events, and the supervisors' feed."""

    def to_agent(self, agent_id: str, message: dict[str, Any]) -> None: ...

    def to_supervisors(self, message: dict[str, Any]) -> None: ...


class NullNotifier:
    def to_agent(self, agent_id: str, message: dict[str, Any]) -> None:
        pass

    def to_supervisors(self, message: dict[str, Any]) -> None:
        pass


class QueueLogSink(Protocol):
    """Asterisk-compatible queue_log lines (see :mod:`callcenter.core.queue_log`)."""

    def write(self, line: str) -> None: ...


class InMemoryContactStore:
    """The contact store's twin for tests: rows as dicts, queue events as tuples."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str | None, str | None, str | None, dict[str, Any]]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.audits: list[dict[str, Any]] = []

    def open(self, *, call_id: str, direction: str, ani: str | None, dnis: str | None, display_name: str | None,
             customer_id: int | None, arrived_at: dt.datetime) -> int:
        self.rows[call_id] = {"call_id": call_id, "direction": direction, "ani": ani, "dnis": dnis,
                              "display_name": display_name, "customer_id": customer_id, "arrived_at": arrived_at,
                              "ended_at": None, "outcome": None}
        return len(self.rows)

    def update(self, call_id: str, **values: Any) -> None:
        self.rows[call_id].update(values)

    def log_queue_event(self, *, at: dt.datetime, event: str, queue: str | None, call_id: str | None,
                        agent_id: str | None, data: dict[str, Any] | None = None) -> None:
        self.events.append((event, queue, call_id, agent_id, data or {}))

    def add_callback(self, **values: Any) -> int:
        self.callbacks.append(values)
        return len(self.callbacks)

    def callback_progress(self, callback_id: int, *, status: str, result: str, attempt: bool = False,
                          call_id: str | None = None) -> None:
        cb = self.callbacks[callback_id - 1]
        cb.update(status=status, result=result, attempts=cb.get("attempts", 0) + (1 if attempt else 0))
        if call_id is not None:
            cb["last_attempt"] = call_id

    def close_unfinished(self, *, reason: str, at: dt.datetime | None = None,
                         call_ids: list[str] | None = None) -> int:
        closed = 0
        for call_id, row in self.rows.items():
            if row["ended_at"] is None and (call_ids is None or call_id in call_ids):
                row.update(ended_at=at or utcnow(), outcome=reason)
                closed += 1
        return closed

    def save_disposition(self, *, call_id: str, code: str, notes: str | None, agent_id: str | None,
                         callback: dict[str, Any] | None = None) -> int:
        self.rows[call_id].setdefault("dispositions", []).append({"code": code, "notes": notes, "agent_id": agent_id})
        if callback:
            self.callbacks.append({**callback, "source": "agent", "call_id": call_id})
        return 1

    def callback_progress_of_request(self, call_id: str, *, status: str, result: str, attempt: bool = False,
                                     attempt_call_id: str | None = None) -> None:
        for cb in reversed(self.callbacks):
            if cb.get("call_id") == call_id and cb.get("source") == "ivr":
                if not attempt and cb.get("status", "pending") not in ("pending", "in_progress"):
                    return
                cb.update(status=status, result=result, attempts=cb.get("attempts", 0) + (1 if attempt else 0))
                if attempt_call_id is not None:
                    cb["last_attempt"] = attempt_call_id
                return

    def open_queue_calls(self, *, since: dt.datetime) -> list[dict[str, Any]]:
        from callcenter.core.queue_log import CLOSING, CONNECT, ENTERQUEUE

        state: dict[str, dict[str, Any] | None] = {}
        for event, queue, call_id, agent, _ in self.events:
            if call_id is None:
                continue
            if event == ENTERQUEUE:
                state[call_id] = {"call_id": call_id, "queue": queue, "entered_at": None, "agent_id": None,
                                  "connected_at": None}
            elif event == CONNECT and state.get(call_id):
                state[call_id].update(agent_id=agent, connected_at=since)
            elif event in CLOSING:
                state[call_id] = None
        return [open_call for open_call in state.values() if open_call]

    def owed_dispositions(self, *, since: dt.datetime) -> list[dict[str, Any]]:
        owed = []
        for row in self.rows.values():
            agent = row.get("agent_id")
            if not agent or not row.get("answered_at") or not row.get("ended_at") or row["ended_at"] < since:
                continue
            if any(d["agent_id"] == agent for d in row.get("dispositions", ())):
                continue
            owed.append({"agent_id": agent, "call_id": row["call_id"], "ani": row["ani"],
                         "display_name": row["display_name"], "queue": row.get("queue"),
                         "customer_id": row["customer_id"], "direction": row["direction"],
                         "answered_at": row["answered_at"], "ended_at": row["ended_at"]})
        return sorted(owed, key=lambda o: o["ended_at"])

    def audit(self, *, actor: str, action: str, target: str | None, details: dict[str, Any] | None = None) -> None:
        self.audits.append({"actor": actor, "action": action, "target": target, "details": details or {}})

    def event_names(self, call_id: str | None = None) -> list[str]:
        return [e[0] for e in self.events if call_id is None or e[2] == call_id]


class Telephony(Protocol):
    """What the control process needs from telephony; ``callcenter.telephony.pool.WorkerPool`` and its in-memory twin ``FakeTelephony``."""

    events: asyncio.Queue

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def send(self, command: tp.Command, *, worker: str | None = None) -> str: ...

    def dial(self, uri: str, *, peer: str | None = None, caller_id: str = "", display_name: str = "",
             timeout: float = 30.0, worker: str | None = None) -> str: ...

    def free_legs(self, worker: str | None = None) -> int: ...

    def worker_of(self, leg: str) -> str | None: ...

    async def live_legs(self) -> dict[str, dict[str, str] | None]:
        """Every serving worker's legs as the worker itself holds them (leg -> SIP state); None for a worker that
        did not answer in time. The reconciliation sweep's ground truth."""


class CenterPort(Protocol):
    """What the consoles' server (CTI) may ask of the contact center: the agent desk, supervision and a
    read-only view of the ACD and the calls for the dashboard. ``ContactCenter`` is the one implementation;
    every rule (who may do what on which call) is answered here, never decided again by the caller."""

    engine: AcdEngine  # read for statistics only
    calls: Mapping[str, Call]  # read only
    counters: Mapping[str, int]

    def now(self) -> dt.datetime: ...

    async def drain(self) -> None: ...

    # the agent desk
    def agent_snapshot(self, agent_id: str) -> dict[str, Any]: ...

    def login(self, agent_id: str, *, phone: str | None = None, not_ready_reason: str | None = None) -> None: ...

    def logout(self, agent_id: str) -> None: ...

    def ready(self, agent_id: str) -> None: ...

    def not_ready(self, agent_id: str, reason: str) -> None: ...

    def end_wrap_up(self, agent_id: str) -> None: ...

    def extend_wrap_up(self, agent_id: str) -> dict[str, Any]: ...

    def wrap_up_of(self, agent_id: str) -> dict[str, Any] | None: ...

    def hang_up(self, agent_id: str) -> bool: ...

    def hold(self, agent_id: str) -> bool: ...

    def unhold(self, agent_id: str) -> bool: ...

    def transfer(self, agent_id: str, target: str) -> bool: ...

    def dial(self, agent_id: str, number: str, *, callback_id: int | None = None, customer_id: int | None = None,
             queue: str | None = None, display_name: str | None = None) -> bool: ...

    def dispose(self, agent_id: str, call_id: str, code: str, notes: str | None = None,
                callback: dict[str, Any] | None = None, *, end_wrap_up: bool = False) -> None: ...

    def owed_list(self, agent_id: str) -> list[dict[str, Any]]: ...

    def may(self, agent_id: str, action: str, call_id: str) -> bool: ...

    def belongs_to_another(self, agent_id: str, call_id: str) -> bool: ...

    def keep_notes(self, agent_id: str, call_id: str, text: str) -> None: ...

    def link_customer(self, call_id: str, customer_id: int) -> None: ...

    # supervision
    def force_state(self, supervisor: str, agent_id: str, state: str, reason: str | None = None) -> dict[str, Any]: ...

    def set_skills(self, supervisor: str, agent_id: str, skills: dict[str, int]) -> dict[str, Any]: ...
