"""After-call work modes per queue: timed, timed with extensions, until the disposition is saved, optional."""

from __future__ import annotations

import pytest

from acd import (
    AcdEngine,
    AgentBecameAvailable,
    AgentLoggedIn,
    AgentWentNotReady,
    CallDisposed,
    CallEnded,
    CallQueued,
    OfferAccepted,
    QueueSettings,
    SettingsError,
    WrapUpEnded,
    WrapUpExtended,
)

from acd_support import make, offers, rejected, states


def _talked(eng: AcdEngine, call: str = "c", at: float = 0.0) -> None:
    eng.handle(CallQueued(call, "q"), at)
    eng.handle(OfferAccepted(call, "a"), at + 1)
    eng.handle(CallEnded(call), at + 10)


def _engine(**queue) -> AcdEngine:
    eng = make(queues={"q": queue})
    eng.handle(AgentLoggedIn("a"), 0)
    return eng


def test_until_disposed_holds_the_agent_until_the_disposition_then_the_next_call_is_offered():
    eng = _engine(after_call_work="until_disposed", wrapup_seconds=2)
    _talked(eng)
    assert eng.agent_state("a") == ("wrap_up", None)
    assert eng.agent_wrap_up("a")["owed_call"] == "c"
    assert offers(eng.handle(CallQueued("c2", "q"), 500)) == []  # no timer ends it, however long
    assert eng.agent_state("a") == ("wrap_up", None)
    assert rejected(eng.handle(WrapUpEnded("a"), 501)) == ["agent 'a' owes the disposition of call 'c'"]
    assert rejected(eng.handle(AgentBecameAvailable("a"), 502)) == ["agent 'a' owes the disposition of call 'c'"]
    eng.handle(CallDisposed("a", "other-call"), 503)  # not the owed one: still owed
    assert eng.agent_wrap_up("a")["owed_call"] == "c"
    eng.handle(CallDisposed("a", "c"), 504)
    assert offers(eng.handle(WrapUpEnded("a"), 505)) == [("c2", "a")]


def test_until_disposed_a_pause_waits_for_the_disposition_and_a_supervisor_can_force_ready():
    eng = _engine(after_call_work="until_disposed")
    _talked(eng)
    eng.handle(AgentWentNotReady("a", "break"), 20)
    assert eng.agent_state("a") == ("wrap_up", None)  # the pause comes after the owed disposition
    eng.handle(CallDisposed("a", "c"), 21)
    assert states(eng.handle(WrapUpEnded("a"), 22)) == [("a", "not_ready", "break")]
    eng.handle(AgentBecameAvailable("a"), 23)
    _talked(eng, "d", 30)
    assert states(eng.handle(WrapUpEnded("a", forced=True), 50)) == [("a", "available", None)]


def test_timed_wrap_up_ends_by_its_timer_with_the_disposition_not_blocking():
    eng = _engine(after_call_work="timed", wrapup_seconds=5)
    _talked(eng)
    assert eng.agent_wrap_up("a") == {"mode": "timed", "until": 15.0, "owed_call": None, "extensions_left": 0}
    assert rejected(eng.handle(WrapUpExtended("a"), 11)) == ["queue 'q' does not allow wrap-up extensions"]
    assert offers(eng.handle(CallQueued("c2", "q"), 15)) == [("c2", "a")]


def test_timed_extendable_moves_the_end_by_one_extension_at_a_time_up_to_the_limit():
    eng = _engine(after_call_work="timed_extendable", wrapup_seconds=5, wrapup_extension_seconds=20,
                  wrapup_max_extensions=2)
    _talked(eng)  # ends at 10, wrap-up until 15
    eng.handle(WrapUpExtended("a"), 12)
    assert eng.agent_wrap_up("a")["until"] == 35.0
    eng.handle(WrapUpExtended("a"), 13)
    assert eng.agent_wrap_up("a") == {"mode": "timed_extendable", "until": 55.0, "owed_call": None,
                                      "extensions_left": 0}
    assert rejected(eng.handle(WrapUpExtended("a"), 14)) == ["agent 'a' has used all 2 extension(s)"]
    assert offers(eng.handle(CallQueued("c2", "q"), 40)) == []  # the first timers no longer count
    assert eng.agent_state("a") == ("wrap_up", None)
    assert offers(eng.tick(55)) == [("c2", "a")]


def test_optional_after_call_work_makes_the_agent_available_at_once():
    eng = _engine(after_call_work="optional", wrapup_seconds=30)
    eng.handle(CallQueued("c", "q"), 0)
    eng.handle(OfferAccepted("c", "a"), 1)
    eng.handle(CallQueued("c2", "q"), 2)
    assert offers(eng.handle(CallEnded("c"), 10)) == [("c2", "a")]
    assert eng.agent_wrap_up("a") is None


def test_wrap_up_state_survives_a_snapshot():
    eng = _engine(after_call_work="until_disposed")
    _talked(eng)
    copy = AcdEngine.restore(eng.snapshot())
    assert copy.agent_wrap_up("a")["owed_call"] == "c"
    assert rejected(copy.handle(WrapUpEnded("a"), 20)) == ["agent 'a' owes the disposition of call 'c'"]


def test_unknown_after_call_work_mode_is_refused():
    with pytest.raises(SettingsError, match="after_call_work"):
        QueueSettings(after_call_work="whenever")
