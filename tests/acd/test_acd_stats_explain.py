"""Statistics definitions (both service levels and the variants, ASA, AHT, occupancy, EWT) and explanations."""

from __future__ import annotations

import pytest
from acd_support import make, offers

from acd import (
    AgentLoggedIn,
    AgentWentNotReady,
    CallAbandoned,
    CallEnded,
    CallQueued,
    OfferAccepted,
    StatisticsReset,
)


@pytest.fixture()
def worked():
    """Six calls at t=0; T=20 s. Answered after 5, 10, 20 and 40 s; abandoned after 8 and 50 s."""
    agents = {f"a{i}": (("q",), {}) for i in range(1, 5)}
    eng = make(queues={"q": {"service_level_seconds": 20, "wrapup_seconds": 10}}, agents=agents)
    for i in range(1, 7):
        eng.handle(CallQueued(f"c{i}", "q"), 0)
    for agent, call, t in (("a1", "c1", 5), ("a2", "c2", 10), ("a3", "c3", 20), ("a4", "c4", 40)):
        if call == "c2":
            eng.handle(CallAbandoned("c5"), 8)
        assert offers(eng.handle(AgentLoggedIn(agent), t)) == [(call, agent)]
        eng.handle(OfferAccepted(call, agent), t)
    eng.handle(CallAbandoned("c6"), 50)
    for call, t in (("c3", 50), ("c1", 65), ("c4", 70), ("c2", 100)):
        eng.handle(CallEnded(call), t)
    eng.tick(200)
    return eng


def test_service_level_definitions(worked):
    st = worked.queue_stats("q")
    assert (st.entered, st.answered, st.answered_in_sl, st.abandoned, st.abandoned_in_sl) == (6, 4, 3, 2, 1)
    assert st.sl1 == pytest.approx(3 / 4)  # answered within T / answered
    assert st.sl2 == pytest.approx(3 / 6)  # answered within T / (answered + abandoned)
    assert st.sl_asterisk_perf2 == pytest.approx((3 + 1) / 6)  # Asterisk counts short abandons as met
    assert st.sl_excl_short == pytest.approx(3 / (6 - 1))  # short abandons left out
    assert st.abandon_rate == pytest.approx(2 / 6)
    assert st.asa == pytest.approx((5 + 10 + 20 + 40) / 4)
    assert st.max_answer_wait == 40
    assert st.avg_abandon_wait == pytest.approx((8 + 50) / 2)


def test_handle_times(worked):
    st = worked.queue_stats("q")
    talk = (65 - 5) + (100 - 10) + (50 - 20) + (70 - 40)
    assert st.completed == 4
    assert st.avg_talk == pytest.approx(talk / 4)
    assert st.avg_wrap == pytest.approx(10)
    assert st.aht == pytest.approx((talk + 40) / 4)


def test_agent_figures_and_occupancy(worked):
    s = worked.agent_stats("a1")  # at 200: logged in at 5, talked 5-65, wrapped 65-75, free since
    assert (s.calls, s.talk, s.wrap, s.available, s.reserved) == (1, 60, 10, 125, 0)
    assert s.occupancy == pytest.approx(70 / 195)
    assert s.logged_in == 195
    assert worked.agent_stats("a1", 295).available == 220  # the current state counts up to "now"


def test_longest_wait_position_and_estimated_wait(worked):
    eng = worked
    eng.handle(AgentWentNotReady("a4", "break"), 200)  # staffed: a1..a3 (3 agents)
    eng.handle(CallQueued("x1", "q"), 300)
    eng.handle(CallQueued("x2", "q"), 301)
    eng.handle(CallQueued("x3", "q", priority=2), 302)
    # a1..a3 are free: they take x3, x1, x2
    assert eng.queue_stats("q").waiting == 3
    for i in range(4, 7):
        eng.handle(CallQueued(f"x{i}", "q"), 300 + i)
    st = eng.queue_stats("q", 320)
    assert st.longest_wait == 20 and st.ringing == 3 and st.waiting == 6
    aht = st.aht
    assert eng.position("x5") == (2, pytest.approx(2 * aht / 3))
    assert eng.position("x1")[0] == 0  # ringing


def test_statistics_reset_starts_a_new_period(worked):
    worked.handle(CallQueued("late", "q"), 300)
    worked.handle(StatisticsReset(), 301)
    st = worked.queue_stats("q")
    assert (st.entered, st.answered, st.abandoned, st.sl1) == (0, 0, 0, None)
    assert worked.agent_stats("a1", 301).calls == 0
    assert worked.call_info("late")["state"] in ("waiting", "offered")


