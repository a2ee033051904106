"""Routing: priority, FIFO, strategies, skills and their relaxation, several queues per agent."""

from __future__ import annotations

import pytest
from acd_support import make, offers

from acd import (
    AgentBecameAvailable,
    AgentLoggedIn,
    AgentWentNotReady,
    CallEnded,
    CallQueued,
    OfferAccepted,
    OfferCall,
    SkillsChanged,
)


def test_first_call_goes_to_free_agent_with_explanation():
    eng = make()
    eng.handle(AgentLoggedIn("a"), 0)
    out = eng.handle(CallQueued("c1", "q"), 1)
    (offer,) = [a for a in out if isinstance(a, OfferCall)]
    assert (offer.call_id, offer.agent_id, offer.queue, offer.ring_timeout) == ("c1", "a", "q", 10.0)
    assert offer.explanation.trigger == "call"
    assert offer.explanation.strategy == "longest_idle"
    assert offer.callback_number is None


def test_priority_first_then_fifo_within_priority():
    eng = make()
    for i, prio in enumerate([0, 0, 5, 0, 5, 1]):
        assert offers(eng.handle(CallQueued(f"c{i}", "q", priority=prio), i)) == []
    pending = offers(eng.handle(AgentLoggedIn("a"), 10))
    served = []
    t = 10.0
    while pending:
        [(cid, aid)] = pending
        served.append(cid)
        eng.handle(OfferAccepted(cid, aid), t + 1)
        pending = offers(eng.handle(CallEnded(cid), t + 2))  # no wrap-up: the next call at once
        t += 3
    assert served == ["c2", "c4", "c5", "c0", "c1", "c3"]


def _free_order(strategy: str, prepare) -> list[str]:
    """Queue three calls one after another and return which agent got each."""
    eng = make(
        queues={"q": {"strategy": strategy}},
        agents={"a1": (("q",), {}), "a2": (("q",), {}), "a3": (("q",), {})},
    )
    prepare(eng)
    t = eng.now + 1
    got = []
    for i in range(3):
        got += [aid for _, aid in offers(eng.handle(CallQueued(f"x{i}", "q"), t))]
        t += 1
    return got


def test_longest_idle_prefers_agent_free_the_longest():
    def prepare(eng):
        eng.handle(AgentLoggedIn("a2"), 0)
        eng.handle(AgentLoggedIn("a3"), 5)
        eng.handle(AgentLoggedIn("a1"), 9)

    assert _free_order("longest_idle", prepare) == ["a2", "a3", "a1"]


def test_longest_idle_counts_from_end_of_wrap_up():
    eng = make(queues={"q": {"wrapup_seconds": 30}}, agents={"a1": (("q",), {}), "a2": (("q",), {})})
    eng.handle(AgentLoggedIn("a1"), 0)
    eng.handle(AgentLoggedIn("a2"), 1)
    assert offers(eng.handle(CallQueued("c1", "q"), 2)) == [("c1", "a1")]
    eng.handle(OfferAccepted("c1", "a1"), 3)
    eng.handle(CallEnded("c1"), 10)  # a1 wraps up until 40
    eng.tick(40)
    # a2 has been free since 1, a1 only since 40
    assert offers(eng.handle(CallQueued("c2", "q"), 41)) == [("c2", "a2")]


def test_round_robin_rotates_through_members():
    eng = make(queues={"q": {"strategy": "round_robin"}}, agents={f"a{i}": (("q",), {}) for i in range(3)})
    for i in range(3):
        eng.handle(AgentLoggedIn(f"a{2 - i}"), i)  # login order must not matter
    got = []
    t = 20.0
    for i in range(6):
        [(cid, aid)] = offers(eng.handle(CallQueued(f"c{i}", "q"), t))
        got.append(aid)
        eng.handle(OfferAccepted(cid, aid), t)
        eng.handle(CallEnded(cid), t + 0.5)
        t += 1
    assert got == ["a0", "a1", "a2", "a0", "a1", "a2"]


def test_fewest_calls_prefers_agent_with_fewest_answered():
    eng = make(queues={"q": {"strategy": "fewest_calls"}}, agents={"a1": (("q",), {}), "a2": (("q",), {})})
    eng.handle(AgentLoggedIn("a1"), 0)
    eng.handle(AgentLoggedIn("a2"), 1)
    t = 2.0
    for i in range(2):  # a1 takes two calls while a2 is not ready
        if i == 0:
            eng.handle(AgentWentNotReady("a2", "break"), t)
        [(cid, aid)] = offers(eng.handle(CallQueued(f"c{i}", "q"), t))
        assert aid == "a1"
        eng.handle(OfferAccepted(cid, aid), t)
        eng.handle(CallEnded(cid), t + 1)
        t += 2
    eng.handle(AgentBecameAvailable("a2"), t)  # a2 is now the most recently idle, but has 0 calls
    assert offers(eng.handle(CallQueued("c9", "q"), t + 1)) == [("c9", "a2")]


def test_least_talk_time_prefers_agent_with_least_talk():
    eng = make(queues={"q": {"strategy": "least_talk_time"}}, agents={"a1": (("q",), {}), "a2": (("q",), {})})
    eng.handle(AgentLoggedIn("a1"), 0)
    eng.handle(AgentLoggedIn("a2"), 0.5)
    [(c, a)] = offers(eng.handle(CallQueued("long", "q"), 1))
    assert a == "a1"
    eng.handle(OfferAccepted("long", "a1"), 1)
    [(c, a)] = offers(eng.handle(CallQueued("short", "q"), 2))
    assert a == "a2"
    eng.handle(OfferAccepted("short", "a2"), 2)
    eng.handle(CallEnded("short"), 5)  # a2 talked 3 s and is free since 5
    eng.handle(CallEnded("long"), 200)  # a1 talked 199 s and is free since 200
    assert offers(eng.handle(CallQueued("next", "q"), 201)) == [("next", "a2")]


