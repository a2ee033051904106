"""Queue rules: max length, max wait and overflow targets, no-agent behaviour, callbacks, announcements."""

from __future__ import annotations

from acd_support import make, offers

from acd import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentWentNotReady,
    AnnouncePosition,
    CallAbandoned,
    CallbackRequested,
    CallEnded,
    CallQueued,
    DialCustomer,
    OfferAccepted,
    OfferCall,
    OfferCallback,
    OverflowCall,
    RefuseCall,
)


def _of(kind, actions):
    return [a for a in actions if isinstance(a, kind)]


def test_max_length_refuses_or_overflows():
    eng = make(queues={"q": {"max_length": 2}})
    eng.handle(CallQueued("c1", "q"), 0)
    eng.handle(CallQueued("c2", "q"), 1)
    out = eng.handle(CallQueued("c3", "q"), 2)
    assert out == [RefuseCall("c3", "q", "full")]
    assert not eng.has_call("c3")
    assert eng.queue_stats("q").refused == 1

    eng = make(queues={"q": {"max_length": 1, "overflow": (600, "voicemail")}, "other": {}})
    eng.handle(CallQueued("c1", "q"), 0)
    assert eng.handle(CallQueued("c2", "q"), 1) == [OverflowCall("c2", "q", "voicemail", "full")]
    assert eng.queue_stats("q").diverted == 1


def test_overflow_to_another_queue_when_full_places_the_call_there():
    eng = make(queues={"q": {"max_length": 1, "overflow": (600, "queue:backup")}, "backup": {}}, agents={"b": (("backup",), {})})
    eng.handle(AgentLoggedIn("b"), 0)
    eng.handle(CallQueued("c1", "q"), 1)
    out = eng.handle(CallQueued("c2", "q"), 2)
    assert _of(OverflowCall, out) == [OverflowCall("c2", "q", "queue:backup", "full")]
    assert offers(out) == [("c2", "b")]
    assert eng.call_info("c2")["queue"] == "backup"
    assert eng.queue_stats("backup").overflowed_in == 1


def test_max_wait_overflow_targets():
    for target in ("voicemail", "hangup"):
        eng = make(queues={"q": {"overflow": (60, target)}})
        eng.handle(CallQueued("c", "q"), 0)
        assert eng.next_deadline() == 60
        assert eng.tick(59.9) == []
        assert eng.tick(60) == [OverflowCall("c", "q", target, "max_wait")]
        assert not eng.has_call("c")
        st = eng.queue_stats("q")
        assert (st.overflowed, st.waiting, st.abandoned) == (1, 0, 0)


def test_max_wait_overflow_to_queue_is_a_fresh_wait_there():
    eng = make(queues={"q": {"overflow": (60, "queue:r")}, "r": {"overflow": (30, "hangup")}}, agents={"x": (("r",), {})})
    eng.handle(CallQueued("c", "q"), 0)
    out = eng.tick(60)
    assert out == [OverflowCall("c", "q", "queue:r", "max_wait")]
    assert eng.call_info("c")["queue"] == "r" and eng.call_info("c")["enqueued_at"] == 60
    assert eng.next_deadline() == 90
    assert offers(eng.handle(AgentLoggedIn("x"), 70)) == [("c", "x")]


def test_max_wait_callback_target_offers_callback_and_keeps_the_call():
    eng = make(queues={"q": {"overflow": (60, "callback")}})
    eng.handle(CallQueued("c", "q"), 0)
    assert eng.tick(60) == [OfferCallback("c", "q")]
    assert eng.call_info("c")["state"] == "waiting"
    assert eng.next_deadline() is None  # offered once only


def test_overflow_due_while_ringing_waits_for_the_offer_to_end():
    eng = make(queues={"q": {"overflow": (12, "voicemail"), "ring_timeout_seconds": 10}}, max_missed_offers=5)
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c1", "q"), 0)  # ring until 10 -> re-offered until 20
    eng.tick(10)
    assert eng.tick(15) == []  # max wait reached at 12, but the phone is ringing
    out = eng.tick(20)  # ring-no-answer: now the overflow applies instead of a new offer
    assert _of(OverflowCall, out) == [OverflowCall("c1", "q", "voicemail", "max_wait")]
    assert offers(out) == []


def test_when_no_agents():
    eng = make(queues={"q": {"when_no_agents": "refuse"}})
    assert eng.handle(CallQueued("c", "q"), 0) == [RefuseCall("c", "q", "no_agents")]
    eng.handle(AgentLoggedIn("a"), 1)
    eng.handle(AgentWentNotReady("a", "break"), 2)
    assert eng.handle(CallQueued("c2", "q"), 3) == []  # logged in (even paused) counts

    eng = make(queues={"q": {"when_no_agents": "overflow", "overflow": (600, "voicemail")}})
    assert eng.handle(CallQueued("c", "q"), 0) == [OverflowCall("c", "q", "voicemail", "no_agents")]

    eng = make(queues={"q": {"when_no_agents": "join"}})
    assert eng.handle(CallQueued("c", "q"), 0) == []
    assert eng.call_info("c")["state"] == "waiting"


