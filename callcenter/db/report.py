"""The end-of-day report from the stored records: queues, agents, dispositions, callbacks, service level per half hour.

Everything comes from the durable tables (``interactions``, ``queue_events``, ``dispositions``,
``callbacks``), never from the live ACD, so a report can be run for any past range and after a
restart. Counting happens in SQL (one grouped query per table, portable between SQLite and
PostgreSQL); only the half-hour buckets are made in Python, because they are in the center's
time zone and the two databases do time-zone arithmetic differently.

Definitions (the same as the wallboard's, see docs/reports.md): a call counts in the range and
queue it was *queued* in (``queued_at``; ``queue`` is the last queue it was in). Answered: it has
``answered_at``; within service level: answered with ``wait_seconds`` at most the queue's
``service_level_seconds``. ``sl_answered`` = within / answered, ``sl_offered`` = within /
(answered + abandoned).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, select

from callcenter.clock import as_utc, utcnow
from callcenter.db.engine import Database
from callcenter.db.models import Callback, Disposition, Interaction, QueueEvent

__all__ = ["Report", "QueueLine", "AgentLine", "DispositionLine", "CallbackLine", "HalfHour", "build_report",
           "day_range"]

HALF_HOUR = dt.timedelta(minutes=30)
_ACTIVE_CALLBACKS = ("pending", "scheduled")


def _ratio(num: float | None, den: float | None) -> float | None:
    return (num or 0) / den if den else None




class _Row:
    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class QueueLine(_Row):
    queue: str
    name: str
    offered: int
    answered: int
    abandoned: int
    overflowed: int
    callback_requested: int
    answered_in_sl: int
    sl_seconds: float
    sl_answered: float | None
    sl_offered: float | None
    abandon_rate: float | None
    asa: float | None
    max_wait: float | None
    aht: float | None


@dataclass(frozen=True)
class AgentLine(_Row):
    agent_id: str
    name: str
    answered: int
    talk: float
    avg_talk: float | None
    avg_wrap: float | None
    aht: float | None
    missed_offers: int
    dispositions: int


@dataclass(frozen=True)
class DispositionLine(_Row):
    code: str
    label: str
    outcome: str
    count: int
    share: float | None


@dataclass(frozen=True)
class CallbackLine(_Row):
    """Callbacks requested in the range (by IVR callers or agents), and what became of them."""

    made: int
    kept: int
    failed: int
    cancelled: int
    in_progress: int
    waiting: int
    overdue: int


@dataclass(frozen=True)
class HalfHour(_Row):
    start: dt.datetime  # in the center's zone
    offered: int
    answered: int
    abandoned: int
    answered_in_sl: int
    sl_answered: float | None
    sl_offered: float | None


@dataclass(frozen=True)
class Report:
    first_day: dt.date
    last_day: dt.date
    zone: str
    queue: str | None
    generated_at: dt.datetime
    queues: list[QueueLine]
    agents: list[AgentLine]
    dispositions: list[DispositionLine]
    callbacks: CallbackLine
    half_hours: list[HalfHour]

    def totals(self) -> QueueLine:
        """All queues added up (service level with each call's own queue threshold)."""
        q = self.queues
        answered = sum(x.answered for x in q)
        abandoned = sum(x.abandoned for x in q)
        in_sl = sum(x.answered_in_sl for x in q)
        asa_sum = sum((x.asa or 0) * x.answered for x in q)
        aht_n = sum(x.answered for x in q if x.aht is not None)
        aht_sum = sum((x.aht or 0) * x.answered for x in q if x.aht is not None)
        waits = [x.max_wait for x in q if x.max_wait is not None]
        return QueueLine("", "All queues", sum(x.offered for x in q), answered, abandoned,
                         sum(x.overflowed for x in q), sum(x.callback_requested for x in q), in_sl, 0.0,
                         _ratio(in_sl, answered), _ratio(in_sl, answered + abandoned),
                         _ratio(abandoned, answered + abandoned), _ratio(asa_sum, answered),
                         max(waits) if waits else None, _ratio(aht_sum, aht_n))


def day_range(first: dt.date, last: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """``[first 00:00, last+1 00:00)`` in ``zone``, as UTC."""
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(first, dt.time(), tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def build_report(
    db: Database,
    *,
    first_day: dt.date,
    last_day: dt.date,
    zone: str,
    sl_seconds: Mapping[str, float],
    queue_names: Mapping[str, str] | None = None,
    agent_names: Mapping[str, str] | None = None,
    dispositions: Mapping[str, tuple[str, str]] | None = None,
    queue: str | None = None,
    now: dt.datetime | None = None,
    default_sl_seconds: float = 20.0,
) -> Report:
    """The report for the days ``first_day``..``last_day`` (inclusive, in ``zone``).

    ``sl_seconds``: each queue's service-level threshold; ``dispositions``: code -> (label,
    outcome) for the breakdown's labels; ``queue`` narrows everything to one queue.
    """
    start, end = day_range(first_day, last_day, zone)
    now = now or utcnow()
    queue_names = queue_names or {}
    agent_names = agent_names or {}
    dispositions = dispositions or {}
    I = Interaction  # noqa: E741
    threshold = case(*[(I.queue == q, literal(float(t))) for q, t in sl_seconds.items()],
                     else_=literal(float(default_sl_seconds))) if sl_seconds else literal(float(default_sl_seconds))
    answered = I.answered_at.is_not(None)
    # Queue figures are about callers: an agent's own dial-out is not offered traffic.
    in_range = and_(I.queued_at >= start, I.queued_at < end, I.queue.is_not(None), I.direction == "inbound")
    if queue is not None:
        in_range = and_(in_range, I.queue == queue)

    def n(condition) -> Any:
        return func.sum(case((condition, 1), else_=0))

    handle = I.talk_seconds + func.coalesce(I.wrap_seconds, 0.0)
    with db.session() as s:
        rows = s.execute(
            select(I.queue, func.count(), n(answered), n(I.outcome == "abandoned"), n(I.outcome.like("overflow%")),
                   n(I.outcome.in_(("callback_requested", "overflowed_callback"))),
                   n(and_(answered, I.wait_seconds <= threshold)),
                   func.avg(case((answered, I.wait_seconds))), func.max(case((answered, I.wait_seconds))),
                   func.avg(case((and_(answered, I.talk_seconds.is_not(None)), handle))))
            .where(in_range).group_by(I.queue).order_by(I.queue)
        ).all()
        queues = []
        for qid, offered, ans, abandoned, overflowed, cb, in_sl, asa, max_wait, aht in rows:
            ans, abandoned, in_sl = int(ans or 0), int(abandoned or 0), int(in_sl or 0)
            queues.append(QueueLine(
                qid, queue_names.get(qid, qid), int(offered), ans, abandoned, int(overflowed or 0), int(cb or 0),
                in_sl, float(sl_seconds.get(qid, default_sl_seconds)), _ratio(in_sl, ans),
                _ratio(in_sl, ans + abandoned), _ratio(abandoned, ans + abandoned),
                float(asa) if asa is not None else None, float(max_wait) if max_wait is not None else None,
                float(aht) if aht is not None else None))
        order = list(queue_names)
        queues.sort(key=lambda x: (order.index(x.queue) if x.queue in order else len(order), x.queue))

        agent_rows = s.execute(
            select(I.agent_id, func.count(), func.coalesce(func.sum(I.talk_seconds), 0.0), func.avg(I.talk_seconds),
                   func.avg(I.wrap_seconds), func.avg(case((I.talk_seconds.is_not(None), handle))))
            .where(in_range, answered, I.agent_id.is_not(None)).group_by(I.agent_id)
        ).all()
        ev = [QueueEvent.event == "RINGNOANSWER", QueueEvent.at >= start, QueueEvent.at < end,
              QueueEvent.agent_id.is_not(None)]
        if queue is not None:
            ev.append(QueueEvent.queue == queue)
        missed = dict(s.execute(select(QueueEvent.agent_id, func.count()).where(*ev).group_by(QueueEvent.agent_id)).all())
        disp_where = [Disposition.created_at >= start, Disposition.created_at < end]
        if queue is not None:
            disp_where.append(I.queue == queue)
        per_agent_disp = dict(s.execute(
            select(Disposition.agent_id, func.count()).join(I, I.id == Disposition.interaction_id)
            .where(*disp_where, Disposition.agent_id.is_not(None)).group_by(Disposition.agent_id)).all())
        agents = []
        seen = set()
        for aid, count, talk, avg_talk, avg_wrap, aht in agent_rows:
            seen.add(aid)
            agents.append(AgentLine(aid, agent_names.get(aid, aid), int(count), float(talk or 0),
                                    float(avg_talk) if avg_talk is not None else None,
                                    float(avg_wrap) if avg_wrap is not None else None,
                                    float(aht) if aht is not None else None, int(missed.get(aid, 0)),
                                    int(per_agent_disp.get(aid, 0))))
        for aid in sorted((set(missed) | set(per_agent_disp)) - seen):  # agents who only missed or disposed
            agents.append(AgentLine(aid, agent_names.get(aid, aid), 0, 0.0, None, None, None,
                                    int(missed.get(aid, 0)), int(per_agent_disp.get(aid, 0))))
        agents.sort(key=lambda a: a.agent_id)

        by_code = s.execute(
            select(Disposition.code, func.count()).join(I, I.id == Disposition.interaction_id)
            .where(*disp_where).group_by(Disposition.code)
        ).all()
        total = sum(int(c) for _, c in by_code)
        disp_lines = [DispositionLine(code, dispositions.get(code, (code, ""))[0], dispositions.get(code, ("", "?"))[1],
                                      int(c), _ratio(int(c), total)) for code, c in by_code]
        disp_lines.sort(key=lambda d: (-d.count, d.code))

        cb_where = [Callback.created_at >= start, Callback.created_at < end]
        if queue is not None:
            cb_where.append(Callback.queue == queue)
        due = func.coalesce(Callback.due_until, Callback.due_from)
        active = Callback.status.in_(_ACTIVE_CALLBACKS)
        made, kept, failed, cancelled, in_progress, waiting, overdue = s.execute(
            select(func.count(), n(Callback.status == "done"), n(Callback.status == "failed"),
                   n(Callback.status == "cancelled"), n(Callback.status == "in_progress"),
                   n(and_(active, due >= now)), n(and_(active, due < now))).where(*cb_where)
        ).one()
        callbacks = CallbackLine(*(int(x or 0) for x in (made, kept, failed, cancelled, in_progress, waiting, overdue)))

        calls = s.execute(
            select(I.queue, I.queued_at, I.answered_at.is_not(None), I.wait_seconds, I.outcome).where(in_range)
        ).all()
    half_hours = _half_hours(calls, ZoneInfo(zone), sl_seconds, default_sl_seconds)
    return Report(first_day, last_day, zone, queue, now, queues, agents, disp_lines, callbacks, half_hours)


def _half_hours(calls: list, zone: ZoneInfo, sl_seconds: Mapping[str, float], default: float) -> list[HalfHour]:
    buckets: dict[dt.datetime, list[int]] = {}
    for qid, queued_at, was_answered, wait, outcome in calls:
        local = as_utc(queued_at).astimezone(zone)
        start = local.replace(minute=30 if local.minute >= 30 else 0, second=0, microsecond=0)
        b = buckets.setdefault(start, [0, 0, 0, 0])
        b[0] += 1
        if was_answered:
            b[1] += 1
            if wait is not None and wait <= sl_seconds.get(qid, default):
                b[3] += 1
        elif outcome == "abandoned":
            b[2] += 1
    return [HalfHour(start, o, a, ab, ins, _ratio(ins, a), _ratio(ins, a + ab))
            for start, (o, a, ab, ins) in sorted(buckets.items())]
