"""Calls for one named agent: blind transfers to an agent and an agent's own dial."""

from __future__ import annotations

from acd import (
    AcdEngine,
    AcdSettings,
    AgentLoggedIn,
    AgentSettings,
    AgentStateChanged,
    AgentBecameAvailable,
    AgentWentNotReady,
    CallEnded,
    CallQueued,
    CancelOffer,
    AnnouncePosition,
    DialCustomer,
    DirectCallRequested,
    OverflowCall,
    OverflowSettings,
    EventRejected,
    OfferAccepted,
    OfferCall,
    QueueSettings,
    WrapUpEnded,
    event_from_dict,
    event_to_dict,
)


def engine(wrapup: float = 30.0, max_missed: int = 3) -> AcdEngine:
    eng = AcdEngine(AcdSettings(
        max_missed_offers=max_missed,
        queues={"q": QueueSettings(ring_timeout_seconds=10, wrapup_seconds=wrapup)},
        agents={"a": AgentSettings(queues=("q",)), "b": AgentSettings(queues=("q",))},
    ))
    eng.handle(AgentLoggedIn("a"), 0.0)
    eng.handle(AgentLoggedIn("b"), 0.0)
    return eng


def kinds(actions):
    return [type(x).__name__ for x in actions]


def test_direct_call_goes_to_the_named_agent_even_when_routing_would_pick_another():
    eng = engine()
    out = eng.handle(DirectCallRequested("t1", "b", "q", caller="+8613800000000"), 1.0)
    [offer] = [x for x in out if isinstance(x, OfferCall)]
    assert offer.agent_id == "b" and offer.explanation.trigger == "directed" and offer.callback_number is None
    assert eng.agent_state("b")[0] == "reserved"
    assert eng.handle(OfferAccepted("t1", "b"), 2.0)[-1] == AgentStateChanged("b", "on_call", None, "reserved")
    assert eng.handle(CallEnded("t1"), 9.0)[-1].state == "wrap_up"


def test_direct_call_to_a_busy_or_not_ready_agent_is_rejected_and_changes_nothing():
    eng = engine()
    eng.handle(AgentWentNotReady("b", "break"), 1.0)
    [rejected] = eng.handle(DirectCallRequested("t1", "b", "q"), 2.0)
    assert isinstance(rejected, EventRejected) and "not ready" in rejected.reason
    eng.handle(CallQueued("c1", "q"), 3.0)  # goes to a
    [rejected] = eng.handle(DirectCallRequested("t2", "a", "q"), 4.0)
    assert isinstance(rejected, EventRejected) and "reserved" in rejected.reason
    [rejected] = eng.handle(DirectCallRequested("t3", "a", "q", number="+8613800000000"), 4.0)
    assert isinstance(rejected, EventRejected), "an agent with a call ringing cannot dial"


def test_unanswered_transfer_waits_in_the_queue_for_the_next_agent():
    eng = engine(max_missed=1)
    eng.handle(AgentWentNotReady("b", "break"), 0.5)
    eng.handle(CallQueued("c1", "q"), 0.6)  # a is busy with another caller
    eng.handle(OfferAccepted("c1", "a"), 0.7)
    eng.handle(AgentBecameAvailable("b"), 0.8)
    eng.handle(DirectCallRequested("t1", "b", "q"), 1.0)
    out = eng.tick(11.5)
    assert CancelOffer("t1", "b", "ring_timeout") in out
    [call] = [c for c in eng.snapshot()["calls"] if c["id"] == "t1"]
    assert call["queue"] == "q" and call["state"] == "waiting" and not call["directed"], \
        "the caller is not lost: it waits like any caller"
    assert eng.agent_state("b") == ("not_ready", "no_answer")
    eng.handle(CallEnded("c1"), 12.0)
    out = eng.handle(WrapUpEnded("a"), 13.0)
    assert [x.agent_id for x in out if isinstance(x, OfferCall)] == ["a"], "the next free agent gets it"


def test_dial_from_wrap_up_rings_the_agent_then_the_customer():
    eng = engine()
    eng.handle(CallQueued("c1", "q"), 1.0)
    eng.handle(OfferAccepted("c1", "a"), 2.0)
    eng.handle(CallEnded("c1"), 3.0)
    assert eng.agent_state("a")[0] == "wrap_up"
    out = eng.handle(DirectCallRequested("d1", "a", "q", number="+8613800000000"), 4.0)
    [offer] = [x for x in out if isinstance(x, OfferCall)]
    assert offer.agent_id == "a" and offer.callback_number == "+8613800000000"
    assert eng.handle(OfferAccepted("d1", "a"), 5.0)[-1] == DialCustomer("d1", "a", "+8613800000000")
    assert eng.agent_state("a")[0] == "on_call"


def test_unanswered_own_dial_is_dropped_not_offered_to_anyone_else():
    eng = engine()
    eng.handle(DirectCallRequested("d1", "a", "q", number="+8613800000000"), 1.0)
    out = eng.tick(11.5)
    assert CancelOffer("d1", "a", "ring_timeout") in out
    assert not [x for x in out if isinstance(x, OfferCall)], "nobody else rings that customer unasked"
    assert eng.agent_state("a")[0] == "available"
    assert eng.snapshot()["calls"] == []


def test_event_round_trips_through_the_log_form():
    ev = DirectCallRequested("d1", "a", "q", number="+8613800000000")
    assert event_from_dict(event_to_dict(ev)) == ev


def test_unanswered_transfer_gets_the_queues_overflow_and_announcements_from_then_on():
    eng = AcdEngine(AcdSettings(
        queues={"q": QueueSettings(ring_timeout_seconds=10, wrapup_seconds=0, announce_every_seconds=30,
                                   overflow=OverflowSettings(after_seconds=60, target="voicemail"))},
        agents={"a": AgentSettings(queues=("q",)), "b": AgentSettings(queues=("q",))},
        max_missed_offers=1,
    ))
    eng.handle(AgentLoggedIn("b"), 0.0)
    eng.handle(DirectCallRequested("t1", "b", "q"), 1.0)
    assert CancelOffer("t1", "b", "ring_timeout") in eng.tick(11.0)  # b never answers; nobody else is in
    announced = eng.tick(41.0)
    assert [x for x in announced if isinstance(x, AnnouncePosition) and x.call_id == "t1"], "hears its position"
    assert OverflowCall("t1", "q", "voicemail", "max_wait") in eng.tick(71.0), "and overflows like any caller"
    assert not eng.has_call("t1")


def test_a_not_ready_asked_during_a_call_holds_when_the_agents_own_dial_goes_unanswered():
    eng = engine()
    eng.handle(CallQueued("c1", "q"), 1.0)
    [agent] = [x.agent_id for x in eng.handle(OfferAccepted("c1", "a"), 2.0) if isinstance(x, AgentStateChanged)]
    eng.handle(AgentWentNotReady(agent, "lunch"), 3.0)  # pending until the call and its wrap-up end
    eng.handle(CallEnded("c1"), 4.0)
    assert eng.agent_state(agent)[0] == "wrap_up"
    eng.handle(DirectCallRequested("d1", agent, "q", number="+8613800000000"), 5.0)
    eng.tick(15.5)  # the agent does not pick up their own phone
    assert eng.agent_state(agent) == ("not_ready", "lunch")
