"""Contact records: the interaction row (CDR), the queue event log, dispositions and callbacks.

Every write is its own short transaction so a crash loses at most the step in flight, and the
row of a call is complete at each step (``ended_at`` empty means the call is still going).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from callcenter.db.engine import Database
from callcenter.db.models import AuditEntry, Callback, Disposition, Interaction, QueueEvent
from callcenter.clock import utcnow

_INTERACTION_FIELDS = {
    "queue", "agent_id", "customer_id", "queued_at", "offered_at", "answered_at", "ended_at", "wait_seconds",
    "talk_seconds", "wrap_seconds", "outcome", "ivr_path", "language", "recording_path", "display_name",
}


@dataclass(frozen=True, slots=True)
class CallbackRow:
    callback_id: int
    number: str
    customer_id: int | None
    queue: str | None
    due_from: dt.datetime
    due_until: dt.datetime | None
    owner_agent_id: str | None
    status: str
    attempts: int


class SqlInteractionStore:
    """The durable side of the call flow, on SQLAlchemy (SQLite or PostgreSQL)."""

    def __init__(self, db: Database):
        self.db = db

    def open(
        self, *, call_id: str, direction: str, ani: str | None, dnis: str | None, display_name: str | None,
        customer_id: int | None, arrived_at: dt.datetime,
    ) -> int:
        with self.db.session() as s:
            row = Interaction(
                call_id=call_id, direction=direction, ani=(ani or None) and ani[:64], dnis=(dnis or None) and dnis[:64],
                display_name=(display_name or None) and display_name[:200], customer_id=customer_id,
                arrived_at=arrived_at, ivr_path=[],
            )
            s.add(row)
            s.flush()
            return row.id

    def update(self, call_id: str, **values: Any) -> None:
        unknown = set(values) - _INTERACTION_FIELDS
        if unknown:
            raise ValueError(f"not interaction fields: {sorted(unknown)}")
        with self.db.session() as s:
            s.execute(update(Interaction).where(Interaction.call_id == call_id).values(**values))

    def get(self, call_id: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.scalar(select(Interaction).where(Interaction.call_id == call_id))
            if row is None:
                return None
            return {c.key: getattr(row, c.key) for c in Interaction.__table__.columns}

    def log_queue_event(
        self, *, at: dt.datetime, event: str, queue: str | None, call_id: str | None, agent_id: str | None,
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.db.session() as s:
            s.add(QueueEvent(at=at, event=event, queue=queue, call_id=call_id, agent_id=agent_id, data=data or {}))

    def queue_events(self, call_id: str | None = None) -> list[tuple[str, str | None, str | None]]:
        with self.db.session() as s:
            query = select(QueueEvent.event, QueueEvent.queue, QueueEvent.agent_id).order_by(QueueEvent.id)
            if call_id is not None:
                query = query.where(QueueEvent.call_id == call_id)
            return [tuple(r) for r in s.execute(query)]

    def save_disposition(
        self, *, call_id: str, code: str, notes: str | None, agent_id: str | None, callback: dict[str, Any] | None = None,
    ) -> int:
        """Disposition and optional callback in one transaction: both are written or neither."""
        with self.db.session() as s:
            interaction = s.scalar(select(Interaction).where(Interaction.call_id == call_id))
            if interaction is None:
                raise LookupError(f"no interaction for call {call_id!r}")
            if agent_id is not None and s.scalar(select(Disposition.id).where(
                    Disposition.interaction_id == interaction.id, Disposition.agent_id == agent_id)) is not None:
                raise ValueError(f"call {call_id!r} already has a disposition by agent {agent_id!r}")
            s.add(Disposition(interaction_id=interaction.id, code=code, notes=notes, agent_id=agent_id))
            if callback:
                s.add(
                    Callback(
                        number=callback["number"], customer_id=interaction.customer_id, queue=callback.get("queue"),
                        due_from=callback["due_from"], due_until=callback.get("due_until"),
                        owner_agent_id=callback.get("owner_agent_id"), status="pending", source="agent",
                        notes=callback.get("notes"), interaction_id=interaction.id,
                    )
                )
            s.flush()
            return interaction.id

    def owed_dispositions(self, *, since: dt.datetime) -> list[dict[str, Any]]:
        """Conversations ended since ``since`` that an agent talked on and gave no disposition, oldest first.

        Who talked: every agent with a ``CONNECT`` queue event on the call (so the agent who
        transferred it keeps their part), and the agent of an answered outbound call (an agent's
        own dial has no queue events). ``interactions.agent_id`` alone would name the last agent
        offered, who may never have spoken to the caller.
        """
        from callcenter.core.queue_log import CONNECT

        pairs: dict[tuple[str, int], None] = {}
        with self.db.session() as s:
            connected = (select(QueueEvent.agent_id, Interaction.id)
                         .join(Interaction, Interaction.call_id == QueueEvent.call_id)
                         .where(QueueEvent.event == CONNECT, QueueEvent.agent_id.is_not(None),
                                Interaction.ended_at >= since))
            dialled = select(Interaction.agent_id, Interaction.id).where(
                Interaction.direction == "outbound", Interaction.agent_id.is_not(None),
                Interaction.answered_at.is_not(None), Interaction.ended_at >= since)
            for agent_id, interaction_id in [*s.execute(connected).all(), *s.execute(dialled).all()]:
                pairs[(agent_id, interaction_id)] = None
            if not pairs:
                return []
            disposed = set(s.execute(select(Disposition.agent_id, Disposition.interaction_id).where(
                Disposition.interaction_id.in_({i for _, i in pairs}))).all())
            rows = {i.id: i for i in s.scalars(select(Interaction).where(Interaction.id.in_({i for _, i in pairs})))}
            owed = [(agent_id, rows[i]) for agent_id, i in pairs if (agent_id, i) not in disposed and rows[i].call_id]
        owed.sort(key=lambda pair: (pair[1].ended_at, pair[1].id))
        return [{"agent_id": agent_id, "call_id": i.call_id, "ani": i.ani, "display_name": i.display_name,
                 "queue": i.queue, "customer_id": i.customer_id, "direction": i.direction,
                 "answered_at": i.answered_at, "ended_at": i.ended_at} for agent_id, i in owed]

    def add_callback(
        self, *, number: str, customer_id: int | None, queue: str | None, due_from: dt.datetime,
        due_until: dt.datetime | None, source: str, call_id: str | None = None, owner_agent_id: str | None = None,
        notes: str | None = None,
    ) -> int:
        with self.db.session() as s:
            interaction_id = None
            if call_id:
                interaction_id = s.scalar(select(Interaction.id).where(Interaction.call_id == call_id))
            row = Callback(
                number=number, customer_id=customer_id, queue=queue, due_from=due_from, due_until=due_until,
                owner_agent_id=owner_agent_id, status="pending", source=source, notes=notes,
                interaction_id=interaction_id,
            )
            s.add(row)
            s.flush()
            return row.id

    def callback_progress(self, callback_id: int, *, status: str, result: str, attempt: bool = False,
                          call_id: str | None = None) -> None:
        """Record a dial-now of a callback: its status, what happened, one more try, and its contact."""
        values: dict[str, Any] = {"status": status, "result": result[:200], "updated_at": utcnow()}
        if attempt:
            values["attempts"] = Callback.attempts + 1
        if call_id is not None:  # the outbound interaction, opened before this by the same writer
            values["last_attempt_id"] = select(Interaction.id).where(Interaction.call_id == call_id).scalar_subquery()
        query = update(Callback).where(Callback.id == callback_id)
        if not attempt:  # settling an attempt never reopens a callback someone closed meanwhile
            query = query.where(Callback.status == "in_progress")
        with self.db.session() as s:
            s.execute(query.values(**values))

    def callback_progress_of_request(self, call_id: str, *, status: str, result: str, attempt: bool = False,
                                     attempt_call_id: str | None = None) -> None:
        """The kept-place callback left on call ``call_id`` (its ``ivr`` callback row): attempts and result."""
        with self.db.session() as s:
            interaction_id = s.scalar(select(Interaction.id).where(Interaction.call_id == call_id))
            row_id = None if interaction_id is None else s.scalar(
                select(Callback.id).where(Callback.interaction_id == interaction_id, Callback.source == "ivr")
                .order_by(Callback.id.desc()).limit(1))
        if row_id is None:
            return
        if attempt:
            self.callback_progress(row_id, status=status, result=result, attempt=True, call_id=attempt_call_id)
            return
        # settling never reopens a callback someone closed meanwhile
        values = {"status": status, "result": result[:200], "updated_at": utcnow()}
        with self.db.session() as s:
            s.execute(update(Callback).where(Callback.id == row_id, Callback.status.in_(("in_progress", "pending")))
                      .values(**values))

    def close_unfinished(self, *, reason: str, at: dt.datetime | None = None, call_ids: list[str] | None = None) -> int:
        """Close calls left open by a crash (of the server, or of one worker when ``call_ids`` is given)."""
        at = at or utcnow()
        with self.db.session() as s:
            query = update(Interaction).where(Interaction.ended_at.is_(None))
            if call_ids is not None:
                if not call_ids:
                    return 0
                query = query.where(Interaction.call_id.in_(call_ids))
            result = s.execute(query.values(ended_at=at, outcome=reason))
            return result.rowcount or 0

    def open_queue_calls(self, *, since: dt.datetime) -> list[dict[str, Any]]:
        """Calls that entered a queue since ``since`` and have no closing queue event after it (a crash)."""
        from callcenter.core.queue_log import CLOSING, CONNECT, ENTERQUEUE

        entered = (select(QueueEvent.call_id, func.max(QueueEvent.id).label("enter_id"))
                   .where(QueueEvent.event == ENTERQUEUE, QueueEvent.at >= since, QueueEvent.call_id.is_not(None))
                   .group_by(QueueEvent.call_id).subquery())
        closed = (select(QueueEvent.call_id, func.max(QueueEvent.id).label("close_id"))
                  .where(QueueEvent.event.in_(sorted(CLOSING))).group_by(QueueEvent.call_id).subquery())
        query = (select(entered.c.call_id, entered.c.enter_id)
                 .outerjoin(closed, closed.c.call_id == entered.c.call_id)
                 .where((closed.c.close_id.is_(None)) | (closed.c.close_id < entered.c.enter_id)))
        out = []
        with self.db.session() as s:
            for call_id, enter_id in s.execute(query).all():
                enter = s.get(QueueEvent, enter_id)
                connect = s.scalars(select(QueueEvent).where(QueueEvent.call_id == call_id, QueueEvent.id > enter_id,
                                                             QueueEvent.event == CONNECT)
                                    .order_by(QueueEvent.id.desc()).limit(1)).first()
                out.append({"call_id": call_id, "queue": enter.queue, "entered_at": enter.at,
                            "agent_id": connect.agent_id if connect else None,
                            "connected_at": connect.at if connect else None})
        return out

    def audit(self, *, actor: str, action: str, target: str | None, details: dict[str, Any] | None = None) -> None:
        with self.db.session() as s:
            s.add(AuditEntry(actor=actor, action=action, target=target, details=details or {}))

    def outcomes_since(self, since: dt.datetime) -> dict[str | None, int]:
        with self.db.session() as s:
            return dict(
                s.execute(
                    select(Interaction.outcome, func.count()).where(Interaction.arrived_at >= since)
                    .group_by(Interaction.outcome)
                ).all()
            )

    def count_open(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count()).where(Interaction.ended_at.is_(None))) or 0
