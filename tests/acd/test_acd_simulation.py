"""The simulator drives the real engine; long runs agree with Erlang C / Erlang A."""

from __future__ import annotations

import pytest

from acd.erlang import ErlangError
from acd.simulation import SimulationConfig, simulate


def test_long_run_without_abandonment_agrees_with_erlang_c():
    # 200 calls/h of 180 s on 13 agents: 10 erlangs, Erlang C predicts 79.6% in 20 s.
    cfg = SimulationConfig(calls_per_hour=200, aht=180, agents=13, minutes=60 * 800, seed=5)
    r = simulate(cfg)
    assert r.offered > 150_000
    assert r.abandoned == 0
    assert r.prediction.model == "erlang_c"
    assert r.prediction.service_level == pytest.approx(0.7956, abs=1e-4)
    assert abs(r.service_level - r.prediction.service_level) < 0.02
    assert r.asa == pytest.approx(r.prediction.asa, rel=0.12)
    assert r.occupancy == pytest.approx(r.prediction.occupancy, abs=0.01)


def test_long_run_with_patience_agrees_with_erlang_a():
    cfg = SimulationConfig(calls_per_hour=200, aht=180, agents=11, minutes=60 * 400, seed=3, patience=120)
    r = simulate(cfg)
    p = r.prediction
    assert p.model == "erlang_a" and r.abandoned > 0
    assert abs(r.service_level - p.service_level) < 0.02
    assert abs(r.abandon_rate - p.p_abandon) < 0.01
    assert r.asa == pytest.approx(p.asa, rel=0.12)


def test_same_seed_same_run_other_seed_other_run():
    cfg = SimulationConfig(calls_per_hour=300, aht=120, agents=12, minutes=120, seed=42, patience=90)
    a, b = simulate(cfg), simulate(cfg)
    assert a == b
    c = simulate(SimulationConfig(calls_per_hour=300, aht=120, agents=12, minutes=120, seed=43, patience=90))
    assert (c.offered, c.service_level) != (a.offered, a.service_level)


@pytest.mark.parametrize("strategy", ["round_robin", "fewest_calls", "least_talk_time"])
def test_strategies_and_ring_delay(strategy):
    seen = []
    r = simulate(
        SimulationConfig(calls_per_hour=400, aht=60, agents=10, minutes=60, seed=1, strategy=strategy, ring_delay=4),
        progress=seen.append,
    )
    assert r.answered == r.offered > 0
    assert r.asa >= 4  # ringing counts as waiting
    assert seen[-1] == 1.0 and seen == sorted(seen)


@pytest.mark.parametrize(
    "kw",
    [dict(agents=0), dict(aht=0), dict(calls_per_hour=-1), dict(minutes=0), dict(patience=0), dict(strategy="random")],
)
def test_bad_configuration(kw):
    base = dict(calls_per_hour=100, aht=100, agents=3, minutes=10)
    base.update(kw)
    with pytest.raises(ErlangError):
        SimulationConfig(**base)
