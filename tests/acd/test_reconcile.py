"""The reconciliation sweep with plain values: each divergence gives its repair once it has lasted the grace,
a healthy picture gives none, and the sweep is deterministic and idempotent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.reconcile import (
    ANSWER_UNSEEN, CALL_UNKNOWN, LEG_LOST, LEG_UNKNOWN, OFFER_WITHOUT_LEG, PHONE_BACK, PHONE_OFFLINE_READY, TALK_WITHOUT_CALL,
    WRAP_UP_OVERDUE, AgentSeen, CallSeen, LegSeen, Observation, SweepRules, sweep,
)

RULES = SweepRules(grace=3.0, max_wrap_up=600.0)
T0 = 1_800_000_000.0


def healthy(now: float = T0) -> Observation:
    """Agent 1 talking on call c1, agent 2 ringing for c2, agent 3 ready, c3 waiting in the queue."""
    return Observation(
        now=now,
        agents=(
            AgentSeen("1", "on_call", since=now - 60, call_id="c1", phone="online"),
            AgentSeen("2", "reserved", since=now - 2, call_id="c2", phone="fixed"),
            AgentSeen("3", "available", since=now - 10, phone="online"),
            AgentSeen("4", "wrap_up", since=now - 5, wrap_until=now + 300),
            AgentSeen("5", "not_ready", reason="break", since=now - 100, phone="offline"),
        ),
        calls=(
            CallSeen("c1", "connected", "1", ("L1", "A1"), "A1"),
            CallSeen("c2", "ringing", "2", ("L2", "A2"), "A2"),
            CallSeen("c3", "queued", None, ("L3",)),
        ),
        acd_calls=frozenset({"c1", "c2", "c3"}),
        legs=(LegSeen("L1", "w1", "confirmed"), LegSeen("A1", "w1", "confirmed"), LegSeen("L2", "w2", "confirmed"),
              LegSeen("A2", "w2", "early"), LegSeen("L3", "w3", "confirmed")),
        leg_workers={"L1": "w1", "A1": "w1", "L2": "w2", "A2": "w2", "L3": "w3"},
    )


def replace(obs: Observation, **changes) -> Observation:
    return Observation(**{**obs.__dict__, **changes})


def twice(obs: Observation, later: float = 3.5):
    """Sweep now and again ``later`` seconds on with the same picture; return both results."""
    first = sweep(obs, {}, RULES)
    second = sweep(replace(obs, now=obs.now + later), first.pending, RULES)
    return first, second


def test_healthy_picture_needs_no_repair():
    first, second = twice(healthy(), later=30)
    assert first.repairs == () and second.repairs == () and second.pending == {}


def kinds(result) -> list[tuple[str, str]]:
    return [(r.kind, r.subject) for r in result.repairs]


def test_offer_whose_leg_rings_nowhere_is_released_after_the_grace():
    obs = healthy()
    obs = replace(obs, legs=tuple(l for l in obs.legs if l.leg != "A2"))
    first, second = twice(obs)
    assert first.repairs == () and ("offer_without_leg", "agent:2", f"c2@{T0 - 2:.6f}") in first.pending
    assert kinds(second) == [(OFFER_WITHOUT_LEG, "agent:2")]
    repair = second.repairs[0]
    assert repair.call_id == "c2" and repair.leg == "A2" and repair.lasted == 3.5
    assert "rings on no worker" in repair.seen
    # the lost agent leg is the offer's business: no separate leg repair for it
    assert all(r.kind != LEG_LOST for r in second.repairs)


def test_offer_with_no_contact_and_offer_never_dialled():
    obs = healthy()
    gone = replace(obs, calls=obs.calls[:1] + obs.calls[2:], legs=obs.legs[:2] + obs.legs[4:])
    assert kinds(twice(gone)[1]) == [(OFFER_WITHOUT_LEG, "agent:2"), (CALL_UNKNOWN, "call:c2")]
    undialled = replace(obs, calls=(obs.calls[0], CallSeen("c2", "ringing", "2", ("L2",), None), obs.calls[2]),
                        legs=tuple(l for l in obs.legs if l.leg != "A2"))
    [repair] = [r for r in twice(undialled)[1].repairs]
    assert repair.kind == OFFER_WITHOUT_LEG and "never dialled" in repair.seen


def test_an_answer_never_reported_is_taken():
    obs = healthy()
    obs = replace(obs, legs=tuple(LegSeen("A2", "w2", "confirmed") if l.leg == "A2" else l for l in obs.legs))
    [repair] = twice(obs)[1].repairs
    assert repair.kind == ANSWER_UNSEEN and repair.leg == "A2" and repair.worker == "w2"


def test_on_call_with_no_conversation():
    obs = healthy()
    obs = replace(obs, calls=obs.calls[1:], acd_calls=frozenset({"c1", "c2", "c3"}),
                  legs=obs.legs[2:])
    second = twice(obs)[1]
    assert (TALK_WITHOUT_CALL, "agent:1") in kinds(second)
    ended = replace(healthy(), calls=(CallSeen("c1", "queued", None, ("L1",)),) + healthy().calls[1:])
    assert kinds(twice(ended)[1]) == [(TALK_WITHOUT_CALL, "agent:1"), (LEG_UNKNOWN, "leg:A1")]


def test_lost_leg_of_a_talking_call_and_of_a_queued_caller():
    obs = healthy()
    obs = replace(obs, legs=tuple(l for l in obs.legs if l.leg not in ("A1", "L3")))
    second = twice(obs)[1]
    assert kinds(second) == [(LEG_LOST, "leg:A1"), (LEG_LOST, "leg:L3")]
    assert second.repairs[0].call_id == "c1" and second.repairs[0].worker == "w1"
    assert "agent leg" in second.repairs[0].seen and "caller leg" in second.repairs[1].seen


def test_silent_worker_is_not_judged():
    obs = healthy()
    obs = replace(obs, legs=tuple(l for l in obs.legs if l.worker != "w1"), silent_workers=frozenset({"w1"}))
    first, second = twice(obs)
    assert second.repairs == () and first.pending == {}


def test_unknown_leg_is_hung_up_but_not_one_already_ending():
    obs = healthy()
    obs = replace(obs, legs=obs.legs + (LegSeen("X9", "w4", "confirmed"), LegSeen("X8", "w4", "disconnecting")))
    second = twice(obs)[1]
    assert kinds(second) == [(LEG_UNKNOWN, "leg:X9")]
    assert second.repairs[0].worker == "w4"


def test_a_new_leg_the_worker_is_still_deciding_on_is_left_to_it():
    obs = healthy()
    obs = replace(obs, legs=obs.legs + (LegSeen("X7", "w4", "incoming"),))
    assert twice(obs)[1].repairs == ()


def test_an_offer_made_again_each_second_is_a_new_offer_each_time():
    """The call flow re-offers a call it could not dial every second: never one offer lasting the grace."""
    obs = healthy()
    calls = (obs.calls[0], CallSeen("c2", "ringing", "2", ("L2",), None), obs.calls[2])
    result = sweep(replace(obs, calls=calls, legs=tuple(l for l in obs.legs if l.leg != "A2")), {}, RULES)
    for second in range(1, 8):
        now = T0 + second
        agents = tuple(AgentSeen("2", "reserved", since=now - 0.2, call_id="c2") if a.agent_id == "2" else a
                       for a in obs.agents)
        result = sweep(replace(obs, now=now, agents=agents, calls=calls,
                               legs=tuple(l for l in obs.legs if l.leg != "A2")), result.pending, RULES)
        assert result.repairs == ()
        assert len(result.pending) == 1  # only the current offer is remembered


def test_timed_wrap_up_past_its_end_and_endless_wrap_up():
    obs = healthy()
    late = replace(obs, agents=obs.agents[:3] + (AgentSeen("4", "wrap_up", since=T0 - 40, wrap_until=T0 - 10),)
                   + obs.agents[4:])
    result = sweep(late, {}, RULES)  # its end is known: no need to wait for a second sweep
    assert kinds(result) == [(WRAP_UP_OVERDUE, "agent:4")] and result.repairs[0].lasted == 10
    just = replace(late, agents=obs.agents[:3] + (AgentSeen("4", "wrap_up", since=T0 - 40, wrap_until=T0 - 1),)
                   + obs.agents[4:])
    assert sweep(just, {}, RULES).repairs == ()  # the engine's own timer may be about to end it
    endless = replace(obs, agents=obs.agents[:3] + (AgentSeen("4", "wrap_up", since=T0 - 700, wrap_until=None),)
                      + obs.agents[4:])
    [repair] = sweep(endless, {}, RULES).repairs
    assert repair.kind == WRAP_UP_OVERDUE and "limit" in repair.seen and repair.lasted == 100


def test_phone_offline_and_back():
    obs = healthy()
    offline = replace(obs, agents=obs.agents[:2] + (AgentSeen("3", "available", since=T0 - 10, phone="offline"),)
                      + obs.agents[3:])
    assert kinds(twice(offline)[1]) == [(PHONE_OFFLINE_READY, "agent:3")]
    back = replace(obs, agents=obs.agents[:2] + (AgentSeen("3", "not_ready", "phone_offline", T0 - 10, phone="online"),)
                   + obs.agents[3:])
    assert kinds(twice(back)[1]) == [(PHONE_BACK, "agent:3")]
    assert sweep(replace(back, now=T0 + 10), sweep(back, {}, RULES).pending,
                 SweepRules(grace=3, ready_when_back=False)).repairs == ()
    # other reasons are the agent's own: left alone
    other = replace(obs, agents=obs.agents[:2] + (AgentSeen("3", "not_ready", "lunch", T0 - 10, phone="online"),)
                    + obs.agents[3:])
    assert twice(other)[1].repairs == ()


def test_a_divergence_that_heals_before_the_grace_is_forgotten():
    obs = healthy()
    broken = replace(obs, legs=tuple(l for l in obs.legs if l.leg != "A2"))
    first = sweep(broken, {}, RULES)
    assert first.pending
    healed = sweep(replace(obs, now=T0 + 2), first.pending, RULES)
    assert healed.repairs == () and healed.pending == {}
    # and a new episode waits the whole grace again
    again = sweep(replace(broken, now=T0 + 4), healed.pending, RULES)
    assert again.repairs == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["A1", "L1", "L2", "A2", "L3"]), unique=True),
       st.floats(min_value=0, max_value=30))
def test_sweep_is_deterministic_and_never_repairs_what_it_was_not_shown(drop, later):
    obs = healthy()
    obs = replace(obs, legs=tuple(l for l in obs.legs if l.leg not in drop))
    a = sweep(obs, {}, RULES)
    b = sweep(obs, {}, RULES)
    assert a == b
    later_result = sweep(replace(obs, now=T0 + later), a.pending, RULES)
    for repair in later_result.repairs:
        assert repair.lasted >= RULES.grace
        assert repair.leg in drop or repair.call_id in ("c1", "c2", "c3") or repair.agent_id
    # every dropped leg is accounted for once the grace has passed, exactly once
    if later >= RULES.grace:
        covered = {r.leg for r in later_result.repairs}
        assert set(drop) <= covered
        assert len([r.leg for r in later_result.repairs if r.leg]) == len(covered)
