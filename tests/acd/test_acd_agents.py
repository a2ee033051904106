"""Agent states, wrap-up, ring-no-answer, missed offers, rejections, races and bad input."""

from __future__ import annotations

import math

import pytest
from acd_support import cancels, make, offers, rejected, states

from acd import (
    AcdError,
    AgentBecameAvailable,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentWentNotReady,
    CallAbandoned,
    CallEnded,
    CallQueued,
    EventRejected,
    InvalidEvent,
    OfferAccepted,
    OfferRejected,
    SkillsChanged,
    Tick,
    TimeWentBackwards,
    UnknownAgent,
    UnknownCall,
    UnknownQueue,
    UnknownReason,
    WrapUpEnded,
)


def test_states_and_time_in_state():
    eng = make(queues={"q": {"wrapup_seconds": 30}})
    assert eng.agent_state("a") == ("logged_out", None)
    assert states(eng.handle(AgentLoggedIn("a"), 0)) == [("a", "available", None)]
    assert states(eng.handle(CallQueued("c", "q"), 10)) == [("a", "reserved", None)]
    assert states(eng.handle(OfferAccepted("c", "a"), 12)) == [("a", "on_call", None)]
    assert states(eng.handle(CallEnded("c"), 72)) == [("a", "wrap_up", None)]
    assert eng.agent_stats("a", 80).time_in_state == 8
    assert states(eng.tick(102)) == [("a", "available", None)]
    assert states(eng.handle(AgentWentNotReady("a", "lunch"), 110)) == [("a", "not_ready", "lunch")]
    s = eng.agent_stats("a", 170)
    assert (s.state, s.reason, s.time_in_state) == ("not_ready", "lunch", 60)
    assert (s.talk, s.wrap, s.reserved, s.available) == (60, 30, 2, 10 + 8)
    assert s.not_ready_by_reason == {"lunch": 60}
    assert s.calls == 1


def test_wrap_up_ends_by_timer_or_by_agent():
    eng = make(queues={"q": {"wrapup_seconds": 30}})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c1", "q"), 1)
    eng.handle(OfferAccepted("c1", "a"), 2)
    eng.handle(CallEnded("c1"), 3)
    assert eng.next_deadline() == 33
    eng.handle(CallQueued("c2", "q"), 4)  # waits: the agent is wrapping up
    out = eng.handle(WrapUpEnded("a"), 10)
    assert states(out) == [("a", "available", None), ("a", "reserved", None)]
    assert offers(out) == [("c2", "a")]
    assert eng.queue_stats("q").avg_wrap == 7
    assert rejected(eng.handle(WrapUpEnded("a"), 11)) == ["agent 'a' is not in wrap-up (state reserved)"]


def test_agent_became_available_during_wrap_up_ends_it():
    eng = make(queues={"q": {"wrapup_seconds": 30}})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c1", "q"), 1)
    eng.handle(OfferAccepted("c1", "a"), 1)
    eng.handle(CallEnded("c1"), 2)
    assert states(eng.handle(AgentBecameAvailable("a"), 5)) == [("a", "available", None)]
    assert eng.tick(40) == []  # the old wrap-up timer no longer fires
    assert eng.next_deadline() is None


def test_ring_no_answer_returns_call_to_head_keeping_its_place():
    eng = make(agents={"a": (("q",), {}), "b": (("q",), {})}, max_missed_offers=3)
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("first", "q"), 1)  # offered to a
    eng.handle(CallQueued("second", "q"), 2)
    eng.handle(CallQueued("third", "q"), 3)
    out = eng.tick(11)
    assert cancels(out) == [("first", "a", "ring_timeout")]
    # a was alone: it is offered the same call again (its place at the head was kept)
    assert offers(out) == [("first", "a")]
    eng.handle(AgentLoggedIn("b"), 12)  # b takes "second"
    out = eng.tick(21)  # a misses "first" again; b is busy so a gets it again
    assert offers(out) == [("first", "a")]
    assert eng.queue_stats("q").ring_no_answer == 2
    assert eng.call_info("first")["enqueued_at"] == 1


