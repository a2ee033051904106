"""Discrete-event simulation that drives the real :class:`acd.engine.AcdEngine`.

Calls arrive as a Poisson process, handle times are exponential and (optionally) callers
abandon after an exponential patience; agents answer as soon as an offer reaches them (or
after ``ring_delay`` seconds). Time is simulated (an event heap), randomness comes only from
a ``random.Random(seed)``, so a run is reproducible. The engine's own statistics give the
simulated service level, ASA, abandonment and occupancy, reported beside the Erlang C (or,
with patience, Erlang A) prediction for the same inputs.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from acd.actions import EventRejected, OfferCall
from acd.engine import AcdEngine
from acd.erlang import ErlangError, StaffingResult, staffing_report
from acd.events import AgentLoggedIn, CallAbandoned, CallEnded, CallQueued, OfferAccepted, StatisticsReset
from acd.settings import STRATEGIES, AcdSettings, AgentSettings, QueueSettings

__all__ = ["SimulationConfig", "SimulationResult", "simulate"]

_ARRIVAL, _ANSWER, _HANGUP, _ABANDON, _WARMED, _END = range(6)
QUEUE = "sim"


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Inputs of one run. ``warmup_minutes`` (default: 10% of ``minutes``, at most 60) runs
    before the measured period so the queue starts in a steady state."""

    calls_per_hour: float
    aht: float
    agents: int
    minutes: float
    patience: float | None = None
    strategy: str = "longest_idle"
    seed: int = 1
    target: float = 20.0
    ring_delay: float = 0.0
    wrapup: float = 0.0
    warmup_minutes: float | None = None

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, zero_ok: bool = False) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ErlangError(f"{name} must be a number, got {value!r}")
            if value < 0 or (value == 0 and not zero_ok):
                raise ErlangError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")

        positive("calls per hour", self.calls_per_hour)
        positive("aht", self.aht)
        positive("minutes", self.minutes)
        positive("target", self.target, True)
        positive("ring delay", self.ring_delay, True)
        positive("wrap-up", self.wrapup, True)
        if self.patience is not None:
            positive("patience", self.patience)
        if self.warmup_minutes is not None:
            positive("warm-up minutes", self.warmup_minutes, True)
        if isinstance(self.agents, bool) or not isinstance(self.agents, int) or self.agents < 1:
            raise ErlangError(f"agents must be a whole number >= 1, got {self.agents!r}")
        if self.strategy not in STRATEGIES:
            raise ErlangError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")

    @property
    def warmup(self) -> float:
        minutes = min(60.0, self.minutes * 0.1) if self.warmup_minutes is None else self.warmup_minutes
        return minutes * 60.0


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Measured figures (engine statistics over the measured period) and the prediction.

    ``service_level`` = answered within target / (answered + abandoned); ``asa`` is the mean
    wait of answered calls; ``occupancy`` is the agents' busy share of ready time.
    """

    config: SimulationConfig
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    service_level_answered: float | None
    asa: float | None
    abandon_rate: float | None
    occupancy: float | None
    engine_events: int
    prediction: StaffingResult

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["config"] = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        out["prediction"] = self.prediction.to_dict()
        return out


def simulate(config: SimulationConfig, progress: Callable[[float], None] | None = None) -> SimulationResult:
    """Run the simulation; ``progress(fraction)`` is called now and then if given."""
    rng = random.Random(config.seed)
    lam = config.calls_per_hour / 3600.0
    agents = {f"a{i}": AgentSettings(queues=(QUEUE,)) for i in range(config.agents)}
    settings = AcdSettings(
        queues={
            QUEUE: QueueSettings(
                strategy=config.strategy,
                service_level_seconds=config.target if config.target > 0 else 1e-9,
                wrapup_seconds=config.wrapup,
                ring_timeout_seconds=max(300.0, config.ring_delay * 10 + 1),
            )
        },
        agents=agents,
    )
    engine = AcdEngine(settings)
    handled = 0
    for aid in agents:
        engine.handle(AgentLoggedIn(aid), 0.0)
        handled += 1

    warmup = config.warmup
    end = warmup + config.minutes * 60.0
    heap: list[tuple[float, int, int, str]] = []
    seq = 0

    def push(at: float, kind: int, ref: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (at, seq, kind, ref))

    push(rng.expovariate(lam) if lam > 0 else math.inf, _ARRIVAL, "")
    if warmup > 0:
        push(warmup, _WARMED, "")
    push(end, _END, "")
    connected: set[str] = set()
    next_call = 0
    occupancy: float | None = None
    next_report = 0.0

    def run(actions: list) -> None:
        # agents answer every offer; if the offer is cancelled first (the caller hung up), the
        # engine rejects the late answer as stale
        for act in actions:
            if type(act) is OfferCall:
                push(now + config.ring_delay, _ANSWER, act.call_id + "|" + act.agent_id)

    now = 0.0
    while True:
        due = engine.next_deadline()
        top = heap[0][0] if heap else math.inf
        if due is not None and due <= top:
            now = due
            run(engine.tick(now))
            handled += 1
            continue
        if not heap:
            break
        now, _, kind, ref = heapq.heappop(heap)
        if kind == _ARRIVAL:
            if now > end:
                continue  # arrivals stop; drain what is left
            cid = f"c{next_call}"
            next_call += 1
            run(engine.handle(CallQueued(cid, QUEUE), now))
            handled += 1
            if config.patience is not None:
                push(now + rng.expovariate(1.0 / config.patience), _ABANDON, cid)
            push(now + rng.expovariate(lam), _ARRIVAL, "")
            if progress is not None and now >= next_report:
                progress(min(1.0, now / end))
                next_report = now + end / 200.0
        elif kind == _ANSWER:
            cid, aid = ref.split("|")
            actions = engine.handle(OfferAccepted(cid, aid), now)
            handled += 1
            if not (actions and type(actions[-1]) is EventRejected):
                connected.add(cid)
                push(now + rng.expovariate(1.0 / config.aht), _HANGUP, cid)
        elif kind == _HANGUP:
            connected.discard(cid := ref)
            run(engine.handle(CallEnded(cid), now))
            handled += 1
        elif kind == _ABANDON:
            if ref not in connected and engine.has_call(ref):
                run(engine.handle(CallAbandoned(ref), now))
                handled += 1
        elif kind == _WARMED:
            run(engine.handle(StatisticsReset(), now))
            handled += 1
        else:  # end of the measured period: occupancy now, before the queue drains
            occupancy = _occupancy(engine, now)
    if occupancy is None:
        occupancy = _occupancy(engine, end)
    if progress is not None:
        progress(1.0)
    st = engine.queue_stats(QUEUE)
    prediction = staffing_report(lam, config.aht + config.wrapup, config.agents, config.target, config.patience)
    return SimulationResult(
        config=config,
        offered=st.answered + st.abandoned,
        answered=st.answered,
        abandoned=st.abandoned,
        service_level=st.sl2,
        service_level_answered=st.sl1,
        asa=st.asa,
        abandon_rate=st.abandon_rate,
        occupancy=occupancy,
        engine_events=handled,
        prediction=prediction,
    )


def _occupancy(engine: AcdEngine, at: float) -> float | None:
    busy = ready = 0.0
    for aid in engine.agent_ids():
        s = engine.agent_stats(aid, at)
        busy += s.talk + s.wrap
        ready += s.talk + s.wrap + s.available + s.reserved
    return busy / ready if ready > 0 else None
