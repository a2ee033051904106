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
    clock,
    parse_skills,
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


def test_clock():
    assert [clock(s) for s in (None, 0, 59.9, 61, 3600, 3725)] == ["", "0:00", "0:59", "1:01", "1:00:00", "1:02:05"]
