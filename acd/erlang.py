"""Erlang B, Erlang C and Erlang A (Palm) as pure functions.

Numerically stable for hundreds or thousands of agents: Erlang B uses the iterative recursion
``B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1))`` (no factorials, no powers); Erlang C is derived
from it; Erlang A works with logarithms of the series it needs.

Units: rates per second, times in seconds. ``traffic`` (offered load, in erlangs) is
``arrival_rate * aht``.

Erlang A (M/M/N+M: Poisson arrivals, exponential handle times, exponential patience with mean
``patience``) follows Palm and Garnett, Mandelbaum & Reiman (2002), "Designing a call center
with impatient customers". With a = N/aht, θ = 1/patience, x = a/θ, y = λ/θ and
A(x, y) = Σ_{j≥0} y^j / Π_{i=1..j}(x+i):

* P(wait) = E_B·A(x,y) / (1 + E_B·(A(x,y) − 1))        (E_B = Erlang B with N agents)
* P(abandon | wait) = 1 − (x/y)·(1 − 1/A(x,y))
* P(offered wait V > t) = π_N · exp(−a·t + y·(1 − e^{−θt})) · A(x, y·e^{−θt})
* P(served and waited > t) = π_N · e^{−θt} · exp(−a·t + y·(1 − e^{−θt})) · (x/z)·(A(x,z) − 1),
  z = y·e^{−θt}, π_N = P(wait)/A(x,y)

(the last two come from solving the forward equations of the "number ahead" pure-death
process with the weights of the stationary queue; they reduce to the Erlang C formulas as
θ → 0). ASA over answered calls is summed from the per-position conditional means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from acd.errors import AcdError

__all__ = [
    "ErlangError",
    "StaffingResult",
    "erlang_b",
    "erlang_c",
    "service_level",
    "average_speed_of_answer",
    "erlang_c_report",
    "erlang_a_report",
    "staffing_report",
    "agents_for_service_level",
]

_MAX_TERMS = 20_000_000


class ErlangError(AcdError, ValueError):
    """Bad input to an Erlang function (negative rate, zero agents, ...)."""


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ErlangError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ErlangError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _check_agents(agents: int) -> int:
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
        raise ErlangError(f"agents must be a whole number >= 1, got {agents!r}")
    return agents


def erlang_b(traffic: float, agents: int) -> float:
    """Blocking probability of an M/M/N/N system with ``traffic`` erlangs offered."""
    traffic = _check_positive("traffic", traffic, allow_zero=True)
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 0:
        raise ErlangError(f"agents must be a whole number >= 0, got {agents!r}")
    b = 1.0
    for n in range(1, agents + 1):
        ab = traffic * b
        b = ab / (n + ab)
    return b


def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a call waits (M/M/N, no abandonment); 1.0 when agents <= traffic."""
    traffic = _check_positive("traffic", traffic, allow_zero=True)
    agents = _check_agents(agents)
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = erlang_b(traffic, agents)
    return agents * b / (agents - traffic * (1.0 - b))


def service_level(traffic: float, agents: int, aht: float, target: float) -> float:
    """Erlang C share of calls answered within ``target`` seconds: 1 − C·e^{−(N−A)·T/aht}."""
    aht = _check_positive("aht", aht)
    target = _check_positive("target", target, allow_zero=True)
    c = erlang_c(traffic, agents)
    if agents <= traffic:
        return 0.0
    return max(0.0, 1.0 - c * math.exp(-(agents - traffic) * target / aht))


def average_speed_of_answer(traffic: float, agents: int, aht: float) -> float:
    """Erlang C mean wait over all calls, C·aht/(N−A); ``inf`` when agents <= traffic."""
    aht = _check_positive("aht", aht)
    c = erlang_c(traffic, agents)
    if agents <= traffic:
        return math.inf
    return c * aht / (agents - traffic)