def test_skills_required_and_levels():
    eng = make(
        queues={"q": {"required_skills": {"fr": 3}}},
        agents={"none": (("q",), {}), "low": (("q",), {"fr": 2}), "good": (("q",), {"fr": 4})},
    )
    eng.handle(AgentLoggedIn("none"), 0)
    eng.handle(AgentLoggedIn("low"), 1)
    assert offers(eng.handle(CallQueued("c1", "q"), 2)) == []
    out = eng.handle(AgentLoggedIn("good"), 3)
    assert offers(out) == [("c1", "good")]


def test_per_call_skills_add_to_queue_requirement():
    eng = make(
        queues={"q": {"required_skills": {"billing": 1}}},
        agents={"en": (("q",), {"billing": 5, "en": 5}), "de": (("q",), {"billing": 2, "de": 4})},
    )
    eng.handle(AgentLoggedIn("en"), 0)
    eng.handle(AgentLoggedIn("de"), 1)
    assert offers(eng.handle(CallQueued("c1", "q", skills={"de": 3}), 2)) == [("c1", "de")]


def test_relaxation_lowers_levels_after_configured_waits_and_keeps_place():
    eng = make(
        queues={"q": {"required_skills": {"fr": 4}, "relax_after_seconds": (30, 90)}},
        agents={"a": (("q",), {"fr": 2}), "b": (("q",), {})},
    )
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(AgentLoggedIn("b"), 0)
    assert offers(eng.handle(CallQueued("old", "q"), 0)) == []
    assert eng.next_deadline() == 30
    assert offers(eng.tick(29.9)) == []
    out = eng.tick(30)  # fr 4 -> 3: nobody yet
    assert offers(out) == []
    assert eng.call_info("old")["step"] == 1
    assert eng.next_deadline() == 90
    eng.handle(CallQueued("new", "q"), 60)
    out = eng.tick(90)  # fr 3 -> 2: "a" qualifies; both calls relaxed to the same level? no: "new" is at step 1
    assert offers(out) == [("old", "a")]
    assert eng.call_info("new")["state"] == "waiting"


def test_relaxation_to_zero_drops_the_requirement():
    eng = make(queues={"q": {"required_skills": {"fr": 1}, "relax_after_seconds": (10,)}}, agents={"b": (("q",), {})})
    eng.handle(AgentLoggedIn("b"), 0)
    assert offers(eng.handle(CallQueued("c", "q"), 0)) == []
    out = eng.tick(10)
    assert offers(out) == [("c", "b")]
    assert [a for a in out if isinstance(a, OfferCall)][0].explanation.requirement == ()


def test_relaxed_call_keeps_its_place_ahead_of_later_calls():
    eng = make(
        queues={"q": {"required_skills": {"fr": 3}, "relax_after_seconds": (20,)}},
        agents={"a": (("q",), {"fr": 2})},
    )
    eng.handle(CallQueued("first", "q"), 0)
    eng.handle(CallQueued("second", "q"), 5)
    eng.tick(30)  # both relaxed to fr 2
    assert eng.waiting_calls("q") == ["first", "second"]
    assert offers(eng.handle(AgentLoggedIn("a"), 31)) == [("first", "a")]


def test_agent_in_several_queues_gets_oldest_highest_priority_eligible_call():
    eng = make(
        queues={"sales": {}, "support": {}, "vip": {"required_skills": {"gold": 1}}},
        agents={"a": (("sales", "support", "vip"), {})},
    )
    eng.handle(CallQueued("s1", "sales"), 0)
    eng.handle(CallQueued("p1", "support"), 1)
    eng.handle(CallQueued("v1", "vip", priority=9), 2)  # a lacks "gold": not eligible
    eng.handle(CallQueued("p2", "support", priority=1), 3)
    out = eng.handle(AgentLoggedIn("a"), 4)
    assert offers(out) == [("p2", "a")]
    offer = [x for x in out if isinstance(x, OfferCall)][0]
    assert offer.explanation.trigger == "agent"
    eng.handle(OfferAccepted("p2", "a"), 5)
    out = eng.handle(CallEnded("p2"), 6)
    assert offers(out) == [("s1", "a")]  # same priority: the oldest across queues


def test_skills_changed_makes_agent_eligible():
    eng = make(queues={"q": {"required_skills": {"es": 2}}}, agents={"a": (("q",), {"es": 1})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 1)
    assert offers(eng.handle(SkillsChanged("a", {"es": 3}), 2)) == [("c", "a")]


def test_login_to_chosen_queues_overrides_configured_ones():
    eng = make(queues={"q1": {}, "q2": {}}, agents={"a": (("q1",), {})})
    eng.handle(CallQueued("c2", "q2"), 0)
    assert offers(eng.handle(AgentLoggedIn("a", queues=("q2",)), 1)) == [("c2", "a")]


@pytest.mark.parametrize("strategy", ["longest_idle", "round_robin", "fewest_calls", "least_talk_time"])
def test_every_strategy_serves_everyone_eventually(strategy):
    eng = make(queues={"q": {"strategy": strategy}}, agents={f"a{i}": (("q",), {}) for i in range(3)})
    for i in range(3):
        eng.handle(AgentLoggedIn(f"a{i}"), 0)
    t = 1.0
    answered = 0
    for i in range(20):
        for cid, aid in offers(eng.handle(CallQueued(f"c{i}", "q"), t)):
            eng.handle(OfferAccepted(cid, aid), t)
            eng.handle(CallEnded(cid), t + 0.5)
            answered += 1
        t += 1
    assert answered == 20
    assert eng.queue_stats("q").answered == 20