def test_missed_call_goes_to_another_free_agent_first():
    eng = make(agents={"a": (("q",), {}), "b": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 1)  # to a
    eng.handle(AgentLoggedIn("b"), 2)
    out = eng.tick(11)
    assert offers(out) == [("c", "b")]
    offer = [x for x in out if type(x).__name__ == "OfferCall"][0]
    assert offer.explanation.passed_over == ("a",)  # a was free longer but let it ring out


def test_consecutive_misses_make_agent_not_ready_no_answer():
    eng = make(max_missed_offers=2)
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 0)
    eng.tick(10)  # first miss: offered again
    out = eng.tick(20)  # second miss
    assert ("a", "not_ready", "no_answer") in states(out)
    assert eng.agent_state("a") == ("not_ready", "no_answer")
    assert eng.call_info("c")["state"] == "waiting"
    assert eng.agent_stats("a").missed_offers == 2


def test_answering_resets_the_consecutive_miss_count():
    eng = make(max_missed_offers=2)
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c1", "q"), 0)
    eng.tick(10)  # miss 1, re-offered
    eng.handle(OfferAccepted("c1", "a"), 11)
    eng.handle(CallEnded("c1"), 12)
    eng.handle(CallQueued("c2", "q"), 13)
    out = eng.tick(23)  # one miss since the answer: still available, offered again
    assert offers(out) == [("c2", "a")]


def test_rejected_offer_counts_as_a_miss_and_requeues():
    eng = make(agents={"a": (("q",), {}), "b": (("q",), {})}, max_missed_offers=1)
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(AgentLoggedIn("b"), 1)
    eng.handle(CallQueued("c", "q"), 2)  # to a (idle longest)
    out = eng.handle(OfferRejected("c", "a"), 3)
    assert cancels(out) == []  # the phone already said no
    assert ("a", "not_ready", "no_answer") in states(out)
    assert offers(out) == [("c", "b")]