@dataclass(frozen=True, slots=True)
class StaffingResult:
    """What a number of agents gives for an arrival rate and handle time.

    ``service_level`` is the share of *all* offered calls answered within ``target``
    (without abandonment every call is answered, so it equals ``service_level_answered``).
    ``asa`` is the mean wait of answered calls; ``p_abandon`` is ``None`` for Erlang C.
    """

    model: str
    agents: int
    arrival_rate: float
    aht: float
    traffic: float
    target: float
    p_wait: float
    service_level: float
    service_level_answered: float
    asa: float
    occupancy: float
    p_abandon: float | None = None
    patience: float | None = None
    avg_wait_all: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def erlang_c_report(arrival_rate: float, aht: float, agents: int, target: float) -> StaffingResult:
    """Erlang C figures for ``agents`` answering ``arrival_rate`` calls/s of ``aht`` seconds."""
    arrival_rate = _check_positive("arrival_rate", arrival_rate, allow_zero=True)
    aht = _check_positive("aht", aht)
    agents = _check_agents(agents)
    target = _check_positive("target", target, allow_zero=True)
    traffic = arrival_rate * aht
    pw = erlang_c(traffic, agents)
    sl = service_level(traffic, agents, aht, target)
    asa = average_speed_of_answer(traffic, agents, aht)
    return StaffingResult(
        model="erlang_c",
        agents=agents,
        arrival_rate=arrival_rate,
        aht=aht,
        traffic=traffic,
        target=target,
        p_wait=pw,
        service_level=sl,
        service_level_answered=sl,
        asa=asa,
        occupancy=min(1.0, traffic / agents),
        avg_wait_all=asa,
    )


def _log_series(x: float, y: float, start: int) -> tuple[list[float], float]:
    """Log terms ``log(y^j / Π_{i=1..j}(x+i))`` for j >= start until negligible, and their max."""
    if y <= 0:
        return ([0.0] if start == 0 else []), (0.0 if start == 0 else -math.inf)
    log_y = math.log(y)
    terms: list[float] = []
    lt = 0.0
    j = 0
    peak = -math.inf
    while True:
        if j > 0:
            lt += log_y - math.log(x + j)
        if j >= start:
            terms.append(lt)
            if lt > peak:
                peak = lt
            if j > y - x and lt < peak - 50.0:
                break
        j += 1
        if j > _MAX_TERMS:
            raise ErlangError("Erlang A series did not converge (arrival rate x patience too large)")
    return terms, peak


def _log_sum(terms: list[float], peak: float) -> float:
    if not terms:
        return -math.inf
    return peak + math.log(math.fsum(math.exp(t - peak) for t in terms))