def _explain_setup():
    eng = make(
        queues={"q": {"required_skills": {"fr": 3}}, "other": {}},
        agents={
            "cand": (("q",), {"fr": 3}),
            "cand2": (("q",), {"fr": 5}),
            "paused": (("q",), {"fr": 4}),
            "away": (("q",), {"fr": 4}),
            "busy": (("q", "other"), {"fr": 4}),
            "nofr": (("q",), {"en": 5}),
            "low": (("q",), {"fr": 2}),
            "stranger": (("other",), {"fr": 5}),
        },
    )
    return eng


def test_explain_lists_every_member_with_a_reason():
    eng = _explain_setup()
    for aid in ("paused", "busy", "nofr", "low", "stranger"):
        eng.handle(AgentLoggedIn(aid), 0)
    eng.handle(AgentWentNotReady("paused", "training"), 1)
    eng.handle(CallQueued("o1", "other"), 2)  # busy (member of both) takes it
    assert eng.agent_state("busy")[0] == "reserved"
    eng.handle(CallQueued("c", "q"), 3)  # nobody can take it
    ex = eng.explain("c")
    verdicts = {v.agent_id: v.verdict for v in ex.verdicts}
    assert verdicts == {
        "paused": "not_ready",
        "busy": "busy_in_other_queue",
        "nofr": "missing_skill",
        "low": "level_too_low",
    }
    details = {v.agent_id: v.detail for v in ex.verdicts}
    assert "training" in details["paused"] and "fr level 2 < 3" in details["low"]
    assert ex.requirement == (("fr", 3),) and ex.state == "waiting"
    ex = eng.explain("c", agents=["stranger", "away", "cand"])
    assert {v.agent_id: v.verdict for v in ex.verdicts} == {
        "stranger": "not_member",
        "away": "logged_out",
        "cand": "logged_out",
    }
    assert any("not_ready" in line for line in ex.lines()) is False
    assert ex.lines()[0].startswith("call c in q (waiting")


def test_explain_offered_call_shows_chosen_and_ranked_candidates():
    eng = _explain_setup()
    eng.handle(AgentLoggedIn("cand2"), 0)
    eng.handle(CallQueued("c", "q"), 1)  # to cand2
    eng.handle(AgentLoggedIn("cand"), 2)
    eng.handle(AgentLoggedIn("busy"), 3)
    ex = eng.explain("c", now=5)
    assert ex.agent_id == "cand2" and ex.state == "offered" and ex.waited == 4
    assert [(v.agent_id, v.verdict, v.rank) for v in ex.verdicts][:3] == [
        ("cand2", "chosen", None),
        ("cand", "candidate", 1),
        ("busy", "candidate", 2),
    ]
    assert ex.by_verdict()["candidate"] == ["cand", "busy"]


def test_explain_marks_agent_that_missed_the_call():
    eng = make(agents={"a": (("q",), {}), "b": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(AgentLoggedIn("b"), 0.5)
    eng.handle(AgentWentNotReady("b", "break"), 0.6)
    eng.handle(CallQueued("c", "q"), 1)
    eng.tick(11)  # a misses; alone, it is offered the call again
    ex = eng.explain("c")
    assert {v.agent_id: v.verdict for v in ex.verdicts} == {"a": "chosen", "b": "not_ready"}


def test_threshold_is_inclusive_for_answers_and_abandons():
    eng = make(queues={"q": {"service_level_seconds": 20, "short_abandon_seconds": 5}}, agents={"a": (("q",), {})})
    eng.handle(CallQueued("ans", "q"), 0)
    eng.handle(CallQueued("ab20", "q"), 0)
    eng.handle(CallQueued("ab5", "q"), 15)
    eng.handle(CallAbandoned("ab5"), 20)  # waited exactly 5: short and within T
    eng.handle(CallAbandoned("ab20"), 20)  # waited exactly 20: within T, not short
    eng.handle(AgentLoggedIn("a"), 20)
    eng.handle(OfferAccepted("ans", "a"), 20)  # waited exactly 20
    st = eng.queue_stats("q")
    assert (st.answered_in_sl, st.abandoned_in_sl, st.abandoned_short) == (1, 2, 1)
    assert st.sl_excl_short == pytest.approx(1 / (3 - 1))
