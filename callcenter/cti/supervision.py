"""The supervisors' feed: queue and agent figures pushed to dashboards, coalesced.

The call flow tells the CTI server which queues and agents each ACD step touched
(``acd.changed``); this module keeps those as dirty sets and pushes one ``supervisor.update``
per ``push_interval`` at most, with fresh rows for only what changed. The first change after a
quiet spell goes out at once, so a lone event reaches the screen in milliseconds, while a burst
of hundreds of events per second still costs a dashboard a few updates per second.

Every few seconds it also samples each queue's running totals into an :class:`acd.history.QueueHistory`,
which gives the last half hour (staffing: Erlang C for the recent arrival rate and handle time)
and the last hour minute by minute (trends) without reading the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from acd.erlang import ErlangError, agents_for_service_level, erlang_c_report
from acd.history import QueueHistory
from acd.stats import AgentStats, QueueStats
from callcenter.config import Settings
from callcenter.core.ports import CenterPort

log = logging.getLogger("callcenter.cti.supervision")

__all__ = ["SupervisorFeed"]

STAFFING_WINDOW = 1800.0
TREND_SECONDS = 3600.0
TREND_BUCKET = 60.0
_BUSY_STATES = ("available", "reserved", "on_call", "wrap_up", "not_ready")


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


class SupervisorFeed:
    """Builds the dashboard's rows from the ACD and pushes the coalesced updates.

    ``push(message)`` sends an event to every supervisor connection; ``listening()`` says whether
    any is connected (nothing is built for nobody). All methods run on the server's loop.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        push: Callable[[dict[str, Any]], None],
        listening: Callable[[], bool],
        connected_agents: Callable[[], Iterable[str]] = tuple,
        interval: float | None = None,
        sample_every: float = 5.0,
        refresh_agents_every: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.center: CenterPort | None = None
        self.push = push
        self.listening = listening
        self.connected_agents = connected_agents
        self.interval = interval if interval is not None else settings.supervisor.push_interval
        self.sample_every = sample_every
        self.refresh_agents_every = refresh_agents_every
        self.monotonic = monotonic
        self.history: dict[str, QueueHistory] = {qid: QueueHistory() for qid in settings.queues}
        self._queues: set[str] = set()
        self._agents: set[str] = set()
        self._counters = False
        self._staffing = False
        self._first_change: float | None = None
        self._last_push = -math.inf
        self._handle: asyncio.TimerHandle | None = None
        self._sampler: asyncio.TimerHandle | None = None
        self._last_agent_refresh = 0.0
        self._running = False
        self.pushed = 0

    # ------------------------------------------------------------------ lifecycle

    def bind(self, center: CenterPort) -> None:
        self.center = center

    def start(self) -> None:
        self._running = True
        self._last_agent_refresh = self.monotonic()  # a dashboard starts from a snapshot
        self._sample()

    def stop(self) -> None:
        """No more timers: the call flow may still report changes while the server shuts down."""
        self._running = False
        self._clear()
        for handle in (self._handle, self._sampler):
            if handle is not None:
                handle.cancel()
        self._handle = self._sampler = None

    # ------------------------------------------------------------------ changes in

    def changed(self, queues: Iterable[str] = (), agents: Iterable[str] = (), *, counters: bool = False) -> None:
        """Queues and agents touched by the call flow; pushed within one ``interval``."""
        self._queues.update(q for q in queues if q in self.history)
        self._agents.update(agents)
        self._counters = self._counters or counters
        if self._first_change is None:
            self._first_change = self.monotonic()
        self._schedule()

    def _schedule(self) -> None:
        if not self._running:
            self._clear()
            return
        if self._handle is not None or not self.listening():
            if not self.listening():
                self._clear()
            return
        delay = max(0.0, self._last_push + self.interval - self.monotonic())
        self._handle = asyncio.get_running_loop().call_later(delay, self._flush)

    def _clear(self) -> None:
        self._queues.clear()
        self._agents.clear()
        self._counters = self._staffing = False
        self._first_change = None

    def _flush(self) -> None:
        self._handle = None
        if not self.listening():
            self._clear()
            return
        try:
            message = self.update()
        except Exception:
            log.exception("building the supervisors' update failed")
            self._clear()
            return
        self._last_push = self.monotonic()
        self.pushed += 1
        self.push(message)

    def update(self) -> dict[str, Any]:
        """The ``supervisor.update`` event for what changed since the last one (and forget it)."""
        now = self._now()
        agents = {a for a in self._agents if a in self.settings.agents and self.settings.agents[a].role == "agent"}
        stats = {aid: self.center.engine.agent_stats(aid, now) for aid in agents}
        queues = set(self._queues)
        for s in stats.values():  # an agent's state changes its queues' agent counts
            queues.update(s.queues)
        message: dict[str, Any] = {"type": "supervisor.update"}
        if queues:
            counts = self._state_counts(now)
            message["queues"] = [self._queue_row(qid, self.center.engine.queue_stats(qid, now), counts.get(qid, {}))
                                 for qid in sorted(queues)]
        if agents:
            message["agents"] = [self._agent_row(aid, stats[aid], now) for aid in sorted(agents)]
        message["counters"] = self.counters()
        if self._staffing:
            message["staffing"] = self.staffing(now)
        if self._first_change is not None:
            # CLOCK_MONOTONIC of the server's host at the oldest change in this update: a dashboard on
            # the same host (the benchmark) measures event-to-screen latency with it.
            message["changed_mono"] = round(self._first_change, 6)
        message["server_time"] = self._when(now)
        self._clear()
        return message

    # ------------------------------------------------------------------ periodic sample

    def _sample(self) -> None:
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        self._sampler = loop.call_later(self.sample_every, self._sample)
        if self.center is not None:
            self.sample_now()

    def sample_now(self) -> None:
        """Add a sample of every queue to the history and push the refreshed rows (also for tests)."""
        try:
            now = self._now()
            for qid, history in self.history.items():
                history.add(self.center.engine.queue_stats(qid, now))
        except Exception:
            log.exception("sampling the queues failed")
            return
        if not self.listening():
            return
        # Waits grow and occupancy drifts without events: refresh the queues (cheap) every sample
        # and the agents now and then, with the staffing figures of the new sample.
        self._queues.update(self.history)
        self._staffing = True
        mono = self.monotonic()
        if mono - self._last_agent_refresh >= self.refresh_agents_every:
            self._last_agent_refresh = mono
            self._agents.update(a for a, c in self.settings.agents.items() if c.role == "agent")
        self._schedule()

    # ------------------------------------------------------------------ rows

    def _now(self) -> float:
        return self.center.now().timestamp()

    @staticmethod
    def _when(ts: float | None) -> str | None:
        return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()

    def _state_counts(self, now: float) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        engine = self.center.engine
        for aid in engine.agent_ids():
            state, _ = engine.agent_state(aid)
            if state == "logged_out":
                continue
            for qid in engine.agent_stats(aid, now).queues:
                row = counts.setdefault(qid, dict.fromkeys(_BUSY_STATES, 0))
                row[state] += 1
        return counts

    def _queue_row(self, qid: str, s: QueueStats, counts: dict[str, int]) -> dict[str, Any]:
        q = self.settings.queues[qid]
        oldest = s.at - s.longest_wait if s.longest_wait > 0 else None
        agents = {state: counts.get(state, 0) for state in _BUSY_STATES}
        agents["logged_in"] = s.members_logged_in
        return {
            "queue": qid, "name": q.name or qid,
            "waiting": s.waiting, "ringing": s.ringing, "callbacks_waiting": s.callbacks_waiting,
            "longest_wait": round(s.longest_wait, 3), "oldest_since": self._when(oldest),
            "sl1": _round(s.sl1), "sl2": _round(s.sl2),
            "sl_seconds": s.service_level_seconds, "sl_target": s.service_level_target,
            "asa": _round(s.asa, 2), "aht": _round(s.aht, 2),
            "offered": s.entered, "answered": s.answered, "abandoned": s.abandoned,
            "overflowed": s.overflowed, "agents": agents,
        }

    def _agent_row(self, aid: str, s: AgentStats, now: float) -> dict[str, Any]:
        config = self.settings.agents[aid]
        snapshot = self.center.agent_snapshot(aid)
        call = snapshot.get("call")
        handled = s.talk + s.wrap
        return {
            "agent_id": aid, "name": config.name, "state": s.state, "reason": s.reason,
            "since": self._when(now - s.time_in_state), "queues": list(s.queues),
            "skills": self.center.engine.agent_skills(aid),
            "call": None if call is None else {
                "call_id": call["call_id"], "phase": call.get("phase"), "queue": call.get("queue"),
                "ani": call.get("ani"), "display_name": call.get("display_name"),
            },
            "calls": s.calls, "aht": _round(handled / s.calls, 2) if s.calls else None,
            "occupancy": _round(s.occupancy), "missed": s.missed_offers,
            "owed": len(snapshot.get("owed") or ()),
            "console": aid in set(self.connected_agents()),
            "phone": snapshot.get("phone_status", "fixed"),
        }

    def counters(self) -> dict[str, int]:
        c = self.center.counters
        return {"blocked": int(c.get("blocked", 0)), "arrived": int(c.get("arrived", 0)),
                "repairs": int(c.get("repairs_today", 0))}

    def staffing(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per queue: Erlang C agents for the last half hour's arrival rate and handle time."""
        now = self._now() if now is None else now
        out = []
        engine = self.center.engine
        for qid, history in self.history.items():
            q = self.settings.queues[qid]
            window = history.window(STAFFING_WINDOW, now)
            stats = engine.queue_stats(qid, now)
            aht = window.aht if window.aht is not None else stats.aht
            rate = window.arrival_rate
            row: dict[str, Any] = {
                "queue": qid, "name": q.name or qid, "window": round(window.seconds),
                "arrivals": window.arrivals, "calls_per_hour": round(rate * 3600, 1),
                "aht": _round(aht, 1), "aht_source": "window" if window.aht is not None else (
                    "today" if aht is not None else None),
                "sl_seconds": q.service_level_seconds, "sl_target": q.service_level_target,
                "logged_in": stats.members_logged_in, "recommended": None, "traffic": None,
                "predicted_sl": None, "note": None,
            }
            if window.seconds <= 0:
                row["note"] = "collecting: no samples yet"
            elif rate <= 0:
                row.update(recommended=0, traffic=0.0, note="no arrivals in the window")
            elif aht is None:
                row["note"] = "no call answered yet: handle time unknown"
            else:
                target = min(q.service_level_target, 0.999)
                try:
                    need = agents_for_service_level(rate, aht, q.service_level_seconds, target, max_agents=100_000)
                    row.update(recommended=need.agents, traffic=round(rate * aht, 2))
                    if stats.members_logged_in > 0:
                        have = erlang_c_report(rate, aht, stats.members_logged_in, q.service_level_seconds)
                        row["predicted_sl"] = _round(have.service_level)
                except ErlangError as exc:
                    row["note"] = str(exc)
            out.append(row)
        return out

    # ------------------------------------------------------------------ requests

    def snapshot(self) -> dict[str, Any]:
        now = self._now()
        engine = self.center.engine
        counts = self._state_counts(now)
        agents = [aid for aid, a in self.settings.agents.items() if a.role == "agent"]
        s = self.settings.supervisor
        return {
            "server_time": self._when(now),
            "queues": [self._queue_row(qid, engine.queue_stats(qid, now), counts.get(qid, {}))
                       for qid in self.settings.queues],
            "agents": [self._agent_row(aid, engine.agent_stats(aid, now), now) for aid in agents],
            "counters": self.counters(),
            "staffing": self.staffing(now),
            "thresholds": {"wait_amber_seconds": s.wait_amber_seconds, "wait_red_seconds": s.wait_red_seconds,
                           "sl_red_margin": s.sl_red_margin},
            "push_interval": self.interval,
            "not_ready_reasons": list(self.settings.acd.not_ready_reasons),
        }

    def queue_detail(self, queue: str, limit: int = 100) -> dict[str, Any]:
        """The waiting callers in service order, and why no agent has taken the oldest."""
        engine = self.center.engine
        now = self._now()
        waiting = engine.waiting_calls(queue)
        callers = []
        for position, call_id in enumerate(waiting[:limit], 1):
            info = engine.call_info(call_id)
            plain = engine.explain(call_id, now, agents=())  # the requirement, without the per-agent verdicts
            live = self.center.calls.get(call_id)
            callers.append({
                "position": position, "call_id": call_id, "priority": info["priority"],
                "waited": round(now - info["enqueued_at"], 1), "since": self._when(info["enqueued_at"]),
                "skills": {skill: level for skill, level in plain.requirement}, "relax_step": plain.relax_step,
                "ani": live.ani if live is not None else info.get("caller"),
                "display_name": live.display_name if live is not None else None,
                "callback": info.get("callback_number"),
            })
        why = None
        if waiting:
            oldest = min(waiting, key=lambda cid: engine.call_info(cid)["enqueued_at"])
            ex = engine.explain(oldest, now)
            by = ex.by_verdict()
            why = {
                "call_id": oldest, "strategy": ex.strategy, "relax_step": ex.relax_step,
                "requirement": {skill: level for skill, level in ex.requirement},
                "summary": {verdict: len(ids) for verdict, ids in by.items()},
                "verdicts": [{"agent_id": v.agent_id, "verdict": v.verdict, "detail": v.detail, "rank": v.rank}
                             for v in ex.verdicts],
                "lines": ex.lines(),
            }
        stats = engine.queue_stats(queue, now)
        return {"queue": queue, "name": self.settings.queues[queue].name or queue, "server_time": self._when(now),
                "waiting": len(waiting), "ringing": stats.ringing, "callers": callers, "why": why}

    def trends(self, queue: str | None = None) -> dict[str, Any]:
        """Per-minute waiting (peak), arrivals and service level over the last hour; all queues when None."""
        now = self._now()
        chosen = [queue] if queue else list(self.history)
        merged: dict[float, list[int]] = {}
        for qid in chosen:
            for p in self.history[qid].trend(now, TREND_SECONDS, TREND_BUCKET):
                row = merged.setdefault(p.start, [0, 0, 0, 0])
                row[0] += p.waiting
                row[1] += p.arrivals
                row[2] += p.answered_in_sl
                row[3] += p.handled
        points = [{"at": self._when(start), "offset": round(start - now), "waiting": w, "arrivals": a,
                   "sl": _round(i / h) if h else None}
                  for start, (w, a, i, h) in sorted(merged.items())]
        return {"queue": queue, "server_time": self._when(now), "bucket": TREND_BUCKET, "points": points}