def erlang_a_report(arrival_rate: float, aht: float, agents: int, patience: float, target: float) -> StaffingResult:
    """Erlang A (abandonment with exponential patience of mean ``patience`` seconds)."""
    lam = _check_positive("arrival_rate", arrival_rate, allow_zero=True)
    aht = _check_positive("aht", aht)
    agents = _check_agents(agents)
    patience = _check_positive("patience", patience)
    target = _check_positive("target", target, allow_zero=True)
    traffic = lam * aht
    if lam == 0:
        return StaffingResult("erlang_a", agents, lam, aht, 0.0, target, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, patience, 0.0)
    theta = 1.0 / patience
    a = agents / aht
    x = a / theta
    y = lam / theta
    eb = erlang_b(traffic, agents)

    terms, peak = _log_series(x, y, 0)
    log_a = _log_sum(terms, peak)  # log A(x, y)
    # P(wait) = 1 / (1 + (1 − E_B) / (E_B · A))
    if eb <= 0.0:
        p_wait = 0.0
    else:
        r = math.log1p(-eb) - math.log(eb) - log_a if eb < 1.0 else -math.inf
        p_wait = 1.0 / (1.0 + math.exp(r)) if r < 700 else 0.0
    inv_a = math.exp(-log_a)
    served_given_wait = (x / y) * (1.0 - inv_a)
    p_abandon = p_wait * (1.0 - served_given_wait)
    p_served = 1.0 - p_abandon
    log_pi_n = (math.log(p_wait) - log_a) if p_wait > 0 else -math.inf

    # P(served and offered wait > T)
    if target > 0 and p_wait > 0:
        z = y * math.exp(-theta * target)
        tail_terms, tail_peak = _log_series(x, z, 1)
        log_a1 = _log_sum(tail_terms, tail_peak)  # log(A(x, z) − 1)
        log_late = (
            log_pi_n - theta * target - a * target + y * (-math.expm1(-theta * target)) + math.log(x) - math.log(z) + log_a1
        )
        served_late = math.exp(log_late) if log_late > -745 else 0.0
    else:
        served_late = p_wait * served_given_wait
    served_waiting = p_wait * served_given_wait
    sl_all = max(0.0, min(1.0, (1.0 - p_wait) + served_waiting - served_late))

    # E[W; served] = π_N Σ_k w_k E_k, E_k = S_k/(θ(x+k+1)) + ((x+k)/(x+k+1))·E_{k−1}
    if p_wait > 0:
        acc = 0.0
        e_prev = 0.0
        for k, lt in enumerate(terms):
            xk1 = x + k + 1
            e_k = (x / xk1) / (theta * xk1) + ((x + k) / xk1) * e_prev
            acc += math.exp(lt - peak) * e_k
            e_prev = e_k
        wait_served = math.exp(log_pi_n + peak) * acc if acc > 0 else 0.0
    else:
        wait_served = 0.0
    asa = wait_served / p_served if p_served > 0 else math.inf
    carried = lam * p_served * aht
    return StaffingResult(
        model="erlang_a",
        agents=agents,
        arrival_rate=lam,
        aht=aht,
        traffic=traffic,
        target=target,
        p_wait=p_wait,
        service_level=sl_all,
        service_level_answered=min(1.0, sl_all / p_served) if p_served > 0 else 0.0,
        asa=asa,
        occupancy=min(1.0, carried / agents),
        p_abandon=p_abandon,
        patience=patience,
        avg_wait_all=p_abandon * patience,
    )


def staffing_report(
    arrival_rate: float, aht: float, agents: int, target: float, patience: float | None = None
) -> StaffingResult:
    """Erlang C, or Erlang A when ``patience`` is given."""
    if patience is None:
        return erlang_c_report(arrival_rate, aht, agents, target)
    return erlang_a_report(arrival_rate, aht, agents, patience, target)


def agents_for_service_level(
    arrival_rate: float,
    aht: float,
    target: float,
    service_level: float,
    *,
    max_occupancy: float | None = None,
    patience: float | None = None,
    max_agents: int = 1_000_000,
) -> StaffingResult:
    """The fewest agents whose service level reaches ``service_level`` (a fraction) and whose
    occupancy stays at or below ``max_occupancy`` (if given)."""
    _check_positive("arrival_rate", arrival_rate, allow_zero=True)
    _check_positive("aht", aht)
    _check_positive("target", target, allow_zero=True)
    if not isinstance(service_level, (int, float)) or not 0 < service_level < 1:
        raise ErlangError(f"service level must be a fraction between 0 and 1 (exclusive), got {service_level!r}")
    if max_occupancy is not None and (not isinstance(max_occupancy, (int, float)) or not 0 < max_occupancy <= 1):
        raise ErlangError(f"max occupancy must be a fraction in (0, 1], got {max_occupancy!r}")

    def ok(n: int) -> tuple[bool, StaffingResult]:
        r = staffing_report(arrival_rate, aht, n, target, patience)
        good = r.service_level >= service_level and (max_occupancy is None or r.occupancy <= max_occupancy)
        return good, r

    traffic = arrival_rate * aht
    lo = max(1, int(math.floor(traffic)) + 1) if patience is None else 1
    good, result = ok(lo)
    if good:
        return result
    hi = lo
    while True:  # both criteria improve with more agents: double, then bisect
        hi = min(max_agents, hi * 2)
        good, result = ok(hi)
        if good:
            break
        if hi >= max_agents:
            raise ErlangError(f"no staffing up to {max_agents} agents meets the target")
        lo = hi
    best = result
    while hi - lo > 1:
        mid = (lo + hi) // 2
        good, r = ok(mid)
        if good:
            hi, best = mid, r
        else:
            lo = mid
    return best
