"""Erlang B / C / A against worked examples and independent computations."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from acd.erlang import (
    ErlangError,
    agents_for_service_level,
    average_speed_of_answer,
    erlang_a_report,
    erlang_b,
    erlang_c,
    erlang_c_report,
    service_level,
)


def exact_erlang_c(traffic: Fraction, agents: int) -> Fraction:
    """The textbook factorial form, in exact rational arithmetic (independent of the recursion)."""
    head = sum(traffic**k / math.factorial(k) for k in range(agents))
    tail = traffic**agents / math.factorial(agents) * Fraction(agents) / (agents - traffic)
    return tail / (head + tail)


def log_space_erlang_c(traffic: float, agents: int) -> float:
    """Erlang C with lgamma and log-sum-exp: another independent route, fine for big N."""
    logs = [k * math.log(traffic) - math.lgamma(k + 1) for k in range(agents)]
    last = agents * math.log(traffic) - math.lgamma(agents + 1) + math.log(agents / (agents - traffic))
    peak = max(logs + [last])
    head = sum(math.exp(x - peak) for x in logs)
    tail = math.exp(last - peak)
    return tail / (head + tail)


def test_erlang_b_small_exact_values():
    assert erlang_b(1.0, 1) == pytest.approx(0.5)
    assert erlang_b(2.0, 2) == pytest.approx(0.4)  # (4/2) / (1 + 2 + 2)
    for a, n in ((3.5, 4), (10.0, 7), (0.2, 3)):
        exact = Fraction(a) ** n / math.factorial(n) / sum(Fraction(a) ** k / math.factorial(k) for k in range(n + 1))
        assert erlang_b(a, n) == pytest.approx(float(exact), rel=1e-12)


def test_call_centre_helper_worked_example():
    # Call Centre Helper, "Erlang C Formula - Made Simple With an Easy Worked Example":
    # 100 calls in 30 minutes, AHT 180 s, target 80% answered in 20 s -> 10 erlangs.
    # Published: with 11 agents the probability of waiting is 68.21%; 14 agents are needed
    # for 80/20 (before shrinkage). Checked here also against the exact factorial formula.
    rate, aht = 100 / 1800, 180
    r = erlang_c_report(rate, aht, 11, 20)
    assert r.traffic == pytest.approx(10)
    assert r.p_wait == pytest.approx(float(exact_erlang_c(Fraction(10), 11)), rel=1e-12)
    assert round(r.p_wait, 4) == 0.6821
    assert r.service_level == pytest.approx(1 - 0.6821182 * math.exp(-(11 - 10) * 20 / 180), abs=1e-6)
    assert r.asa == pytest.approx(0.6821182 * 180 / 1, rel=1e-6)
    assert r.occupancy == pytest.approx(10 / 11)
    best = agents_for_service_level(rate, aht, 20, 0.8)
    assert best.agents == 14
    assert erlang_c_report(rate, aht, 13, 20).service_level < 0.8 <= best.service_level


def test_westbay_style_example_360_calls_per_half_hour():
    # The step-by-step Erlang C example published by Westbay Engineers: 360 calls per half
    # hour, 4-minute calls, 55 agents, 15 s target -> 48 erlangs, occupancy 87.3%.
    # Values verified against the exact rational formula.
    rate, aht = 360 / 1800, 240
    r = erlang_c_report(rate, aht, 55, 15)
    exact = float(exact_erlang_c(Fraction(48), 55))
    assert r.p_wait == pytest.approx(exact, rel=1e-12)
    assert round(r.occupancy, 3) == 0.873
    assert r.service_level == pytest.approx(1 - exact * math.exp(-7 * 15 / 240), rel=1e-12)
    assert r.asa == pytest.approx(exact * 240 / 7, rel=1e-12)


def test_staffing_with_max_occupancy():
    rate, aht = 100 / 1800, 180
    assert agents_for_service_level(rate, aht, 20, 0.8, max_occupancy=0.85).agents == 14
    r = agents_for_service_level(rate, aht, 20, 0.8, max_occupancy=0.70)
    assert r.agents == 15 and r.occupancy <= 0.70


@pytest.mark.parametrize("agents, traffic", [(300, 280.0), (1000, 950.0), (2500, 2400.0)])
def test_erlang_c_is_stable_for_many_agents(agents, traffic):
    c = erlang_c(traffic, agents)
    assert 0 < c < 1
    assert c == pytest.approx(log_space_erlang_c(traffic, agents), rel=1e-9)
    assert 0 <= service_level(traffic, agents, 300, 20) <= 1
    assert math.isfinite(average_speed_of_answer(traffic, agents, 300))


def test_overloaded_erlang_c():
    assert erlang_c(10.0, 10) == 1.0
    assert service_level(10.0, 9, 180, 20) == 0.0
    assert average_speed_of_answer(10.0, 10, 180) == math.inf


@pytest.mark.parametrize(
    "call",
    [
        lambda: erlang_c(-1.0, 3),
        lambda: erlang_c(1.0, 0),
        lambda: erlang_c_report(1.0, 0, 3, 20),
        lambda: erlang_a_report(1.0, 10, 3, 0, 20),
        lambda: agents_for_service_level(1.0, 10, 20, 1.5),
        lambda: agents_for_service_level(1.0, 10, 20, 0.8, max_occupancy=0),
        lambda: erlang_b(1.0, -1),
    ],
)
def test_bad_input_raises_erlang_error(call):
    with pytest.raises(ErlangError):
        call()


# --- Erlang A against independent numerics -----------------------------------------------


def ctmc(lam: float, mu: float, theta: float, agents: int, cap: int = 400) -> list[float]:
    """Stationary distribution of the birth-death chain M/M/N+M, truncated at ``cap``."""
    weights = [1.0]
    for n in range(1, cap):
        death = min(n, agents) * mu + max(0, n - agents) * theta
        weights.append(weights[-1] * lam / death)
    total = sum(weights)
    return [w / total for w in weights]


def tagged(k: int, agents: int, mu: float, theta: float, t: float) -> tuple[float, float, float]:
    """A caller with ``k`` callers ahead: (P served, P served by t, E[wait; served]),
    by uniformizing the 'number ahead' chain with the caller's own patience as a killing rate."""
    n_states = k + 1  # index j = callers ahead; extra index k+1 = served
    rates = [agents * mu + j * theta for j in range(n_states)]
    big = rates[-1] + theta
    vec = [0.0] * n_states
    vec[k] = 1.0
    served = 0.0
    served_seq = [0.0]
    while True:
        new = [0.0] * n_states
        gained = 0.0
        for j, p in enumerate(vec):
            if p == 0.0:
                continue
            out = rates[j] / big
            new[j] += p * (1.0 - out - theta / big)
            if j == 0:
                gained += p * out
            else:
                new[j - 1] += p * out
        vec = new
        served += gained
        served_seq.append(served)
        if sum(vec) < 1e-17:
            break
    total = served_seq[-1]
    # P(served by t) = Σ_n Poisson(n; big·t) served_n;  E[W; served] = (1/big) Σ_n (total − served_n)
    mean = sum(total - s for s in served_seq) / big
    x = big * t
    by_t = 0.0
    log_p = -x
    for n, s in enumerate(served_seq):
        if n > 0:
            log_p += math.log(x) - math.log(n)
        by_t += math.exp(log_p) * s
    by_t += max(0.0, 1.0 - sum(math.exp(-x + n * math.log(x) - math.lgamma(n + 1)) for n in range(len(served_seq)))) * total
    return total, by_t, mean


