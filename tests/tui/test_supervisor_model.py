"""The dashboard's model with plain dicts: alerts, updates, sorting, filtering, skills input, literal caller text."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.tui.supervisor_model import (
    AMBER,
    OK,
    RED,
    SupervisorModel,
    Thresholds,
    alert,
    parse_skills,
    state_text,
    verdict_text,
)
from callcenter.tui.supervisor_screens import caller_cell

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
T = Thresholds(wait_amber_seconds=60, wait_red_seconds=180, sl_red_margin=0.1)


def queue(**over):
    row = {"queue": "sales", "name": "Sales", "waiting": 0, "ringing": 0, "oldest_since": None, "sl1": None,
           "sl2": None, "sl_target": 0.8, "sl_seconds": 20}
    row.update(over)
    return row


def waited(seconds: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize(("over", "level"), [
    ({}, OK),
    ({"sl2": 0.85}, OK),
    ({"sl2": 0.8}, OK),
    ({"sl2": 0.75}, AMBER),
    ({"sl2": 0.69}, RED),
    ({"waiting": 1, "oldest_since": waited(59)}, OK),
    ({"waiting": 1, "oldest_since": waited(61)}, AMBER),
    ({"waiting": 1, "oldest_since": waited(181)}, RED),
    ({"waiting": 0, "oldest_since": waited(500)}, OK),  # stale timestamp, nobody waits
    ({"sl2": 0.75, "waiting": 2, "oldest_since": waited(200)}, RED),
    ({"sl2": 0.5, "waiting": 1, "oldest_since": waited(70)}, RED),
])
def test_alert_levels(over, level):
    assert alert(queue(**over), T, NOW)[0] == level


def test_alert_reasons_say_why():
    level, reasons = alert(queue(sl2=0.6, waiting=1, oldest_since=waited(75)), T, NOW)
    assert level == RED
    assert reasons == ["service level 60% < target 80%", "oldest caller waiting 1:15"]


def test_updates_replace_only_the_rows_they_carry_and_report_what_changed():
    m = SupervisorModel("9001")
    m.on_snapshot({"server_time": NOW.isoformat(), "queues": [queue(), queue(queue="vip", name="VIP")],
                   "agents": [{"agent_id": "1001", "state": "available"}, {"agent_id": "1002", "state": "on_call"}],
                   "counters": {"blocked": 0}, "staffing": [], "thresholds": {"wait_amber_seconds": 30}},
                  NOW - dt.timedelta(seconds=5))
    assert m.server_offset == dt.timedelta(seconds=5)
    assert m.thresholds.wait_amber_seconds == 30 and m.thresholds.wait_red_seconds == 180
    change = m.on_update({"queues": [queue(waiting=3)], "agents": [{"agent_id": "1002", "state": "wrap_up"}],
                          "counters": {"blocked": 2}, "server_time": NOW.isoformat()}, NOW)
    assert change == {"queues": {"sales"}, "agents": {"1002"}, "counters": True, "staffing": False}
    assert m.queues["sales"]["waiting"] == 3 and m.queues["vip"]["name"] == "VIP"
    assert m.agents["1001"]["state"] == "available" and m.agents["1002"]["state"] == "wrap_up"
    assert m.totals()["waiting"] == 3 and m.totals()["wrap_up"] == 1
    again = m.on_update({"counters": {"blocked": 2}}, NOW)
    assert again["counters"] is False, "the same count is no change"


def test_agents_view_sorts_with_empty_values_last_and_filters_by_words():
    m = SupervisorModel("9001")
    m.agents = {
        "1001": {"agent_id": "1001", "name": "Li Wei", "state": "available", "calls": 5, "aht": 120.0,
                 "since": waited(30), "queues": ["sales"]},
        "1002": {"agent_id": "1002", "name": "Wang Fang", "state": "not_ready", "reason": "lunch", "calls": 2,
                 "aht": None, "since": waited(600), "queues": ["support"]},
        "1003": {"agent_id": "1003", "name": "Zhang Min", "state": "on_call", "calls": 9, "aht": 90.0,
                 "since": waited(10), "queues": ["support"],
                 "call": {"ani": "+8613912345678", "display_name": "Zhang San", "queue": "support"}},
    }
    ids = lambda rows: [r["agent_id"] for r in rows]  # noqa: E731
    assert ids(m.agents_view(sort="calls", reverse=True, now=NOW)) == ["1003", "1001", "1002"]
    assert ids(m.agents_view(sort="aht", now=NOW)) == ["1003", "1001", "1002"]
    assert ids(m.agents_view(sort="aht", reverse=True, now=NOW)) == ["1001", "1003", "1002"], "empty stays last"
    assert ids(m.agents_view(sort="in_state", reverse=True, now=NOW)) == ["1002", "1001", "1003"]
    assert ids(m.agents_view(sort="state", now=NOW)) == ["1003", "1001", "1002"]
    assert ids(m.agents_view(text="support", now=NOW)) == ["1002", "1003"]
    assert ids(m.agents_view(text="not ready lunch", now=NOW)) == ["1002"]
    assert ids(m.agents_view(text="zhang san", now=NOW)) == ["1003"], "the caller's name is searchable"
    assert m.time_in_state(m.agents["1002"], NOW) == 600


def test_skills_input():
    assert parse_skills("sales=3 support=2, zh=5") == {"sales": 3, "support": 2, "zh": 5}
    assert parse_skills("  ") == {}
    for bad, words in (("sales", "name=level"), ("sales=x", "whole number"), ("sales=0", "from 1 to 5"),
                       ("sales=6", "from 1 to 5"), ("a=1 a=2", "twice"), ("=3", "name=level")):
        with pytest.raises(ValueError, match=words):
            parse_skills(bad)


def test_caller_text_is_data_not_markup():
    cell = caller_cell({"ani": "+8613912345678", "display_name": "[red]x[/] \x1b[2J\u202e"}, "CN")
    assert cell.plain == "139 1234 5678 “[red]x[/] \ufffd[2J\ufffd”"
    assert cell.spans == [], "nothing was parsed as style"
    assert caller_cell({"ani": None}, "CN").plain == "withheld"


def test_states_are_said_in_peoples_words():
    assert [state_text(s) for s in ("available", "reserved", "on_call", "wrap_up", "not_ready", "logged_out")] == [
        "available", "ringing", "on a call", "in wrap-up", "not ready", "logged out"]
    assert state_text("not_ready", "no_answer") == "not ready (no answer)"
    assert state_text("on_call", "lunch") == "on a call", "a reason only goes with not ready"
    assert state_text("some_new_state") == "some new state"


CALL = "0123456789abcdef0123456789abcdef"
NAMES = {"sales": "Sales", "support": "Technical support"}.get


@pytest.mark.parametrize(("verdict", "detail", "said"), [  # details as the ACD writes them (acd/engine.py)
    ("busy_in_other_queue", f"on_call with {CALL} from sales", "busy with a call of queue Sales"),
    ("busy_in_other_queue", f"reserved with {CALL} from support",
     "phone ringing with a call of queue Technical support"),
    ("on_call", f"on_call with {CALL}", "on a call of this queue"),
    ("reserved", f"reserved with {CALL}", "phone ringing with another call of this queue"),
    ("not_ready", "not ready (no_answer)", "not ready (no answer)"),
    ("wrap_up", "in wrap-up", "in wrap-up"),
    ("logged_out", "member of the queue but logged out", "logged out"),
    ("not_member", "logged in to sales, support, not general",
     "logged in to other queues only (Sales, Technical support)"),
    ("not_member", "not a member of general", "not logged in to this queue"),
    ("missing_skill", "lacks skill zh (needs 1)", "lacks the skill zh (needs level 1)"),
    ("level_too_low", "zh level 2 < 3", "zh at level 2, needs 3"),
    ("missed_this_call", "let this call ring out; others are tried first",
     "let this call ring out; the others are tried first"),
    ("chosen", "ringing; offered by round_robin", "phone ringing with this caller"),
    ("chosen", "answered; offered by round_robin", "talking to this caller"),
    ("some_new_verdict", f"wrap_up after {CALL}", "some new verdict: in wrap-up after a call"),
])
def test_why_an_agent_has_not_taken_the_call_is_said_in_words(verdict, detail, said):
    assert verdict_text({"agent_id": "1001", "verdict": verdict, "detail": detail},
                        lambda q: NAMES(q) or q) == said


def test_a_free_agent_says_its_place_in_line():
    assert verdict_text({"verdict": "candidate", "detail": "free and qualified; longest_idle key 12", "rank": 2}) == \
        "free and qualified, next in line (#2)"


def test_the_callers_ringing_at_agents_of_a_queue():
    m = SupervisorModel("9001")
    ringing = lambda queue, since: {"state": "reserved", "since": since,  # noqa: E731
                                    "call": {"call_id": "c", "phase": "ringing", "queue": queue}}
    m.agents = {
        "1001": {"agent_id": "1001", **ringing("general", waited(3))},
        "1002": {"agent_id": "1002", **ringing("general", waited(9))},
        "1003": {"agent_id": "1003", **ringing("sales", waited(5))},
        "1004": {"agent_id": "1004", "state": "on_call", "since": waited(60),
                 "call": {"call_id": "d", "phase": "connected", "queue": "general"}},
        "1005": {"agent_id": "1005", "state": "available"},
    }
    assert [a["agent_id"] for a in m.ringing_at("general")] == ["1002", "1001"], "longest ringing first"
    assert [a["agent_id"] for a in m.ringing_at("sales")] == ["1003"]
    assert m.ringing_at("vip") == []
