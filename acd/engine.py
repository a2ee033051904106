"""The ACD engine: events and the current time in, actions out.

Pure and deterministic: no clock, no I/O, no randomness. Feeding the same ``(now, event)``
stream to two engines gives the same actions and the same :meth:`AcdEngine.snapshot`.

Indexes (why a decision costs O(log n) instead of a scan over the queue's members):

* per queue and per *requirement class* (the call's required skills after relaxation, as a
  sorted tuple of ``(skill, level)``): a heap of waiting calls keyed ``(-priority, seq)``
  and a heap of free eligible member agents keyed by the queue's strategy. Classes are few
  (one per distinct skill requirement and relaxation step); the common "no skills" class
  holds every member.
* heaps use lazy deletion: an entry carries a version (calls) or token (agents) and is
  dropped when it reaches the top stale; heaps are compacted when stale entries pile up.
* one timer heap for ring timeouts, wrap-up ends, max-wait overflows, skill relaxation and
  position announcements; entries name the call admission (``seq``) or agent state
  (``state_seq``) they belong to, so stale ones are skipped.

Invariant after every ``handle``/``tick``: no waiting call has a free agent that is a logged-in
member of its queue and meets its (current) skill requirement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from heapq import heapify, heappop, heappush
from typing import Any

from acd.actions import (
    Action,
    AgentStateChanged,
    AgentVerdict,
    AnnouncePosition,
    CancelOffer,
    DialCustomer,
    EventRejected,
    Explanation,
    OfferCall,
    OfferCallback,
    OfferReason,
    OverflowCall,
    RefuseCall,
)
from acd.errors import (
    AcdError,
    InvalidEvent,
    SettingsError,
    SnapshotError,
    TimeWentBackwards,
    UnknownAgent,
    UnknownCall,
    UnknownQueue,
    UnknownReason,
)
from acd.events import (
    OfferFailed,
    CallDisposed,
    WrapUpExtended,
    AgentBecameAvailable,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentWentNotReady,
    CallAbandoned,
    CallbackRequested,
    CallEnded,
    CallQueued,
    DirectCallRequested,
    Event,
    OfferAccepted,
    OfferRejected,
    SkillsChanged,
    StatisticsReset,
    Tick,
    WrapUpEnded,
)
from acd.settings import AcdSettings, QueueSettings, normalize_skills
from acd.stats import AgentStats, QueueCounters, QueueStats

__all__ = [
    "AcdEngine",
    "AGENT_STATES",
    "CALL_STATES",
    "LOGGED_OUT",
    "AVAILABLE",
    "RESERVED",
    "ON_CALL",
    "WRAP_UP",
    "NOT_READY",
    "WAITING",
    "OFFERED",
    "CONNECTED",
]

LOGGED_OUT = "logged_out"
AVAILABLE = "available"
RESERVED = "reserved"
ON_CALL = "on_call"
WRAP_UP = "wrap_up"
NOT_READY = "not_ready"
AGENT_STATES = (LOGGED_OUT, AVAILABLE, RESERVED, ON_CALL, WRAP_UP, NOT_READY)

WAITING = "waiting"
OFFERED = "offered"
CONNECTED = "connected"
_GONE = "gone"
CALL_STATES = (WAITING, OFFERED, CONNECTED)

_CANON = {s: s for s in AGENT_STATES + CALL_STATES}

# timer kinds
_RING, _WRAP, _MAXWAIT, _RELAX, _ANNOUNCE = range(5)

SNAPSHOT_FORMAT = "acd-engine/1"


class _Agent:
    __slots__ = (
        "id",
        "ordinal",
        "skills",
        "home_queues",
        "queues",
        "state",
        "reason",
        "since",
        "acc_since",
        "idle_since",
        "token",
        "misses",
        "call",
        "pending",
        "calls",
        "missed",
        "time_in",
        "nr_by_reason",
        "route_calls",
        "route_talk",
        "rr",
        "elig",
        "wrap_queue",
        "owed_call",
        "wrap_until",
        "extensions",
        "seq",
    )

    def __init__(self, aid: str, ordinal: int, skills: Mapping[str, int], home_queues: tuple[str, ...], now: float):
        self.id = aid
        self.ordinal = ordinal
        self.skills = dict(skills)
        self.home_queues = home_queues
        self.queues: list[_Queue] = []
        self.state = LOGGED_OUT
        self.reason: str | None = None
        self.since = now
        self.acc_since = now
        self.idle_since = now
        self.token = 0
        self.misses = 0
        self.call: _Call | None = None
        self.pending: str | None = None
        self.calls = 0
        self.missed = 0
        self.time_in = dict.fromkeys(AGENT_STATES, 0.0)
        self.nr_by_reason: dict[str, float] = {}
        self.route_calls = 0
        self.route_talk = 0.0
        self.rr: dict[str, int] = {}
        self.elig: dict[tuple, bool] = {}
        self.wrap_queue: str | None = None
        self.owed_call: str | None = None  # the call whose disposition ends this wrap-up (until_disposed)
        self.wrap_until: float | None = None  # when a timed wrap-up ends
        self.extensions = 0  # extensions asked for in this wrap-up
        self.seq = 0


class _Call:
    __slots__ = (
        "id",
        "priority",
        "extra",
        "caller",
        "q",
        "seq",
        "enqueued_at",
        "state",
        "agent",
        "offer_no",
        "answered_at",
        "step",
        "base",
        "req",
        "version",
        "missed_by",
        "callback_number",
        "overflow_due",
        "callback_offered",
        "directed",
    )

    def __init__(self, cid: str, priority: int, extra: tuple, caller: str | None, callback_number: str | None):
        self.id = cid
        self.priority = priority
        self.extra = extra
        self.caller = caller
        self.q: _Queue = None  # type: ignore[assignment]
        self.seq = 0
        self.enqueued_at = 0.0
        self.state = WAITING
        self.agent: _Agent | None = None
        self.offer_no = 0
        self.answered_at = 0.0
        self.step = 0
        self.base: tuple = ()
        self.req: tuple = ()
        self.version = 0
        self.missed_by: set[str] | None = None
        self.callback_number = callback_number
        self.overflow_due = False
        self.callback_offered = False
        self.directed = False  # offered to one named agent (DirectCallRequested), not routed


class _Class:
    """Waiting calls and free eligible agents of one requirement within one queue."""

    __slots__ = ("req", "calls", "agents", "n")

    def __init__(self, req: tuple):
        self.req = req
        self.calls: list[tuple] = []
        self.agents: list[tuple] = []
        self.n = 0


class _Queue:
    __slots__ = ("id", "s", "members", "present", "classes", "active", "rr", "st", "n_live", "n_cb", "base", "strategy")

    def __init__(self, qid: str, s: QueueSettings):
        self.id = qid
        self.s = s
        self.strategy = s.strategy
        self.members: dict[str, _Agent] = {}
        self.present: dict[str, _Call] = {}
        self.classes: dict[tuple, _Class] = {}
        self.active: dict[tuple, _Class] = {}
        self.rr = 0
        self.st = QueueCounters()
        self.n_live = 0
        self.n_cb = 0
        self.base = tuple(s.required_skills.items())


def _merge_skills(base: tuple, extra: tuple) -> tuple:
    if not extra:
        return base
    merged = dict(base)
    for skill, level in extra:
        if level > merged.get(skill, 0):
            merged[skill] = level
    return tuple(sorted(merged.items()))


class AcdEngine:
    """Queues, agents, routing, timers and statistics for one contact center.

    >>> from acd import AcdEngine, AcdSettings, QueueSettings, AgentSettings, CallQueued, AgentLoggedIn
    >>> eng = AcdEngine(AcdSettings(queues={"q": QueueSettings()}, agents={"a": AgentSettings(queues=("q",))}))
    >>> _ = eng.handle(AgentLoggedIn("a"), now=0.0)
    >>> [type(x).__name__ for x in eng.handle(CallQueued("c1", "q"), now=1.0)]
    ['AgentStateChanged', 'OfferCall']
    """

    def __init__(self, settings: AcdSettings, now: float = 0.0):
        if not isinstance(settings, AcdSettings):
            raise SettingsError(f"expected AcdSettings, got {type(settings).__name__}")
        self.settings = settings
        self._now = float(now)
        self._reset_at = float(now)
        self._seq = 0
        self._tseq = 0
        self._vseq = 0  # versions of call heap entries, unique across calls (ids may be reused)
        self._timers: list[tuple] = []
        self._queues: dict[str, _Queue] = {qid: _Queue(qid, qs) for qid, qs in settings.queues.items()}
        self._agents: dict[str, _Agent] = {
            aid: _Agent(aid, i, ag.skills, ag.queues, self._now) for i, (aid, ag) in enumerate(settings.agents.items())
        }
        self._calls: dict[str, _Call] = {}
        self._reasons = frozenset(settings.not_ready_reasons)
        self._max_missed = settings.max_missed_offers
        self._req_cache: dict[tuple, tuple] = {}
        self._out: list[Action] = []
        self._handlers: dict[type, tuple[Any, Any]] = {
            CallQueued: (self._v_call, self._on_call_queued),
            CallAbandoned: (self._v_call_id, self._on_call_gone),
            CallbackRequested: (self._v_call, self._on_callback_requested),
            DirectCallRequested: (self._v_direct, self._on_direct_call),
            OfferAccepted: (self._v_offer, self._on_offer_accepted),
            OfferRejected: (self._v_offer, self._on_offer_rejected),
            OfferFailed: (self._v_offer, self._on_offer_failed),
            CallEnded: (self._v_call_id, self._on_call_gone),
            AgentLoggedIn: (self._v_login, self._on_logged_in),
            AgentLoggedOut: (self._v_agent, self._on_logged_out),
            AgentWentNotReady: (self._v_not_ready, self._on_not_ready),
            AgentBecameAvailable: (self._v_agent, self._on_available),
            WrapUpEnded: (self._v_agent, self._on_wrapup_ended),
            WrapUpExtended: (self._v_agent, self._on_wrapup_extended),
            CallDisposed: (self._v_agent, self._on_call_disposed),
            SkillsChanged: (self._v_skills, self._on_skills_changed),
            StatisticsReset: (None, self._on_stats_reset),
            Tick: (None, self._on_tick),
        }

    # ------------------------------------------------------------------ public API

    @property
    def now(self) -> float:
        """The latest time the engine has seen."""
        return self._now

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply ``event`` that happened at ``now``; timers due by ``now`` run first.

        Raises :class:`AcdError` (and changes nothing) for an unknown queue/agent/reason, a
        malformed event or time going backwards. Events that do not fit the current state
        (a stale call id, an offer already cancelled) return ``[EventRejected(...)]``.
        """
        entry = self._handlers.get(type(event))
        if entry is None:
            raise InvalidEvent(f"not an ACD event: {event!r}")
        validate, handler = entry
        if validate is not None:
            validate(event)
        if now.__class__ is not float or now - now != 0.0:  # not a finite float
            now = self._coerce_time(now)
        if now < self._now:
            raise TimeWentBackwards(f"time went backwards: now={now!r} but the engine is already at {self._now!r}")
        out: list[Action] = []
        self._out = out
        timers = self._timers
        if timers and timers[0][0] <= now:
            self._advance(now)
        else:
            self._now = now
        handler(event)
        return out

    def tick(self, now: float) -> list[Action]:
        """Run every timer due by ``now`` (ring timeouts, wrap-up ends, overflows, relaxation)."""
        out: list[Action] = []
        self._out = out
        self._advance(self._check_time(now))
        return out

    def next_deadline(self) -> float | None:
        """When the next timer falls due (call :meth:`tick` then), or ``None``."""
        timers = self._timers
        while timers:
            if self._timer_valid(timers[0]):
                return timers[0][0]
            heappop(timers)
        return None

    # ------------------------------------------------------------------ validation

    def _coerce_time(self, now: Any) -> float:
        if isinstance(now, bool) or not isinstance(now, (int, float)):
            raise InvalidEvent(f"now must be a number of seconds, got {now!r}")
        now = float(now)
        if now != now or now in (float("inf"), float("-inf")):
            raise InvalidEvent(f"now must be finite, got {now!r}")
        return now

    def _check_time(self, now: Any) -> float:
        if now.__class__ is not float or now - now != 0.0:
            now = self._coerce_time(now)
        if now < self._now:
            raise TimeWentBackwards(f"time went backwards: now={now!r} but the engine is already at {self._now!r}")
        return now

    def _queue(self, qid: Any) -> _Queue:
        q = self._queues.get(qid) if isinstance(qid, str) else None
        if q is None:
            known = ", ".join(sorted(self._queues))
            raise UnknownQueue(f"unknown queue {qid!r} (known: {known})")
        return q

    def _agent(self, aid: Any) -> _Agent:
        a = self._agents.get(aid) if isinstance(aid, str) else None
        if a is None:
            raise UnknownAgent(f"unknown agent {aid!r} (not in the configured agents)")
        return a

    def _v_call(self, ev: CallQueued | CallbackRequested) -> None:
        kind = type(ev).__name__
        if not isinstance(ev.call_id, str) or not ev.call_id:
            raise InvalidEvent(f"{kind}: call_id must be a non-empty string, got {ev.call_id!r}")
        if ev.queue is not None or kind == "CallQueued":
            if ev.queue not in self._queues:
                self._queue(ev.queue)
        if ev.priority.__class__ is not int:
            raise InvalidEvent(f"{kind}: priority must be an integer, got {ev.priority!r}")
        if ev.skills:
            try:
                normalize_skills(ev.skills, f"{kind}.skills")
            except SettingsError as exc:
                raise InvalidEvent(str(exc)) from None
        if kind == "CallbackRequested" and (not isinstance(ev.number, str) or not ev.number):
            raise InvalidEvent(f"CallbackRequested: number must be a non-empty string, got {ev.number!r}")

    def _v_direct(self, ev: DirectCallRequested) -> None:
        if not isinstance(ev.call_id, str) or not ev.call_id:
            raise InvalidEvent(f"DirectCallRequested: call_id must be a non-empty string, got {ev.call_id!r}")
        self._agent(ev.agent_id)
        self._queue(ev.queue)
        if ev.priority.__class__ is not int:
            raise InvalidEvent(f"DirectCallRequested: priority must be an integer, got {ev.priority!r}")
        if ev.number is not None and (not isinstance(ev.number, str) or not ev.number):
            raise InvalidEvent(f"DirectCallRequested: number must be a non-empty string or None, got {ev.number!r}")

    def _v_call_id(self, ev: CallAbandoned | CallEnded) -> None:
        if ev.call_id.__class__ is not str:
            raise InvalidEvent(f"{type(ev).__name__}: call_id must be a string, got {ev.call_id!r}")

    def _v_agent(self, ev: Any) -> None:
        if ev.agent_id not in self._agents:
            self._agent(ev.agent_id)

    def _v_offer(self, ev: OfferAccepted | OfferRejected) -> None:
        if ev.agent_id not in self._agents:
            self._agent(ev.agent_id)
        self._v_call_id(ev)

    def _v_login(self, ev: AgentLoggedIn) -> None:
        self._agent(ev.agent_id)
        if ev.queues is not None:
            if isinstance(ev.queues, str):
                raise InvalidEvent("AgentLoggedIn.queues: expected a list of queue ids, not a string")
            for qid in ev.queues:
                self._queue(qid)
        if ev.not_ready_reason is not None and ev.not_ready_reason not in self._reasons:
            raise UnknownReason(self._reason_message(ev.not_ready_reason))

    def _v_not_ready(self, ev: AgentWentNotReady) -> None:
        self._agent(ev.agent_id)
        if ev.reason not in self._reasons:
            raise UnknownReason(self._reason_message(ev.reason))

    def _v_skills(self, ev: SkillsChanged) -> None:
        self._agent(ev.agent_id)
        try:
            normalize_skills(ev.skills, "SkillsChanged.skills")
        except SettingsError as exc:
            raise InvalidEvent(str(exc)) from None

    def _reason_message(self, reason: Any) -> str:
        return f"unknown not-ready reason {reason!r} (configured: {', '.join(self.settings.not_ready_reasons)})"

    def _reject(self, event: Event, reason: str) -> None:
        self._out.append(EventRejected(event, reason))

    # ------------------------------------------------------------------ timers

    def _timer(self, at: float, kind: int, ref: str, n: int, m: int = 0) -> None:
        self._tseq += 1
        heappush(self._timers, (at, self._tseq, kind, ref, n, m))

    def _timer_valid(self, e: tuple) -> bool:
        kind = e[2]
        if kind == _WRAP:
            a = self._agents.get(e[3])
            return a is not None and a.seq == e[4] and a.state == WRAP_UP and a.extensions == e[5]
        c = self._calls.get(e[3])
        if c is None or c.seq != e[4]:
            return False
        if kind == _RING:
            return c.state == OFFERED and c.offer_no == e[5]
        if kind == _MAXWAIT:
            return c.state != CONNECTED and c.callback_number is None
        if kind == _RELAX:
            return c.state != CONNECTED and c.step == e[5] - 1
        return c.state != CONNECTED and c.callback_number is None  # announce (skipped while ringing)

    def _advance(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            e = heappop(timers)
            if not self._timer_valid(e):
                continue
            if e[0] > self._now:
                self._now = e[0]
            kind = e[2]
            if kind == _RING:
                c = self._calls[e[3]]
                a = c.agent
                self._out.append(CancelOffer(c.id, a.id, "ring_timeout"))
                self._missed_offer(c, a)
            elif kind == _WRAP:
                self._end_wrap(self._agents[e[3]])
            elif kind == _MAXWAIT:
                c = self._calls[e[3]]
                if c.state == OFFERED:
                    c.overflow_due = True
                else:
                    self._overflow_waiting(c, "max_wait")
            elif kind == _RELAX:
                self._relax(self._calls[e[3]], e[5])
            else:
                c = self._calls[e[3]]
                q = c.q
                if c.state == WAITING:
                    pos = self._position(c)
                    self._out.append(AnnouncePosition(c.id, q.id, pos, self._ewt(q, pos)))
                self._timer(self._now + q.s.announce_every_seconds, _ANNOUNCE, c.id, c.seq)
        self._now = now

    # ------------------------------------------------------------------ agent state bookkeeping

    def _set_state(self, a: _Agent, state: str, reason: str | None = None) -> None:
        now = self._now
        dt = now - a.acc_since
        old = a.state
        a.time_in[old] += dt
        if old == NOT_READY:
            a.nr_by_reason[a.reason] = a.nr_by_reason.get(a.reason, 0.0) + dt  # type: ignore[index]
        a.state = state
        a.reason = reason
        a.since = now
        a.acc_since = now
        a.seq += 1
        if old == WRAP_UP:
            a.owed_call = a.wrap_until = None
            a.extensions = 0
        self._out.append(AgentStateChanged(a.id, state, reason, old))

    def _key(self, q: _Queue, a: _Agent) -> tuple:
        strategy = q.strategy
        if strategy == "longest_idle":
            return (a.idle_since, 0.0, a.ordinal)
        if strategy == "round_robin":
            return (float(a.rr.get(q.id, 0)), 0.0, a.ordinal)
        if strategy == "fewest_calls":
            return (float(a.route_calls), a.idle_since, a.ordinal)
        return (a.route_talk, a.idle_since, a.ordinal)

    def _eligible(self, a: _Agent, req: tuple) -> bool:
        if not req:
            return True
        ok = a.elig.get(req)
        if ok is None:
            skills = a.skills
            ok = True
            for skill, level in req:
                if skills.get(skill, 0) < level:
                    ok = False
                    break
            a.elig[req] = ok
        return ok

    def _make_available(self, a: _Agent) -> None:
        self._set_state(a, AVAILABLE)
        self._index_agent(a)

    # ------------------------------------------------------------------ indexes (overridden by the naive reference)

    def _index_agent(self, a: _Agent) -> None:
        """``a`` is free (again, or with new skills): add it to its queues' class heaps."""
        a.token += 1
        tok = a.token
        for q in a.queues:
            classes = q.classes
            if not classes:
                continue
            entry = (*self._key(q, a), tok, a.id)
            limit = 2 * len(q.members) + 64
            for req, k in classes.items():
                if req and not self._eligible(a, req):
                    continue
                h = k.agents
                heappush(h, entry)
                if len(h) > limit:
                    self._compact_agents(k)

    def _compact_agents(self, k: _Class) -> None:
        agents = self._agents
        k.agents = [e for e in k.agents if agents[e[4]].token == e[3] and agents[e[4]].state == AVAILABLE]
        heapify(k.agents)

    def _class(self, q: _Queue, req: tuple) -> _Class:
        k = q.classes.get(req)
        if k is None:
            k = _Class(req)
            q.classes[req] = k
            h = k.agents
            for a in q.members.values():
                if a.state == AVAILABLE and self._eligible(a, req):
                    h.append((*self._key(q, a), a.token, a.id))
            heapify(h)
        return k

    def _index_call(self, c: _Call) -> None:
        q = c.q
        k = q.classes.get(c.req) or self._class(q, c.req)
        self._vseq += 1
        c.version = self._vseq
        h = k.calls
        heappush(h, (-c.priority, c.seq, c.version, c.id))
        if k.n == 0:
            q.active[c.req] = k
        k.n += 1
        if len(h) > 2 * k.n + 64:
            calls = self._calls
            k.calls = [e for e in h if (x := calls.get(e[3])) is not None and x.version == e[2] and x.state == WAITING]
            heapify(k.calls)

    def _unindex_call(self, c: _Call) -> None:
        q = c.q
        k = q.classes[c.req]
        c.version = 0
        k.n -= 1
        if k.n == 0:
            del q.active[c.req]
            k.calls.clear()

    def _head_call(self, k: _Class) -> _Call | None:
        h = k.calls
        calls = self._calls
        while h:
            e = h[0]
            c = calls.get(e[3])
            if c is not None and c.version == e[2] and c.state == WAITING:
                return c
            heappop(h)
        return None

    def _match_call(self, c: _Call) -> None:
        """A call became ready: offer it to the best free eligible agent of its queue."""
        q = c.q
        k = q.classes[c.req]
        h = k.agents
        agents = self._agents
        missed = c.missed_by
        held: list[tuple] = []
        chosen = None
        while h:
            e = h[0]
            a = agents[e[4]]
            if a.token != e[3] or a.state != AVAILABLE:
                heappop(h)
                continue
            if missed and a.id in missed:
                held.append(heappop(h))
                continue
            chosen = a
            key = (e[0], e[1], e[2])
            break
        for x in held:
            heappush(h, x)
        if chosen is not None:
            self._offer(c, chosen, "call", tuple(x[4] for x in held), key)
        elif held:
            self._fallback(c, [agents[x[4]] for x in held])

    def _fallback(self, c: _Call, missed: list[_Agent]) -> None:
        """Only agents that let ``c`` ring out are free: rather than leave them idle, each (best
        first) takes its own best call, which may be ``c`` or an older/higher-priority one."""
        for a in missed:
            if c.state != WAITING:
                break
            if a.state == AVAILABLE:
                self._match_agent(a)

    def _match_agent(self, a: _Agent) -> None:
        """An agent became free: give it the highest-priority, oldest eligible call of its queues."""
        best = None
        best_p = 0
        best_s = 0
        for q in a.queues:
            if not q.active:
                continue
            for req, k in q.active.items():
                if req and not self._eligible(a, req):
                    continue
                c = self._head_call(k)
                if c is None:
                    continue
                p = -c.priority
                if best is None or p < best_p or (p == best_p and c.seq < best_s):
                    best, best_p, best_s = c, p, c.seq
        if best is not None:
            self._offer(best, a, "agent", (), self._key(best.q, a))

    # ------------------------------------------------------------------ calls

    def _req(self, base: tuple, step: int) -> tuple:
        if not step:
            return base
        key = (base, step)
        r = self._req_cache.get(key)
        if r is None:
            r = tuple((s, level - step) for s, level in base if level - step >= 1)
            self._req_cache[key] = r
        return r

    def _settle(self, c: _Call | None = None, a: _Agent | None = None) -> None:
        if c is not None and c.state == WAITING:
            self._match_call(c)
        if a is not None and a.state == AVAILABLE:
            self._match_agent(a)

    def _admit(self, c: _Call, q: _Queue, chain: tuple) -> None:
        """Put ``c`` in ``q`` (or refuse / divert it), then try to route it."""
        s = q.s
        live = c.callback_number is None
        if live:
            if not q.members and s.when_no_agents != "join":
                if s.when_no_agents == "refuse":
                    self._refuse(c, q, "no_agents")
                else:
                    self._divert(c, q, chain, "no_agents")
                return
            if s.max_length and q.n_live >= s.max_length:
                if s.overflow is not None:
                    self._divert(c, q, chain, "full")
                else:
                    self._refuse(c, q, "full")
                return
        now = self._now
        self._seq += 1
        c.seq = self._seq
        c.q = q
        c.enqueued_at = now
        c.step = 0
        c.base = _merge_skills(q.base, c.extra)
        c.req = c.base
        c.missed_by = None
        c.overflow_due = False
        c.callback_offered = False
        c.agent = None
        c.state = WAITING
        self._calls[c.id] = c
        q.present[c.id] = c
        if live:
            q.n_live += 1
            q.st.entered += 1
            if chain:
                q.st.overflowed_in += 1
            if s.overflow is not None:
                self._timer(now + s.overflow.after_seconds, _MAXWAIT, c.id, c.seq)
            if s.announce_every_seconds > 0:
                self._timer(now + s.announce_every_seconds, _ANNOUNCE, c.id, c.seq)
        else:
            q.n_cb += 1
            q.st.callbacks_requested += 1
        if c.base and s.relax_after_seconds:
            self._timer(now + s.relax_after_seconds[0], _RELAX, c.id, c.seq, 1)
        self._index_call(c)
        self._match_call(c)

    def _divert(self, c: _Call, q: _Queue, chain: tuple, reason: str) -> None:
        """``c`` could not join ``q``: send it to the overflow target at once."""
        overflow = q.s.overflow
        target_q = overflow.target_queue  # type: ignore[union-attr]
        if target_q is not None and (target_q in chain or target_q == q.id):
            self._refuse(c, q, "overflow_loop")
            return
        q.st.diverted += 1
        self._out.append(OverflowCall(c.id, q.id, overflow.target, reason))  # type: ignore[union-attr]
        if target_q is not None:
            self._admit(c, self._queues[target_q], chain + (q.id,))
        else:
            self._forget(c)

    def _refuse(self, c: _Call, q: _Queue, reason: str) -> None:
        q.st.refused += 1
        self._forget(c)
        self._out.append(RefuseCall(c.id, q.id, reason))

    def _remove(self, c: _Call) -> None:
        """Take ``c`` out of its queue (it is no longer waiting or ringing)."""
        if c.state == WAITING:
            self._unindex_call(c)
        q = c.q
        del q.present[c.id]
        if c.callback_number is None:
            q.n_live -= 1
        else:
            q.n_cb -= 1

    def _forget(self, c: _Call) -> None:
        """The call leaves the engine (a call refused at the door may never have been stored)."""
        if self._calls.get(c.id) is c:
            del self._calls[c.id]
        c.state = _GONE

    def _overflow_waiting(self, c: _Call, reason: str) -> None:
        q = c.q
        overflow = q.s.overflow
        if overflow is None:  # settings changed under a restored snapshot
            return
        if overflow.target == "callback":
            if not c.callback_offered:
                c.callback_offered = True
                q.st.callback_offers += 1
                self._out.append(OfferCallback(c.id, q.id))
            return
        self._remove(c)
        q.st.overflowed += 1
        self._out.append(OverflowCall(c.id, q.id, overflow.target, reason))
        target_q = overflow.target_queue
        if target_q is not None:
            self._admit(c, self._queues[target_q], (q.id,))
        else:
            self._forget(c)

    def _relax(self, c: _Call, step: int) -> None:
        q = c.q
        waiting = c.state == WAITING
        if waiting:
            self._unindex_call(c)
        c.step = step
        c.req = self._req(c.base, step)
        relax = q.s.relax_after_seconds
        if c.req and step < len(relax):
            self._timer(c.enqueued_at + relax[step], _RELAX, c.id, c.seq, step + 1)
        if waiting:
            self._index_call(c)
            self._match_call(c)

    def _return_call(self, c: _Call) -> None:
        """An offer ended without an answer: the call waits again in its old place.

        A directed call has no place: a transferred caller now waits like any caller in its
        queue, and an agent's own dial is dropped (nobody else should ring that customer unasked).
        """
        if c.directed:
            c.directed = False
            if c.callback_number is not None:
                c.agent = None
                self._remove(c)
                self._forget(c)
                c.q.st.callbacks_cancelled += 1
                return
            self._start_queue_timers(c)
        c.agent = None
        c.state = WAITING
        self._index_call(c)
        if c.overflow_due:
            c.overflow_due = False
            self._overflow_waiting(c, "max_wait")

    def _start_queue_timers(self, c: _Call) -> None:
        """A transferred caller joins its queue for real: the queue's skills, overflow, announcements."""
        q, s, now = c.q, c.q.s, self._now
        c.base = _merge_skills(q.base, c.extra)
        c.req, c.step = c.base, 0
        if s.overflow is not None:
            self._timer(now + s.overflow.after_seconds, _MAXWAIT, c.id, c.seq)
        if s.announce_every_seconds > 0:
            self._timer(now + s.announce_every_seconds, _ANNOUNCE, c.id, c.seq)
        if c.base and s.relax_after_seconds:
            self._timer(now + s.relax_after_seconds[0], _RELAX, c.id, c.seq, 1)

    def _offer(self, c: _Call, a: _Agent, trigger: str, passed: tuple, key: tuple) -> None:
        q = c.q
        self._unindex_call(c)
        c.state = OFFERED
        c.agent = a
        c.offer_no += 1
        a.call = c
        q.rr += 1
        a.rr[q.id] = q.rr
        self._set_state(a, RESERVED)
        ring = q.s.ring_timeout_seconds
        now = self._now
        self._timer(now + ring, _RING, c.id, c.seq, c.offer_no)
        reason = OfferReason(trigger, q.strategy, c.req, c.step, now - c.enqueued_at, key, passed)
        self._out.append(OfferCall(c.id, a.id, q.id, reason, ring, c.callback_number))

    def _missed_offer(self, c: _Call, a: _Agent) -> None:
        """Ring-no-answer or rejection: the call goes back to its place, the agent may go not ready."""
        if c.directed and c.callback_number is not None:  # the agent's own dial: not a missed offer
            a.call = None
            self._return_call(c)
            self._after_work(a)  # a not-ready asked for before the dial still applies
            return
        c.q.st.ring_no_answer += 1
        a.missed += 1
        a.misses += 1
        a.call = None
        if c.missed_by is None:
            c.missed_by = {a.id}
        else:
            c.missed_by.add(a.id)
        if a.misses >= self._max_missed:
            a.misses = 0
            self._set_state(a, NOT_READY, "no_answer")
        else:
            self._make_available(a)
        self._return_call(c)
        self._settle(c, a)

    def _abandon(self, c: _Call) -> None:
        q = c.q
        a = None
        if c.state == OFFERED:
            a = c.agent
            self._out.append(CancelOffer(c.id, a.id, "caller_hung_up"))  # type: ignore[union-attr]
            a.call = None  # type: ignore[union-attr]
            c.agent = None
            self._make_available(a)  # type: ignore[arg-type]
        self._remove(c)
        self._forget(c)
        st = q.st
        if c.callback_number is not None:
            st.callbacks_cancelled += 1
        else:
            waited = self._now - c.enqueued_at
            st.abandoned += 1
            st.abandon_wait += waited
            if waited <= q.s.service_level_seconds:
                st.abandoned_in_sl += 1
            if waited <= q.s.short_abandon_threshold:
                st.abandoned_short += 1
        if a is not None:
            self._settle(None, a)

    def _end_call(self, c: _Call) -> None:
        a = c.agent
        q = c.q
        talk = self._now - max(c.answered_at, self._reset_at)
        a.route_talk += self._now - c.answered_at  # type: ignore[union-attr]
        q.st.talk += talk
        q.st.completed += 1
        self._forget(c)
        a.call = None  # type: ignore[union-attr]
        a.wrap_queue = q.id  # type: ignore[union-attr]
        mode = q.s.after_call_work
        wrap = q.s.wrapup_seconds
        if mode == "until_disposed":
            self._set_state(a, WRAP_UP)  # type: ignore[arg-type]
            a.owed_call = c.id  # type: ignore[union-attr]
        elif mode != "optional" and wrap > 0:
            self._set_state(a, WRAP_UP)  # type: ignore[arg-type]
            a.wrap_until = self._now + wrap  # type: ignore[union-attr]
            self._timer(self._now + wrap, _WRAP, a.id, a.seq)  # type: ignore[union-attr]
        else:
            self._after_work(a)  # type: ignore[arg-type]

    def _account_wrap(self, a: _Agent) -> None:
        q = self._queues.get(a.wrap_queue or "")
        if q is not None:
            q.st.wrap += self._now - a.acc_since
            q.st.wrapups += 1

    def _end_wrap(self, a: _Agent) -> None:
        self._account_wrap(a)
        self._after_work(a)

    def _after_work(self, a: _Agent) -> None:
        if a.pending is not None:
            reason, a.pending = a.pending, None
            self._set_state(a, NOT_READY, reason)
            return
        a.idle_since = self._now
        self._make_available(a)
        self._settle(None, a)

    # ------------------------------------------------------------------ event handlers

    def _on_call_queued(self, ev: CallQueued) -> None:
        if ev.call_id in self._calls:
            return self._reject(ev, f"call {ev.call_id!r} is already in the ACD")
        extra = tuple(normalize_skills(ev.skills).items()) if ev.skills else ()
        c = _Call(ev.call_id, ev.priority, extra, ev.caller, None)
        self._admit(c, self._queues[ev.queue], ())

    def _on_call_gone(self, ev: CallAbandoned | CallEnded) -> None:
        """Either event: a connected call ends (its agent wraps up), any other is abandoned.

        The engine's own state decides, not the event's name: a hang-up can race the answer,
        so either event may arrive for a call in either state.
        """
        c = self._calls.get(ev.call_id)
        if c is None:
            return self._reject(ev, f"unknown call {ev.call_id!r}")
        if c.state == CONNECTED:
            self._end_call(c)
        else:
            self._abandon(c)

    def _on_callback_requested(self, ev: CallbackRequested) -> None:
        c = self._calls.get(ev.call_id)
        if c is not None:
            if c.callback_number is not None:
                return self._reject(ev, f"call {ev.call_id!r} is already a callback request")
            if c.state != WAITING:
                return self._reject(ev, f"call {ev.call_id!r} is {c.state}; a callback can only replace a waiting call")
            q = c.q
            c.callback_number = ev.number
            q.n_live -= 1
            q.n_cb += 1
            q.st.converted_to_callback += 1
            q.st.callbacks_requested += 1
            return None
        if ev.queue is None:
            return self._reject(ev, f"unknown call {ev.call_id!r}; give a queue to file a new callback request")
        extra = tuple(normalize_skills(ev.skills).items()) if ev.skills else ()
        c = _Call(ev.call_id, ev.priority, extra, None, ev.number)
        self._admit(c, self._queues[ev.queue], ())
        return None

    def _on_direct_call(self, ev: DirectCallRequested) -> None:
        if ev.call_id in self._calls:
            return self._reject(ev, f"call {ev.call_id!r} is already in the ACD")
        a = self._agents[ev.agent_id]
        dialling = ev.number is not None
        if a.state == WRAP_UP and dialling:
            self._account_wrap(a)
        elif a.state != AVAILABLE:
            return self._reject(ev, f"agent {a.id!r} is {a.state.replace('_', ' ')}, not available")
        q = self._queues[ev.queue]
        c = _Call(ev.call_id, ev.priority, (), ev.caller, ev.number)
        c.directed = True
        self._seq += 1
        c.seq = self._seq
        c.q = q
        c.enqueued_at = self._now
        self._calls[c.id] = c
        q.present[c.id] = c
        if dialling:
            q.n_cb += 1
            q.st.callbacks_requested += 1
        else:
            q.n_live += 1
            q.st.entered += 1
        self._index_call(c)  # _offer takes it out of the index again
        self._offer(c, a, "directed", (), self._key(q, a))
        return None

    def _offer_of(self, ev: OfferAccepted | OfferRejected) -> tuple[_Call, _Agent] | None:
        c = self._calls.get(ev.call_id)
        a = self._agents[ev.agent_id]
        if c is None:
            self._reject(ev, f"unknown call {ev.call_id!r} (it may have been abandoned)")
            return None
        if c.state != OFFERED or c.agent is not a:
            self._reject(ev, f"call {ev.call_id!r} is not being offered to agent {ev.agent_id!r}")
            return None
        return c, a

    def _on_offer_accepted(self, ev: OfferAccepted) -> None:
        found = self._offer_of(ev)
        if found is None:
            return
        c, a = found
        q = c.q
        self._remove(c)
        now = self._now
        c.state = CONNECTED
        c.answered_at = now
        a.misses = 0
        a.calls += 1
        a.route_calls += 1
        self._set_state(a, ON_CALL)
        st = q.st
        if c.callback_number is not None:
            st.callbacks_answered += 1
            self._out.append(DialCustomer(c.id, a.id, c.callback_number))
        else:
            waited = now - c.enqueued_at
            st.answered += 1
            st.answer_wait += waited
            if waited > st.max_answer_wait:
                st.max_answer_wait = waited
            if waited <= q.s.service_level_seconds:
                st.answered_in_sl += 1

    def _on_offer_rejected(self, ev: OfferRejected) -> None:
        found = self._offer_of(ev)
        if found is not None:
            self._missed_offer(*found)

    def _on_offer_failed(self, ev: OfferFailed) -> None:
        found = self._offer_of(ev)
        if found is None:
            return
        c, a = found
        if c.directed and c.callback_number is not None:  # the agent's own dial is dropped, as on a miss
            self._missed_offer(c, a)
            return
        a.call = None
        if c.missed_by is None:
            c.missed_by = {a.id}
        else:
            c.missed_by.add(a.id)
        self._make_available(a)
        self._return_call(c)
        self._settle(c, a)

    def _on_logged_in(self, ev: AgentLoggedIn) -> None:
        a = self._agents[ev.agent_id]
        if a.state != LOGGED_OUT:
            return self._reject(ev, f"agent {a.id!r} is already logged in")
        qids = a.home_queues if ev.queues is None else tuple(dict.fromkeys(ev.queues))
        a.queues = [self._queues[qid] for qid in qids]
        for q in a.queues:
            q.members[a.id] = a
        a.misses = 0
        a.route_calls = 0
        a.route_talk = 0.0
        a.pending = None
        if ev.not_ready_reason is not None:
            self._set_state(a, NOT_READY, ev.not_ready_reason)
            return None
        a.idle_since = self._now
        self._make_available(a)
        self._settle(None, a)
        return None

    def _release_offer(self, a: _Agent, reason: str) -> _Call:
        c = a.call
        self._out.append(CancelOffer(c.id, a.id, reason))  # type: ignore[union-attr]
        a.call = None
        return c  # type: ignore[return-value]

    def _on_logged_out(self, ev: AgentLoggedOut) -> None:
        a = self._agents[ev.agent_id]
        if a.state == LOGGED_OUT:
            return self._reject(ev, f"agent {a.id!r} is not logged in")
        if a.state == ON_CALL:
            return self._reject(ev, f"agent {a.id!r} is on a call; log out after it ends")
        c = None
        if a.state == RESERVED:
            c = self._release_offer(a, "agent_logged_out")
        elif a.state == WRAP_UP:
            self._account_wrap(a)
        self._set_state(a, LOGGED_OUT)
        a.pending = None
        emptied = []
        for q in a.queues:
            del q.members[a.id]
            if not q.members and q.s.leave_when_empty:
                emptied.append(q)
        a.queues = []
        if c is not None:
            self._return_call(c)
        for q in emptied:
            self._empty_queue(q)
        if c is not None:
            self._settle(c, None)
        return None

    def _empty_queue(self, q: _Queue) -> None:
        """The last member left a ``leave_when_empty`` queue: live callers leave it."""
        for c in [x for x in q.present.values() if x.callback_number is None and x.state == WAITING]:
            if c.q is not q or c.state != WAITING:
                continue
            self._remove(c)
            q.st.left_empty += 1
            overflow = q.s.overflow
            if overflow is None:
                self._forget(c)
                self._out.append(RefuseCall(c.id, q.id, "empty"))
                continue
            self._out.append(OverflowCall(c.id, q.id, overflow.target, "empty"))
            target_q = overflow.target_queue
            if target_q is not None:
                self._admit(c, self._queues[target_q], (q.id,))
            else:
                self._forget(c)

    def _on_not_ready(self, ev: AgentWentNotReady) -> None:
        a = self._agents[ev.agent_id]
        state = a.state
        if state == LOGGED_OUT:
            return self._reject(ev, f"agent {a.id!r} is not logged in")
        if state == ON_CALL or (state == WRAP_UP and a.owed_call is not None):
            a.pending = ev.reason  # after the call and its required disposition
            return None
        if state == NOT_READY and a.reason == ev.reason:
            return None
        c = None
        if state == RESERVED:
            c = self._release_offer(a, "agent_not_ready")
        elif state == WRAP_UP:
            self._account_wrap(a)
        self._set_state(a, NOT_READY, ev.reason)
        if c is not None:
            self._return_call(c)
            self._settle(c, None)
        return None

    def _on_available(self, ev: AgentBecameAvailable) -> None:
        a = self._agents[ev.agent_id]
        state = a.state
        if state == AVAILABLE:
            return None
        if state == LOGGED_OUT:
            return self._reject(ev, f"agent {a.id!r} is not logged in")
        if state == RESERVED:
            return self._reject(ev, f"agent {a.id!r} has a call ringing; answer or reject it")
        if state == WRAP_UP and a.owed_call is not None:
            return self._reject(ev, f"agent {a.id!r} owes the disposition of call {a.owed_call!r}")
        a.pending = None
        if state == ON_CALL:
            return None
        if state == WRAP_UP:
            self._end_wrap(a)
            return None
        a.idle_since = self._now
        self._make_available(a)
        self._settle(None, a)
        return None

    def _on_wrapup_ended(self, ev: WrapUpEnded) -> None:
        a = self._agents[ev.agent_id]
        if a.state != WRAP_UP:
            return self._reject(ev, f"agent {a.id!r} is not in wrap-up (state {a.state})")
        if a.owed_call is not None and not ev.forced:
            return self._reject(ev, f"agent {a.id!r} owes the disposition of call {a.owed_call!r}")
        self._end_wrap(a)
        return None

    def _on_wrapup_extended(self, ev: WrapUpExtended) -> None:
        a = self._agents[ev.agent_id]
        q = self._queues.get(a.wrap_queue or "")
        if a.state != WRAP_UP or a.wrap_until is None or q is None:
            return self._reject(ev, f"agent {a.id!r} is not in a timed wrap-up (state {a.state})")
        if q.s.after_call_work != "timed_extendable":
            return self._reject(ev, f"queue {q.id!r} does not allow wrap-up extensions")
        if a.extensions >= q.s.wrapup_max_extensions:
            return self._reject(ev, f"agent {a.id!r} has used all {q.s.wrapup_max_extensions} extension(s)")
        a.extensions += 1
        a.wrap_until = max(a.wrap_until, self._now) + q.s.wrapup_extension_seconds
        self._timer(a.wrap_until, _WRAP, a.id, a.seq, a.extensions)
        return None

    def _on_call_disposed(self, ev: CallDisposed) -> None:
        """A disposition was saved: an until-disposed wrap-up may now end (the caller ends it)."""
        a = self._agents[ev.agent_id]
        if a.owed_call == ev.call_id:
            a.owed_call = None
        return None

    def _on_skills_changed(self, ev: SkillsChanged) -> None:
        a = self._agents[ev.agent_id]
        a.skills = normalize_skills(ev.skills)
        a.elig = {}
        if a.state == AVAILABLE:
            self._index_agent(a)
            self._settle(None, a)

    def _on_stats_reset(self, ev: StatisticsReset) -> None:
        now = self._now
        self._reset_at = now
        for q in self._queues.values():
            q.st.reset()
        for a in self._agents.values():
            a.calls = 0
            a.missed = 0
            a.time_in = dict.fromkeys(AGENT_STATES, 0.0)
            a.nr_by_reason = {}
            a.acc_since = now

    def _on_tick(self, ev: Tick) -> None:
        return None

    # ------------------------------------------------------------------ queries

    def _position(self, c: _Call) -> int:
        """1 + waiting entries of the same queue served before ``c`` (0 while it rings)."""
        if c.state != WAITING:
            return 0
        key = (-c.priority, c.seq)
        ahead = 0
        for x in c.q.present.values():
            if x.state == WAITING and (-x.priority, x.seq) < key:
                ahead += 1
        return ahead + 1

    def _ewt(self, q: _Queue, position: int) -> float | None:
        """Estimated wait: position x average handle time / agents staffed (None if unknown)."""
        st = q.st
        if position <= 0:
            return 0.0
        if not st.completed:
            return None
        staffed = sum(1 for a in q.members.values() if a.state != NOT_READY)
        if not staffed:
            return None
        return position * (st.talk + st.wrap) / st.completed / staffed

    def _call(self, call_id: str) -> _Call:
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(f"unknown call {call_id!r}")
        return c

    def position(self, call_id: str) -> tuple[int, float | None]:
        """``(position, estimated wait in seconds or None)`` of a queued call."""
        c = self._call(call_id)
        if c.state == CONNECTED:
            return (0, 0.0)
        pos = self._position(c)
        return (pos, self._ewt(c.q, pos))

    def call_info(self, call_id: str) -> dict[str, Any]:
        """The engine's view of one call (state, queue, agent, priority, wait...)."""
        return self._call_dict(self._call(call_id))

    def waiting_calls(self, queue: str) -> list[str]:
        """Ids of the calls waiting (not ringing) in ``queue``, in service order."""
        q = self._queue(queue)
        calls = [c for c in q.present.values() if c.state == WAITING]
        calls.sort(key=lambda c: (-c.priority, c.seq))
        return [c.id for c in calls]

    def agent_state(self, agent_id: str) -> tuple[str, str | None]:
        a = self._agent(agent_id)
        return (a.state, a.reason)

    def agent_call(self, agent_id: str) -> str | None:
        """The call the agent holds (ringing or connected), or None."""
        a = self._agent(agent_id)
        return a.call.id if a.call is not None else None

    def agent_wrap_up(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's wrap-up now (None when not in wrap-up): its mode, end, owed call and extensions left."""
        a = self._agent(agent_id)
        if a.state != WRAP_UP:
            return None
        q = self._queues.get(a.wrap_queue or "")
        mode = q.s.after_call_work if q is not None else "timed"
        left = max(0, q.s.wrapup_max_extensions - a.extensions) if q is not None and mode == "timed_extendable" else 0
        return {"mode": mode, "until": a.wrap_until, "owed_call": a.owed_call, "extensions_left": left}

    def agent_skills(self, agent_id: str) -> dict[str, int]:
        """The agent's current skills (``SkillsChanged`` replaces the configured ones)."""
        return dict(self._agent(agent_id).skills)

    def queue_ids(self) -> list[str]:
        return list(self._queues)

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def call_ids(self) -> list[str]:
        return list(self._calls)

    def has_call(self, call_id: str) -> bool:
        """Whether the engine still holds the call (waiting, ringing or connected)."""
        return call_id in self._calls

    def queue_stats(self, queue: str, now: float | None = None) -> QueueStats:
        """Running statistics of ``queue``; ``now`` (default: engine time) is used for waits so far."""
        q = self._queue(queue)
        at = self._now if now is None else max(float(now), self._now)
        ringing = 0
        oldest = None
        for c in q.present.values():
            if c.callback_number is None:
                if oldest is None:
                    oldest = c.enqueued_at
                if c.state == OFFERED:
                    ringing += 1
        available = sum(1 for a in q.members.values() if a.state == AVAILABLE)
        return QueueStats.build(
            q.id,
            at,
            q.st,
            waiting=q.n_live,
            ringing=ringing,
            callbacks_waiting=q.n_cb,
            longest_wait=0.0 if oldest is None else at - oldest,
            members_logged_in=len(q.members),
            agents_available=available,
            service_level_seconds=q.s.service_level_seconds,
            service_level_target=q.s.service_level_target,
        )

    def agent_stats(self, agent_id: str, now: float | None = None) -> AgentStats:
        a = self._agent(agent_id)
        at = self._now if now is None else max(float(now), self._now)
        t = dict(a.time_in)
        current = at - a.acc_since
        t[a.state] += current
        by_reason = dict(a.nr_by_reason)
        if a.state == NOT_READY:
            by_reason[a.reason] = by_reason.get(a.reason, 0.0) + current  # type: ignore[index]
        busy = t[ON_CALL] + t[WRAP_UP]
        ready = busy + t[AVAILABLE] + t[RESERVED]
        return AgentStats(
            agent_id=a.id,
            at=at,
            state=a.state,
            reason=a.reason,
            time_in_state=at - a.since,
            queues=tuple(q.id for q in a.queues),
            current_call=a.call.id if a.call is not None else None,
            calls=a.calls,
            missed_offers=a.missed,
            talk=t[ON_CALL],
            wrap=t[WRAP_UP],
            available=t[AVAILABLE],
            reserved=t[RESERVED],
            not_ready=t[NOT_READY],
            not_ready_by_reason=by_reason,
            logged_in=ready + t[NOT_READY],
            occupancy=busy / ready if ready > 0 else None,
        )

    # ------------------------------------------------------------------ explanation

    def explain(self, call_id: str, now: float | None = None, agents: Iterable[str] | None = None) -> Explanation:
        """Why the call is where it is: every member of its queue (or the given ``agents``)
        with a verdict. Computed on request from the current state; costs O(members).
        """
        c = self._call(call_id)
        q = c.q
        at = self._now if now is None else max(float(now), self._now)
        if agents is None:
            pool = list(q.members.values())
        else:
            pool = [self._agent(aid) for aid in dict.fromkeys(agents)]
        req = c.req
        missed = c.missed_by or ()
        verdicts: list[tuple[tuple, AgentVerdict]] = []
        candidates: list[tuple[tuple, _Agent]] = []
        for a in pool:
            if c.agent is a:
                what = "answered" if c.state == CONNECTED else "ringing"
                verdicts.append(((0, a.ordinal), AgentVerdict(a.id, "chosen", f"{what}; offered by {q.strategy}")))
                continue
            v = self._verdict(a, q, req, missed)
            if v is None:
                candidates.append((self._key(q, a), a))
                continue
            verdicts.append(((2, a.ordinal), v))
        candidates.sort(key=lambda x: x[0])
        for rank, (key, a) in enumerate(candidates, 1):
            detail = f"free and qualified; {q.strategy} key {key[0]:g}"
            verdicts.append(((1, rank), AgentVerdict(a.id, "candidate", detail, rank)))
        verdicts.sort(key=lambda x: x[0])
        return Explanation(
            call_id=c.id,
            queue=q.id,
            state=c.state,
            priority=c.priority,
            waited=at - c.enqueued_at if c.state != CONNECTED else c.answered_at - c.enqueued_at,
            strategy=q.strategy,
            requirement=req,
            relax_step=c.step,
            agent_id=c.agent.id if c.agent is not None else None,
            verdicts=tuple(v for _, v in verdicts),
        )

    def _verdict(self, a: _Agent, q: _Queue, req: tuple, missed: Any) -> AgentVerdict | None:
        if a.state == LOGGED_OUT:
            if q.id in a.home_queues:
                return AgentVerdict(a.id, "logged_out", "member of the queue but logged out")
            return AgentVerdict(a.id, "not_member", f"not a member of {q.id}")
        if a.id not in q.members:
            return AgentVerdict(a.id, "not_member", f"logged in to {', '.join(x.id for x in a.queues) or 'no queue'}, not {q.id}")
        for skill, level in req:
            have = a.skills.get(skill, 0)
            if have == 0:
                return AgentVerdict(a.id, "missing_skill", f"lacks skill {skill} (needs {level})")
            if have < level:
                return AgentVerdict(a.id, "level_too_low", f"{skill} level {have} < {level}")
        state = a.state
        if state == NOT_READY:
            return AgentVerdict(a.id, "not_ready", f"not ready ({a.reason})")
        if state == WRAP_UP:
            return AgentVerdict(a.id, "wrap_up", "in wrap-up")
        if state in (ON_CALL, RESERVED):
            other = a.call
            if other is not None and other.q is not q:
                return AgentVerdict(a.id, "busy_in_other_queue", f"{state} with {other.id} from {other.q.id}")
            return AgentVerdict(a.id, "on_call" if state == ON_CALL else "reserved", f"{state} with {other.id if other else '?'}")
        if a.id in missed:
            return AgentVerdict(a.id, "missed_this_call", "let this call ring out; others are tried first")
        return None

    # ------------------------------------------------------------------ snapshot / restore

    def _call_dict(self, c: _Call) -> dict[str, Any]:
        return {
            "id": c.id,
            "queue": c.q.id,
            "priority": c.priority,
            "extra": [list(p) for p in c.extra],
            "caller": c.caller,
            "seq": c.seq,
            "enqueued_at": c.enqueued_at,
            "state": c.state,
            "agent": c.agent.id if c.agent is not None else None,
            "offer_no": c.offer_no,
            "answered_at": c.answered_at,
            "step": c.step,
            "missed_by": sorted(c.missed_by) if c.missed_by else [],
            "callback_number": c.callback_number,
            "overflow_due": c.overflow_due,
            "callback_offered": c.callback_offered,
            "directed": c.directed,
        }

    def snapshot(self) -> dict[str, Any]:
        """The whole logical state as a plain JSON-able dict (see :meth:`restore`)."""
        agents = {}
        for a in self._agents.values():
            agents[a.id] = {
                "skills": dict(a.skills),
                "queues": [q.id for q in a.queues],
                "state": a.state,
                "reason": a.reason,
                "since": a.since,
                "acc_since": a.acc_since,
                "idle_since": a.idle_since,
                "misses": a.misses,
                "call": a.call.id if a.call is not None else None,
                "pending": a.pending,
                "calls": a.calls,
                "missed": a.missed,
                "time_in": dict(a.time_in),
                "nr_by_reason": dict(a.nr_by_reason),
                "route_calls": a.route_calls,
                "route_talk": a.route_talk,
                "rr": dict(a.rr),
                "wrap_queue": a.wrap_queue,
                "owed_call": a.owed_call,
                "wrap_until": a.wrap_until,
                "extensions": a.extensions,
                "seq": a.seq,
            }
        calls = sorted(self._calls.values(), key=lambda c: c.seq)
        timers = sorted(e for e in self._timers if self._timer_valid(e))
        return {
            "format": SNAPSHOT_FORMAT,
            "now": self._now,
            "reset_at": self._reset_at,
            "seq": self._seq,
            "timer_seq": self._tseq,
            "settings": self.settings.to_dict(),
            "queues": {q.id: {"rr": q.rr, "stats": q.st.to_dict()} for q in self._queues.values()},
            "agents": agents,
            "calls": [self._call_dict(c) for c in calls],
            "timers": [list(e) for e in timers],
        }

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any], settings: AcdSettings | None = None) -> AcdEngine:
        """Rebuild an engine from :meth:`snapshot` output (settings default to the stored ones)."""
        if not isinstance(snapshot, Mapping) or snapshot.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"not an ACD engine snapshot (format {SNAPSHOT_FORMAT!r} expected)")
        try:
            if settings is None:
                settings = AcdSettings.from_dict(snapshot["settings"])
            eng = cls(settings, now=snapshot["now"])
            eng._load(snapshot)
        except AcdError as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"snapshot does not fit the settings: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"malformed snapshot: {exc!r}") from None
        return eng

    def _load(self, snap: Mapping[str, Any]) -> None:
        self._reset_at = float(snap["reset_at"])
        self._seq = int(snap["seq"])
        self._tseq = int(snap["timer_seq"])
        for qid, data in snap["queues"].items():
            q = self._queue(qid)
            q.rr = int(data["rr"])
            q.st.load(data["stats"])
        for aid, d in snap["agents"].items():
            a = self._agent(aid)
            a.skills = dict(d["skills"])
            a.queues = [self._queue(qid) for qid in d["queues"]]
            for q in a.queues:
                q.members[a.id] = a
            a.state = _CANON[d["state"]]
            a.reason = d["reason"]
            a.since = d["since"]
            a.acc_since = d["acc_since"]
            a.idle_since = d["idle_since"]
            a.misses = d["misses"]
            a.pending = d["pending"]
            a.calls = d["calls"]
            a.missed = d["missed"]
            a.time_in = {s: float(d["time_in"].get(s, 0.0)) for s in AGENT_STATES}
            a.nr_by_reason = dict(d["nr_by_reason"])
            a.route_calls = d["route_calls"]
            a.route_talk = d["route_talk"]
            a.rr = dict(d["rr"])
            a.wrap_queue = d["wrap_queue"]
            a.owed_call = d.get("owed_call")
            a.wrap_until = d.get("wrap_until")
            a.extensions = int(d.get("extensions", 0))
            a.seq = d["seq"]
        for d in snap["calls"]:
            q = self._queue(d["queue"])
            c = _Call(d["id"], d["priority"], tuple((s, lv) for s, lv in d["extra"]), d["caller"], d["callback_number"])
            c.q = q
            c.seq = d["seq"]
            c.enqueued_at = d["enqueued_at"]
            c.state = _CANON[d["state"]]
            c.offer_no = d["offer_no"]
            c.answered_at = d["answered_at"]
            c.step = d["step"]
            c.base = _merge_skills(q.base, c.extra)
            c.req = self._req(c.base, c.step)
            c.missed_by = set(d["missed_by"]) or None
            c.overflow_due = d["overflow_due"]
            c.callback_offered = d["callback_offered"]
            c.directed = bool(d.get("directed", False))
            self._calls[c.id] = c
            if d["agent"] is not None:
                a = self._agent(d["agent"])
                c.agent = a
                a.call = c
            if c.state != CONNECTED:
                q.present[c.id] = c
                if c.callback_number is None:
                    q.n_live += 1
                else:
                    q.n_cb += 1
            if c.state == WAITING:
                self._index_call(c)
        self._timers = [tuple(e) for e in snap["timers"]]
        heapify(self._timers)

    # ------------------------------------------------------------------ self-check (tests, debugging)

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` if the internal state is inconsistent (O(everything))."""
        offered_to: dict[str, str] = {}
        for c in self._calls.values():
            if c.state == OFFERED or c.state == CONNECTED:
                assert c.agent is not None and c.agent.call is c, f"call {c.id} and its agent disagree"
                assert c.agent.state == (RESERVED if c.state == OFFERED else ON_CALL), f"agent state for {c.id}"
                assert c.agent.id not in offered_to, f"agent {c.agent.id} holds two calls"
                offered_to[c.agent.id] = c.id
            else:
                assert c.agent is None
            if c.state != CONNECTED:
                assert c.q.present.get(c.id) is c, f"call {c.id} missing from its queue"
        for a in self._agents.values():
            if a.state in (RESERVED, ON_CALL):
                assert a.call is not None and self._calls.get(a.call.id) is a.call, f"agent {a.id} call missing"
            else:
                assert a.call is None, f"agent {a.id} in {a.state} holds a call"
            if a.state == LOGGED_OUT:
                assert not a.queues
            for q in a.queues:
                assert q.members.get(a.id) is a
        for q in self._queues.values():
            live = sum(1 for c in q.present.values() if c.callback_number is None)
            assert live == q.n_live and len(q.present) - live == q.n_cb, f"queue {q.id} counters"
            for c in q.present.values():
                assert c.q is q and self._calls.get(c.id) is c
        # routing invariant: no waiting call has a free eligible member agent
        for c in self._calls.values():
            if c.state != WAITING:
                continue
            for a in c.q.members.values():
                assert not (a.state == AVAILABLE and self._eligible(a, c.req)), (
                    f"call {c.id} waits while agent {a.id} is free and qualified"
                )