def test_caller_hanging_up_while_ringing_releases_agent_at_once():
    eng = make(agents={"a": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c1", "q"), 1)
    eng.handle(CallQueued("c2", "q"), 2)
    out = eng.handle(CallAbandoned("c1"), 3)
    assert cancels(out) == [("c1", "a", "caller_hung_up")]
    assert offers(out) == [("c2", "a")]
    assert eng.agent_stats("a").missed_offers == 0
    assert eng.queue_stats("q").abandoned == 1
    assert rejected(eng.handle(OfferAccepted("c1", "a"), 4)) == ["unknown call 'c1' (it may have been abandoned)"]


def test_not_ready_while_ringing_requeues_without_a_miss():
    eng = make(agents={"a": (("q",), {}), "b": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 1)
    out = eng.handle(AgentWentNotReady("a", "break"), 2)
    assert cancels(out) == [("c", "a", "agent_not_ready")]
    assert eng.call_info("c")["state"] == "waiting"
    assert offers(eng.handle(AgentLoggedIn("b"), 3)) == [("c", "b")]
    assert eng.agent_stats("a").missed_offers == 0


def test_not_ready_during_a_call_applies_after_wrap_up():
    eng = make(queues={"q": {"wrapup_seconds": 10}})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 0)
    eng.handle(OfferAccepted("c", "a"), 1)
    assert eng.handle(AgentWentNotReady("a", "lunch"), 2) == []
    assert eng.agent_state("a") == ("on_call", None)
    eng.handle(CallEnded("c"), 5)
    assert states(eng.tick(15)) == [("a", "not_ready", "lunch")]


def test_logout_while_ringing_requeues_and_logout_on_call_is_refused():
    eng = make(agents={"a": (("q",), {}), "b": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 1)
    out = eng.handle(AgentLoggedOut("a"), 2)
    assert cancels(out) == [("c", "a", "agent_logged_out")]
    assert eng.agent_state("a") == ("logged_out", None)
    eng.handle(AgentLoggedIn("b"), 3)
    eng.handle(OfferAccepted("c", "b"), 4)
    assert rejected(eng.handle(AgentLoggedOut("b"), 5)) == ["agent 'b' is on a call; log out after it ends"]


def test_stale_and_racing_events_are_rejected_without_change():
    eng = make(agents={"a": (("q",), {}), "b": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 1)
    before = eng.snapshot()
    for ev in (
        OfferAccepted("c", "b"),  # not offered to b
        OfferAccepted("nope", "a"),
        CallEnded("nope"),
        CallAbandoned("nope"),
        CallQueued("c", "q"),  # duplicate id
        AgentLoggedIn("a"),
        AgentLoggedOut("b"),
        AgentBecameAvailable("b"),
        WrapUpEnded("a"),
    ):
        out = eng.handle(ev, 1)
        assert len(out) == 1 and isinstance(out[0], EventRejected) and out[0].event == ev
    assert eng.snapshot() == before


@pytest.mark.parametrize(
    "event, error, text",
    [
        (CallQueued("c", "nosuch"), UnknownQueue, "unknown queue 'nosuch' (known: q)"),
        (AgentLoggedIn("ghost"), UnknownAgent, "unknown agent 'ghost'"),
        (AgentLoggedIn("a", queues=("q", "zz")), UnknownQueue, "unknown queue 'zz'"),
        (OfferAccepted("c", "ghost"), UnknownAgent, "unknown agent 'ghost'"),
        (AgentWentNotReady("a", "nap"), UnknownReason, "unknown not-ready reason 'nap'"),
        (CallQueued("c", "q", priority=1.5), InvalidEvent, "priority must be an integer"),
        (CallQueued("c", "q", skills={"fr": 9}), InvalidEvent, "level must be an integer from 1 to 5"),
        (SkillsChanged("a", {"fr": 0}), InvalidEvent, "level must be an integer from 1 to 5"),
        (CallQueued("", "q"), InvalidEvent, "call_id must be a non-empty string"),
    ],
)
def test_unknown_ids_raise_clear_errors_and_change_nothing(event, error, text):
    eng = make(queues={"q": {}})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c0", "q"), 1)
    before = eng.snapshot()
    with pytest.raises(error) as info:
        eng.handle(event, 50)  # a due ring timeout must not run either
    assert isinstance(info.value, AcdError)
    assert text in str(info.value)
    assert eng.snapshot() == before


def test_time_must_not_go_backwards_or_be_nan():
    eng = make()
    eng.handle(Tick(), 10)
    with pytest.raises(TimeWentBackwards):
        eng.handle(Tick(), 9.5)
    with pytest.raises(InvalidEvent):
        eng.tick(math.nan)
    with pytest.raises(InvalidEvent):
        eng.handle(Tick(), math.inf)
    with pytest.raises(InvalidEvent):
        eng.handle("not an event", 11)  # type: ignore[arg-type]
    assert eng.tick(10) == []  # same time is fine
    assert eng.handle(Tick(), 11) == []


def test_queries_on_unknown_ids_raise():
    eng = make()
    with pytest.raises(UnknownCall):
        eng.explain("zz")
    with pytest.raises(UnknownCall):
        eng.position("zz")
    with pytest.raises(UnknownQueue):
        eng.queue_stats("zz")
    with pytest.raises(UnknownAgent):
        eng.agent_stats("zz")


def test_next_deadline_tracks_the_earliest_live_timer():
    eng = make(queues={"q": {"wrapup_seconds": 20, "ring_timeout_seconds": 15}})
    assert eng.next_deadline() is None
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 2)
    assert eng.next_deadline() == 17
    eng.handle(OfferAccepted("c", "a"), 3)
    assert eng.next_deadline() is None  # the ring timer is stale now
    eng.handle(CallEnded("c"), 4)
    assert eng.next_deadline() == 24


def test_timers_take_effect_at_their_own_time_even_if_ticked_late():
    early = make(queues={"q": {"wrapup_seconds": 10}}, agents={"a": (("q",), {}), "b": (("q",), {})})
    late = make(queues={"q": {"wrapup_seconds": 10}}, agents={"a": (("q",), {}), "b": (("q",), {})})
    for eng, ticks in ((early, [5, 11, 12, 20, 31, 40]), (late, [])):
        eng.handle(AgentLoggedIn("a"), 0)
        eng.handle(AgentLoggedIn("b"), 0.5)
        eng.handle(CallQueued("c", "q"), 1)
        eng.handle(OfferAccepted("c", "a"), 2)
        eng.handle(CallEnded("c"), 3)  # a wraps up until 13
        for t in ticks:
            eng.tick(t)
        eng.handle(CallQueued("d", "q"), 50)
    assert early.snapshot() == late.snapshot()