@pytest.mark.parametrize(
    "lam, aht, agents, patience, target",
    [(1 / 20, 60.0, 3, 45.0, 20.0), (1 / 12, 60.0, 4, 120.0, 10.0), (1 / 30, 100.0, 2, 30.0, 15.0)],
)
def test_erlang_a_matches_independent_chain_computation(lam, aht, agents, patience, target):
    mu, theta = 1 / aht, 1 / patience
    pi = ctmc(lam, mu, theta, agents)
    p_wait = sum(pi[agents:])
    p_abandon = theta * sum((n - agents) * p for n, p in enumerate(pi) if n > agents) / lam
    served_in_t = sum(pi[:agents])
    wait_served = 0.0
    for k in range(0, 80):
        p = pi[agents + k]
        total, by_t, mean = tagged(k, agents, mu, theta, target)
        served_in_t += p * by_t
        wait_served += p * mean
    r = erlang_a_report(lam, aht, agents, patience, target)
    assert r.p_wait == pytest.approx(p_wait, rel=1e-9)
    assert r.p_abandon == pytest.approx(p_abandon, rel=1e-9)
    assert r.service_level == pytest.approx(served_in_t, rel=1e-7)
    assert r.asa == pytest.approx(wait_served / (1 - p_abandon), rel=1e-7)
    assert r.avg_wait_all == pytest.approx(p_abandon * patience, rel=1e-12)


def test_erlang_a_tends_to_erlang_c_as_patience_grows():
    c = erlang_c_report(100 / 1800, 180, 12, 20)
    a = erlang_a_report(100 / 1800, 180, 12, 1e6, 20)
    assert a.p_wait == pytest.approx(c.p_wait, abs=2e-3)
    assert a.service_level == pytest.approx(c.service_level, abs=2e-3)
    assert a.asa == pytest.approx(c.asa, rel=5e-3)
    assert a.p_abandon < 1e-3


def test_erlang_a_handles_overload_and_large_centres():
    r = erlang_a_report(100 / 1800, 180, 8, 120, 20)  # 10 erlangs on 8 agents: stable thanks to abandonment
    assert 0.2 < r.p_abandon < 0.35 and 0 < r.service_level < 1
    big = erlang_a_report(1000 / 60, 300, 5000, 60, 20)  # 5,000 erlangs
    assert 0 < big.p_abandon < 0.05 and 0.9 < big.service_level <= 1 and math.isfinite(big.asa)
    staff = agents_for_service_level(100 / 1800, 180, 20, 0.8, patience=120)
    below = erlang_a_report(100 / 1800, 180, staff.agents - 1, 120, 20)
    assert staff.service_level >= 0.8 > below.service_level