def test_leave_when_empty_removes_waiting_callers_but_not_callbacks():
    eng = make(queues={"q": {"leave_when_empty": True}}, agents={"a": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("ring", "q"), 1)  # ringing a
    eng.handle(CallQueued("wait", "q"), 2)
    eng.handle(CallbackRequested("cb", "+15550100", queue="q"), 3)
    out = eng.handle(AgentLoggedOut("a"), 4)
    assert _of(RefuseCall, out) == [RefuseCall("ring", "q", "empty"), RefuseCall("wait", "q", "empty")]
    assert eng.has_call("cb") and not eng.has_call("wait")
    assert eng.queue_stats("q").left_empty == 2


def test_overflow_loop_is_refused_not_endless():
    eng = make(
        queues={
            "a": {"when_no_agents": "overflow", "overflow": (60, "queue:b")},
            "b": {"when_no_agents": "overflow", "overflow": (60, "queue:a")},
        },
        agents={},
    )
    out = eng.handle(CallQueued("c", "a"), 0)
    assert out == [OverflowCall("c", "a", "queue:b", "no_agents"), RefuseCall("c", "b", "overflow_loop")]
    assert not eng.has_call("c")


def test_callback_request_keeps_place_and_dials_on_accept():
    eng = make()
    eng.handle(CallQueued("c1", "q"), 0)
    eng.handle(CallQueued("c2", "q"), 1)
    assert eng.handle(CallbackRequested("c1", "+8613800000000"), 5) == []
    st = eng.queue_stats("q")
    assert (st.waiting, st.callbacks_waiting, st.converted_to_callback) == (1, 1, 1)
    out = eng.handle(AgentLoggedIn("a"), 10)
    [offer] = _of(OfferCall, out)
    assert (offer.call_id, offer.callback_number) == ("c1", "+8613800000000")
    out = eng.handle(OfferAccepted("c1", "a"), 12)
    assert _of(DialCustomer, out) == [DialCustomer("c1", "a", "+8613800000000")]
    st = eng.queue_stats("q")
    assert (st.callbacks_answered, st.answered, st.abandoned) == (1, 0, 0)  # not an inbound answer
    out = eng.handle(CallEnded("c1"), 100)
    assert offers(out) == [("c2", "a")]


def test_new_callback_request_joins_at_the_back_of_its_priority():
    eng = make()
    eng.handle(CallQueued("c1", "q"), 0)
    eng.handle(CallbackRequested("web-7", "+15550100", queue="q"), 1)
    eng.handle(CallQueued("c2", "q"), 2)
    assert eng.waiting_calls("q") == ["c1", "web-7", "c2"]
    assert eng.position("web-7")[0] == 2
    reasons = [a.reason for a in eng.handle(CallbackRequested("unknown", "+1555"), 3)]
    assert reasons == ["unknown call 'unknown'; give a queue to file a new callback request"]


def test_callbacks_do_not_overflow_and_can_be_cancelled():
    eng = make(queues={"q": {"overflow": (30, "hangup")}})
    eng.handle(CallQueued("c", "q"), 0)
    eng.handle(CallbackRequested("c", "+1555"), 10)
    assert eng.tick(100) == []
    assert eng.has_call("c")
    eng.handle(CallAbandoned("c"), 101)  # the customer cancelled the request
    st = eng.queue_stats("q")
    assert (st.callbacks_cancelled, st.abandoned) == (1, 0)


def test_callback_only_replaces_a_waiting_call():
    eng = make()
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 1)  # ringing
    [reason] = [a.reason for a in eng.handle(CallbackRequested("c", "+1555"), 2)]
    assert "offered" in reason


def test_position_announcements():
    eng = make(queues={"q": {"announce_every_seconds": 30}})
    eng.handle(CallQueued("c1", "q"), 0)
    eng.handle(CallQueued("c2", "q", priority=3), 10)
    out = eng.tick(30)
    assert out == [AnnouncePosition("c1", "q", 2, None)]
    out = eng.tick(40)
    assert out == [AnnouncePosition("c2", "q", 1, None)]
    assert eng.position("c1") == (2, None)


def test_call_ended_before_answer_counts_as_abandon():
    eng = make()
    eng.handle(CallQueued("c", "q"), 0)
    eng.handle(CallEnded("c"), 5)
    assert eng.queue_stats("q").abandoned == 1
