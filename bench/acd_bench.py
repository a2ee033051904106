"""ACD engine benchmark: 10,000 agents, 200 queues, ~5,000 waiting calls, a realistic event mix.

Run:  .venv/bin/python bench/acd_bench.py [--events N] [--naive-events N] [--seed S]

It builds the center, fills it (every agent busy, ~5,000 calls waiting), then drives a steady
state: calls end and agents wrap up, agents become free and take the next call, offers are
answered, rejected or ring out, callers arrive and abandon, agents pause and come back, time
advances (wrap-up timers, ring timeouts, skill relaxation). Only the time spent inside
``engine.handle`` is measured. A *decision* is an event whose actions include an ``OfferCall``.

The same workload (same seed, so the same event stream: both engines return identical
actions) is then run through :class:`acd.reference.NaiveAcdEngine`, which scans all queue
members / queued calls for every decision, and the ratio is printed. The last line is one
JSON object: ``events_per_s``, ``p99_ms``, ``naive_events_per_s``, ``speedup``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: E402

from acd import (  # noqa: E402
    AcdEngine,
    AcdSettings,
    AgentBecameAvailable,
    AgentLoggedIn,
    AgentSettings,
    AgentWentNotReady,
    CallAbandoned,
    CallEnded,
    CallQueued,
    OfferAccepted,
    OfferCall,
    OfferRejected,
    OverflowSettings,
    QueueSettings,
    Tick,
    WrapUpEnded,
)
from acd.engine import AVAILABLE, NOT_READY, ON_CALL, WRAP_UP  # noqa: E402
from acd.reference import NaiveAcdEngine  # noqa: E402

N_AGENTS = 10_000
N_QUEUES = 200
TARGET_WAITING = 5_000
WARMUP_STEPS = 30_000
LANGS = ("en", "zh", "fr", "de", "es")
PRODUCTS = ("billing", "tech", "sales")


def queue_weights(uniform: bool) -> list[float]:
    """Popularity of each queue for memberships and calls: Zipf (a few big general queues and
    many small specialist ones, as in large centers) or uniform."""
    if uniform:
        return [1.0] * N_QUEUES
    return [1.0 / (i + 1) for i in range(N_QUEUES)]


def build_settings(seed: int, uniform: bool = False) -> AcdSettings:
    rng = random.Random(seed)
    weights = queue_weights(uniform)
    queues = {}
    strategies = ["longest_idle"] * 5 + ["round_robin", "fewest_calls", "least_talk_time"]
    for i in range(N_QUEUES):
        required = {}
        relax: tuple[float, ...] = ()
        if i % 4 == 0:  # a quarter of the queues route on skills
            required = {rng.choice(LANGS): rng.randint(2, 4), rng.choice(PRODUCTS): rng.randint(1, 3)}
            relax = (30.0, 90.0)
        queues[f"q{i:03d}"] = QueueSettings(
            strategy=strategies[i % len(strategies)],
            wrapup_seconds=rng.choice((0.0, 5.0, 10.0, 20.0)),
            ring_timeout_seconds=15.0,
            required_skills=required,
            relax_after_seconds=relax,
            overflow=OverflowSettings(after_seconds=900.0, target="voicemail") if i % 10 == 0 else None,
        )
    qids = list(queues)
    agents = {}
    for j in range(N_AGENTS):
        home = list(dict.fromkeys(rng.choices(qids, weights, k=rng.randint(1, 4))))
        skills = {lang: rng.randint(1, 5) for lang in rng.sample(LANGS, rng.randint(1, 3))}
        skills.update({p: rng.randint(1, 5) for p in rng.sample(PRODUCTS, rng.randint(1, 3))})
        agents[f"a{j:05d}"] = AgentSettings(skills=skills, queues=tuple(home))
    return AcdSettings(queues=queues, agents=agents, max_missed_offers=3)


class Driver:
    """Plays telephony and agents around an engine; deterministic for a seed."""

    def __init__(self, engine: AcdEngine, seed: int, uniform: bool = False):
        self.eng = engine
        self.cum_weights = list(itertools.accumulate(queue_weights(uniform)))
        self.rng = random.Random(seed)
        self.now = 0.0
        self.next_call = 0
        self.waiting: dict[str, None] = {}  # waiting or ringing calls
        self.offers: dict[str, str] = {}  # call -> agent, ringing, answer pending
        self.pending: list[str] = []  # ringing calls in offer order
        self.connected: list[str] = []
        self.wrapping: list[str] = []
        self.paused: list[str] = []
        self.call_queue: dict[str, str] = {}
        self.qids = list(engine.settings.queues)
        self.latencies: list[int] = []
        self.decisions: list[int] = []
        self.engine_ns = 0
        self.events = 0
        self.measure = True

    def feed(self, event, measure: bool = True) -> None:
        measure = measure and self.measure
        t0 = time.perf_counter_ns()
        actions = self.eng.handle(event, self.now)
        dt = time.perf_counter_ns() - t0
        if measure:
            self.engine_ns += dt
            self.events += 1
            self.latencies.append(dt)
        decided = False
        for act in actions:
            kind = type(act)
            if kind is OfferCall:
                decided = True
                self.offers[act.call_id] = act.agent_id
                self.pending.append(act.call_id)
            elif kind.__name__ == "CancelOffer":
                self.offers.pop(act.call_id, None)
            elif kind.__name__ == "AgentStateChanged":
                if act.state == WRAP_UP:
                    self.wrapping.append(act.agent_id)
                elif act.state == NOT_READY:
                    self.paused.append(act.agent_id)
            elif kind.__name__ in ("OverflowCall", "RefuseCall"):
                self.waiting.pop(act.call_id, None)
        if decided and measure:
            self.decisions.append(dt)

    def new_call(self, measure: bool = True) -> None:
        cid = f"c{self.next_call}"
        self.next_call += 1
        q = self.rng.choices(self.qids, cum_weights=self.cum_weights)[0]
        prio = 5 if self.rng.random() < 0.05 else 0
        self.waiting[cid] = None
        self.call_queue[cid] = q
        self.feed(CallQueued(cid, q, priority=prio), measure)

    def answer_pending(self, measure: bool = True) -> None:
        while self.pending:
            cid = self.pending.pop()
            agent = self.offers.pop(cid, None)
            if agent is None:
                continue
            r = self.rng.random()
            if r < 0.02:
                return  # let it ring out (ring timeout fires later)
            if r < 0.04:
                self.feed(OfferRejected(cid, agent), measure)
                return
            self.waiting.pop(cid, None)
            self.connected.append(cid)
            self.feed(OfferAccepted(cid, agent), measure)
            return

    def fill(self) -> None:
        """Log everyone in, then queue calls until every agent is busy and ~5,000 wait."""
        for aid in self.eng.settings.agents:
            self.feed(AgentLoggedIn(aid), measure=False)
        while len(self.waiting) - len(self.offers) < TARGET_WAITING:
            self.now += 0.05  # arrivals spread over time, so timers do not all fall due together
            self.new_call(measure=False)
            while self.pending:
                self.answer_pending(measure=False)
        self.measure = False
        for _ in range(WARMUP_STEPS):  # reach the steady state before measuring
            self.step()
        self.measure = True

    def pick(self, items: list[str]) -> str | None:
        while items:
            i = self.rng.randrange(len(items))
            items[i], items[-1] = items[-1], items[i]
            return items.pop()
        return None

    def step(self) -> None:
        rng = self.rng
        self.now += 0.02
        if self.pending:
            self.answer_pending()
            return
        r = rng.random()
        waiting = len(self.waiting)
        if r < 0.30:
            cid = self.pick(self.connected)
            if cid is not None:
                self.feed(CallEnded(cid))
                return
        if r < 0.45:
            aid = self.pick(self.wrapping)
            if aid is not None:
                state, _ = self.eng.agent_state(aid)
                if state == WRAP_UP:
                    self.feed(WrapUpEnded(aid))
                    return
        if r < 0.70:
            if waiting < TARGET_WAITING * 1.02:
                self.new_call()
                return
        if r < 0.78 and waiting:
            cid = next(iter(self.waiting))  # the oldest caller gives up
            if cid not in self.offers:
                del self.waiting[cid]
                self.feed(CallAbandoned(cid))
                return
        if r < 0.84:
            aid = f"a{rng.randrange(N_AGENTS):05d}"
            state, _ = self.eng.agent_state(aid)
            if state in (AVAILABLE, WRAP_UP):
                self.feed(AgentWentNotReady(aid, rng.choice(("break", "lunch", "training"))))
                return
        if r < 0.92:
            aid = self.pick(self.paused)
            if aid is not None:
                state, _ = self.eng.agent_state(aid)
                if state == NOT_READY:
                    self.feed(AgentBecameAvailable(aid))
                    return
        if r < 0.97 and waiting < TARGET_WAITING * 1.02:
            self.new_call()
            return
        self.now += 0.5
        self.feed(Tick())


def run(engine_cls, settings: AcdSettings, seed: int, n_events: int, label: str, console: Console, uniform: bool) -> dict:
    engine = engine_cls(settings)
    driver = Driver(engine, seed, uniform)
    t0 = time.perf_counter()
    driver.fill()
    fill_s = time.perf_counter() - t0
    waiting = sum(engine.queue_stats(q).waiting for q in driver.qids)
    busy = sum(1 for a in engine.agent_ids() if engine.agent_state(a)[0] in (ON_CALL,))
    console.print(f"[bold]{label}[/]: filled in {fill_s:.1f}s: {busy} agents on calls, {waiting} calls in queue")
    # As a long-running server would: move the built state out of the collector's way, keep GC on.
    gc.collect()
    gc.freeze()
    wall0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(), console=console, transient=True,
    ) as progress:
        task = progress.add_task(label, total=n_events)
        done = 0
        while driver.events < n_events:
            driver.step()
            if driver.events - done >= 2000:
                done = driver.events
                progress.update(task, completed=done)
    wall = time.perf_counter() - wall0
    gc.unfreeze()
    lat = sorted(driver.latencies)
    dec = sorted(driver.decisions)

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(p * len(xs)))] / 1e6 if xs else float("nan")

    waiting = sum(engine.queue_stats(q).waiting for q in driver.qids)
    result = {
        "events": driver.events,
        "decisions": len(dec),
        "events_per_s": driver.events / (driver.engine_ns / 1e9),
        "wall_events_per_s": driver.events / wall,
        "p50_ms": pct(dec, 0.50),
        "p99_ms": pct(dec, 0.99),
        "event_p50_ms": pct(lat, 0.50),
        "event_p99_ms": pct(lat, 0.99),
        "event_max_ms": lat[-1] / 1e6 if lat else float("nan"),
        "mean_decision_ms": statistics.fmean(dec) / 1e6 if dec else float("nan"),
        "waiting_at_end": waiting,
        "latencies": driver.latencies,
    }
    console.print(
        f"  {result['events']:,} events ({result['decisions']:,} decisions) in {driver.engine_ns / 1e9:.2f}s engine time: "
        f"[bold]{result['events_per_s']:,.0f} events/s[/] (with the driver: {result['wall_events_per_s']:,.0f}/s)"
    )
    console.print(
        f"  decision latency p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms; "
        f"any event p50 {result['event_p50_ms']:.3f} ms, p99 {result['event_p99_ms']:.3f} ms, max {result['event_max_ms']:.2f} ms; "
        f"{waiting} calls in queue at the end"
    )
    return result


def jitter_ms(n: int = 200_000) -> float:
    """Largest time a trivial step took: scheduler noise on this machine, for context."""
    worst = 0
    for _ in range(n):
        t0 = time.perf_counter_ns()
        dt = time.perf_counter_ns() - t0
        if dt > worst:
            worst = dt
    return worst / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="measured events for the indexed engine")
    parser.add_argument("--naive-events", type=int, default=20_000, help="measured events for the naive reference")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--uniform", action="store_true", help="spread members and calls evenly over the queues")
    args = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    settings = build_settings(args.seed, args.uniform)
    shape = "uniform" if args.uniform else "Zipf-distributed"
    console.print(
        f"{N_AGENTS:,} agents, {N_QUEUES} queues ({shape} sizes), target {TARGET_WAITING:,} waiting calls, seed {args.seed}"
    )
    sizes = sorted((len([a for a in settings.agents.values() if q in a.queues]) for q in settings.queues), reverse=True)
    console.print(f"members per queue: largest {sizes[0]}, median {sizes[len(sizes) // 2]}, smallest {sizes[-1]}")
    console.print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; timer jitter {jitter_ms():.3f} ms (max of a no-op)")
    fast = run(AcdEngine, settings, args.seed, args.events, "indexed engine", console, args.uniform)
    naive = run(NaiveAcdEngine, settings, args.seed, args.naive_events, "naive reference (linear scans)", console, args.uniform)
    # compare like with like: the indexed engine over the same first events the naive one ran
    n = naive["events"]
    prefix_rate = n / (sum(fast["latencies"][:n]) / 1e9)
    speedup = prefix_rate / naive["events_per_s"]
    console.print(
        f"indexed engine over the same first {n:,} events: {prefix_rate:,.0f} events/s; "
        f"speedup over the naive reference: [bold]{speedup:.1f}x[/]"
    )
    print(
        json.dumps(
            {
                "events_per_s": round(fast["events_per_s"]),
                "p99_ms": round(fast["p99_ms"], 4),
                "naive_events_per_s": round(naive["events_per_s"]),
                "speedup": round(speedup, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
