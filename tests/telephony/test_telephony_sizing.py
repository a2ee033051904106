"""The elastic pool's sizing policy (pure): plain values in, decisions out; hypothesis for its invariants."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.telephony.sizing import (
    CancelRetirement, DemandMeter, Phase, RetireWorker, SizingRules, SlotState, StartWorkers, decide, describe_slots,
    target_free_legs, usable_legs,
)

RULES = SizingRules(spare_legs=4, idle_retire_seconds=300, lead_seconds=2, legs_per_worker=4, max_starting=4)


def stopped(name: str) -> SlotState:
    return SlotState(name, Phase.STOPPED)


def running(name: str, free: int = 4, in_use: int = 0, reserved: int = 0, idle_since: float | None = 0.0) -> SlotState:
    busy = in_use or reserved
    return SlotState(name, Phase.RUNNING, free=free, in_use=in_use, reserved=reserved,
                     idle_since=None if busy else idle_since)


def pool(*slots: SlotState, size: int = 4) -> list[SlotState]:
    named = {s.name: s for s in slots}
    return [named.get(f"w{i}", stopped(f"w{i}")) for i in range(1, size + 1)]


# ---------------------------------------------------------------------------------- the floor


def test_target_is_the_spare_legs_plus_the_legs_that_arrive_while_a_worker_starts_in_whole_callers():
    assert target_free_legs(0, RULES) == 4
    assert target_free_legs(1.0, RULES) == 6  # 2 s of 1 leg/s
    assert target_free_legs(1.5, RULES) == 8  # 4 + 3, rounded up to whole callers
    assert target_free_legs(0.01, RULES) == 6
    assert usable_legs(3) == 2 and usable_legs(1) == 0 and usable_legs(-1) == 0


def test_an_empty_elastic_pool_starts_the_floor_first_slots_first():
    assert decide(pool(), 0, RULES, now=0) == [StartWorkers(("w1",))]
    assert decide(pool(), 0, dataclasses.replace(RULES, spare_legs=6), now=0) == [StartWorkers(("w1", "w2"))]


def test_a_caller_taking_legs_below_the_floor_starts_the_next_worker():
    one_caller = pool(running("w1", free=2, in_use=1, reserved=1))
    assert decide(one_caller, 0, RULES, now=10) == [StartWorkers(("w2",))]


def test_a_worker_that_is_starting_counts_as_room_already():
    starting = pool(running("w1", free=2, in_use=1, reserved=1), SlotState("w2", Phase.STARTING))
    assert decide(starting, 0, RULES, now=10) == []


def test_an_odd_free_leg_is_no_room_for_a_caller():
    assert decide(pool(running("w1", free=3, in_use=1)), 0, RULES, now=10) == [StartWorkers(("w2",))]


def test_headroom_follows_the_arrival_rate():
    idle = pool(running("w1"), size=8)
    # 4 legs/s for 2 s: 8 more legs than the spare 4 -> two more workers now.
    assert decide(idle, 4.0, RULES, now=10) == [StartWorkers(("w2", "w3"))]


def test_never_more_workers_than_slots_nor_more_than_max_starting_at_once():
    full = [running(f"w{i}", free=0, in_use=4) for i in range(1, 5)]
    assert decide(full, 50.0, RULES, now=10) == []
    big = dataclasses.replace(RULES, spare_legs=40)
    assert decide(pool(size=16), 0, big, now=0) == [StartWorkers(("w1", "w2", "w3", "w4"))]
    capped = dataclasses.replace(RULES, spare_legs=40, max_workers=2)
    assert decide(pool(size=16), 0, capped, now=0) == [StartWorkers(("w1", "w2"))]


def test_a_dead_worker_is_no_room_and_no_slot_to_start():
    down = pool(SlotState("w1", Phase.DOWN), size=2)
    assert decide(down, 0, RULES, now=0) == [StartWorkers(("w2",))]
    assert decide(down, 0, dataclasses.replace(RULES, spare_legs=8), now=0) == [StartWorkers(("w2",))]


# --------------------------------------------------------------------------------- retirement


def test_an_idle_worker_is_retired_after_the_idle_time_last_slot_first():
    two_idle = pool(running("w1", idle_since=0), running("w2", idle_since=0), running("w3", idle_since=100))
    assert decide(two_idle, 0, RULES, now=299) == []
    assert decide(two_idle, 0, RULES, now=300) == [RetireWorker("w2")]  # w3 has not been idle long enough


def test_the_floor_holds_without_the_retired_worker():
    assert decide(pool(running("w1", idle_since=0)), 0, RULES, now=10_000) == []
    mixed = pool(running("w1", idle_since=0), running("w2", free=2, in_use=1, reserved=1))
    assert decide(mixed, 0, RULES, now=10_000) == []  # 6 free legs, 2 without w1: below 4
    # The arrival rate counts too: at 2 legs/s the target is 8, so neither of two idle workers goes.
    assert decide(pool(running("w1"), running("w2")), 2.0, RULES, now=10_000) == []


def test_a_worker_with_legs_or_a_reservation_is_never_retired():
    legs = pool(running("w1"), running("w2"), running("w3", free=2, in_use=2, idle_since=0))
    assert decide(legs, 0, RULES, now=10_000) == [RetireWorker("w2")]
    held = pool(running("w1"), running("w2", free=2, reserved=1))
    assert decide(held, 0, RULES, now=10_000) == []


def test_one_retirement_at_a_time_and_none_while_a_worker_starts_or_stops():
    idle = [running("w1"), running("w2"), running("w3")]
    retiring = pool(*idle[:2], SlotState("w3", Phase.RETIRING, free=4, idle_since=0))
    assert decide(retiring, 0, RULES, now=10_000) == []
    stopping = pool(*idle[:2], SlotState("w3", Phase.STOPPING))
    assert decide(stopping, 0, RULES, now=10_000) == []
    starting = pool(*idle[:2], SlotState("w3", Phase.STARTING))
    assert decide(starting, 0, RULES, now=10_000) == []


def test_a_retiring_worker_that_got_a_call_is_called_back():
    landed = pool(running("w1"), SlotState("w2", Phase.RETIRING, free=2, in_use=1, reserved=1))
    assert decide(landed, 0, RULES, now=10) == [CancelRetirement("w2")]


def test_room_needed_again_calls_back_a_retiring_worker_before_starting_one():
    busy_w1 = running("w1", free=0, in_use=2, reserved=2)
    short = pool(busy_w1, SlotState("w2", Phase.RETIRING, free=4, idle_since=0))
    assert decide(short, 0, RULES, now=10) == [CancelRetirement("w2")]
    shorter = pool(busy_w1, SlotState("w2", Phase.RETIRING, free=4, idle_since=0))
    assert decide(shorter, 2.0, RULES, now=10) == [CancelRetirement("w2"), StartWorkers(("w3",))]


# ------------------------------------------------------------------------------------- demand


def test_demand_rises_at_once_and_falls_over_the_window():
    meter = DemandMeter(window=10, short=1)
    assert meter.rate(0) == 0
    for i in range(5):
        meter.note(100 + i * 0.1)  # five callers in half a second: 10 legs
    assert meter.rate(100.5) == 10.0  # the last second's rate, not 10 legs over 10 s
    assert meter.rate(102) == 1.0  # then the window's
    assert meter.rate(111) == 0
    with pytest.raises(ValueError):
        DemandMeter(window=1, short=2)


def test_described_in_a_few_words():
    phases = ["running"] * 3 + ["retiring"] + ["stopped"] * 12
    assert describe_slots(phases, elastic=True) == "3 running, 1 retiring, 12 stopped (elastic)"
    assert describe_slots(["running", "down"], elastic=False) == "1 running, 1 down"


def test_rules_refuse_a_floor_no_caller_fits_in():
    with pytest.raises(ValueError):
        SizingRules(spare_legs=1)


# ------------------------------------------------------------------------------ the invariants


SETTLED = [Phase.RUNNING] * 3 + [Phase.STOPPED, Phase.DOWN]


@st.composite
def slot_states(draw, name: str, settled: bool) -> SlotState:
    # Half the pools settled (a retirement needs every other slot settled), half anything.
    phase = draw(st.sampled_from(SETTLED if settled else list(Phase)))
    if phase in (Phase.RUNNING, Phase.RETIRING):
        in_use = draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4]))
        reserved = draw(st.integers(0, 4 - in_use))
        free = draw(st.sampled_from([4 - in_use - reserved] * 3 + list(range(4 - in_use - reserved + 1))))
        idle = None if in_use or reserved else draw(st.sampled_from([0.0, 0.0, 500.0, None]) | st.floats(0, 1000))
        return SlotState(name, phase, free=free, in_use=in_use, reserved=reserved, idle_since=idle)
    return SlotState(name, phase)


@st.composite
def situations(draw):
    size = draw(st.integers(1, 12))
    settled = draw(st.booleans())
    slots = [draw(slot_states(f"w{i}", settled)) for i in range(1, size + 1)]
    rules = SizingRules(spare_legs=draw(st.sampled_from([2, 4, 4, 6]) | st.integers(2, 40)),
                        idle_retire_seconds=draw(st.sampled_from([300.0]) | st.floats(1, 600)),
                        lead_seconds=draw(st.sampled_from([0.0, 2.0]) | st.floats(0, 5)),
                        max_starting=draw(st.integers(1, 5)), max_workers=draw(st.one_of(st.none(), st.integers(1, size))))
    demand = draw(st.sampled_from([0.0, 0.0, 0.5]) | st.floats(0, 30))
    return slots, demand, rules, draw(st.sampled_from([300.0, 1000.0]) | st.floats(0, 2000))


def room(slots: list[SlotState]) -> int:
    return sum(usable_legs(s.free) for s in slots if s.phase is Phase.RUNNING) + \
        sum(usable_legs(4) for s in slots if s.phase is Phase.STARTING)


def apply(slots: list[SlotState], decisions) -> list[SlotState]:
    by_name = {s.name: s for s in slots}
    for d in decisions:
        if isinstance(d, StartWorkers):
            for name in d.slots:
                by_name[name] = SlotState(name, Phase.STARTING)
        elif isinstance(d, RetireWorker):
            by_name[d.slot] = dataclasses.replace(by_name[d.slot], phase=Phase.RETIRING)
        elif isinstance(d, CancelRetirement):
            by_name[d.slot] = dataclasses.replace(by_name[d.slot], phase=Phase.RUNNING)
    return [by_name[s.name] for s in slots]


@settings(max_examples=1000, deadline=None)
@given(situations())
def test_sizing_invariants(situation):
    slots, demand, rules, now = situation
    limit = min(len(slots), rules.max_workers or len(slots))
    decisions = decide(slots, demand, rules, now)
    by_name = {s.name: s for s in slots}
    starts = [name for d in decisions if isinstance(d, StartWorkers) for name in d.slots]
    retires = [d.slot for d in decisions if isinstance(d, RetireWorker)]
    cancels = [d.slot for d in decisions if isinstance(d, CancelRetirement)]

    # Only stopped slots are started, each once; never above the maximum.
    assert len(starts) == len(set(starts)) and all(by_name[n].phase is Phase.STOPPED for n in starts)
    after = apply(slots, decisions)
    active = sum(1 for s in after if s.phase is not Phase.STOPPED)
    assert active <= max(limit, sum(1 for s in slots if s.phase is not Phase.STOPPED))
    if starts:
        assert active <= limit
    # Only retiring workers are called back, and every one that has a leg is.
    assert all(by_name[n].phase is Phase.RETIRING for n in cancels)
    assert {s.name for s in slots if s.phase is Phase.RETIRING and s.busy} <= set(cancels)
    # A retirement: one, of a running worker idle long enough, never with a leg, never while growing,
    # and the floor holds without it.
    target = target_free_legs(demand, rules)
    assert len(retires) <= 1
    for name in retires:
        s = by_name[name]
        assert s.phase is Phase.RUNNING and s.in_use == 0 and s.reserved == 0 and s.idle_since is not None
        assert now - s.idle_since >= rules.idle_retire_seconds
        assert not starts
        assert room(after) >= target
    # The floor: met, unless every slot that may run is on its way or the start limit is reached.
    starting = sum(1 for s in after if s.phase is Phase.STARTING)
    assert (room(after) >= target or active >= limit or starting >= rules.max_starting
            or not any(s.phase is Phase.STOPPED for s in after))
    # No flapping: the same situation a moment later undoes nothing.
    again = decide(after, demand, rules, now)
    if retires:
        assert not any(isinstance(d, (StartWorkers, CancelRetirement)) for d in again), again
    if starts:
        assert not any(isinstance(d, RetireWorker) for d in again), again


# ------------------------------------------------------------------------- the pool's face of it


def test_an_elastic_pool_lists_no_stopped_slot_and_a_fixed_one_every_worker():
    from callcenter.telephony.pool import WorkerPool

    elastic = WorkerPool(4, sizing=SizingRules(spare_legs=6, legs_per_worker=2), legs=4)
    assert elastic.elastic and elastic.sizing.legs_per_worker == 4 and elastic.sizing.max_workers == 4
    assert elastic.workers == [] and [w.state for w in elastic.slots] == ["stopped"] * 4
    assert all(w.pid is None and not w.alive for w in elastic.slots)
    assert elastic.describe() == "4 stopped (elastic)"
    assert elastic.free_legs() == 0 and elastic.pick_worker() is None
    fixed = WorkerPool(3)
    assert not fixed.elastic and [w.name for w in fixed.workers] == ["w1", "w2", "w3"]
    assert fixed.describe() == "3 stopped"
