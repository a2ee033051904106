"""The disposition rules (callcenter.dispositions) with plain values: the server's words, one set for both sides."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.config import Settings
from callcenter.dispositions import (
    PAST_GRACE,
    DispositionRule,
    bad_number,
    callback_number,
    callback_owner_problem,
    callback_time_problem,
    callback_window_problem,
    check_disposition,
    rules_from_wire,
    unknown_code_problem,
)

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
SERVER_RULES = Settings().dispositions  # resolved; callback (needs a callback); other (needs a note)
# the same rules as the login reply sends them to a console
CONSOLE_RULES = rules_from_wire(
    {"code": code, "label": d.label, "requires_note": d.requires_note, "requires_callback": d.requires_callback,
     "outcome": d.outcome} for code, d in SERVER_RULES.items())

CASES = [
    (("nope", "", None), "unknown disposition code 'nope'; known: resolved, callback, other"),
    (("other", "  \n", None), "Other: a note is required"),
    (("other", None, None), "Other: a note is required"),
    (("callback", "", None), "Call back: schedule a callback (number and time)"),
    (("callback", "", {}), "Call back: schedule a callback (number and time)"),
    (("callback", "", {"number": ""}), "a callback needs a number"),
    (("resolved", "", {"number": None}), "a callback needs a number"),
    (("other", " ", {"number": ""}), "Other: a note is required"),  # the note is checked first
    (("resolved", None, None), None),
    (("other", "compressor", None), None),
    (("callback", "", {"number": "+8613912345678"}), None),
]


@pytest.mark.parametrize(("args", "problem"), CASES)
def test_check_disposition_says_what_the_server_says(args, problem):
    code, notes, callback = args
    assert check_disposition(code, notes, callback, SERVER_RULES) == problem


@pytest.mark.parametrize(("args", "problem"), CASES)
def test_a_console_with_the_login_replys_rules_finds_the_same_problems(args, problem):
    code, notes, callback = args
    assert check_disposition(code, notes, callback, CONSOLE_RULES) == problem


def test_rules_from_wire_keeps_the_servers_order_and_labels_a_code_without_one_by_itself():
    rules = rules_from_wire([{"code": "sale", "requires_note": 1}, {"code": "cb", "label": "Call back",
                                                                   "requires_callback": True}])
    assert list(rules) == ["sale", "cb"]
    assert rules["sale"] == DispositionRule(label="sale", requires_note=True, requires_callback=False)
    assert rules["cb"] == DispositionRule(label="Call back", requires_callback=True)
    assert unknown_code_problem("cb", rules) is None
    assert unknown_code_problem("x", rules) == "unknown disposition code 'x'; known: sale, cb"


@pytest.mark.parametrize(("when", "problem"), [
    (NOW, None),
    (NOW + dt.timedelta(days=1), None),
    (NOW - PAST_GRACE, None),  # the grace is inclusive
    (NOW - PAST_GRACE + dt.timedelta(seconds=1), None),
    (NOW - PAST_GRACE - dt.timedelta(seconds=1), "callback: the time is in the past"),
    (dt.datetime(2020, 1, 1, 10, 0, tzinfo=SHANGHAI), "callback: the time is in the past"),
    (dt.datetime(2026, 11, 24, 9, 56, tzinfo=SHANGHAI), None),  # 4 minutes ago, written in the center's zone
])
def test_callback_time_problem_allows_five_minutes_of_clock_difference(when, problem):
    assert PAST_GRACE == dt.timedelta(minutes=5)
    assert callback_time_problem(when, NOW) == problem


def test_callback_window_must_close_after_it_opens():
    assert callback_window_problem(NOW, None) is None
    assert callback_window_problem(NOW, NOW + dt.timedelta(hours=2)) is None
    for until in (NOW, NOW - dt.timedelta(minutes=1)):
        assert callback_window_problem(NOW, until) == "callback: due_until must be after due_from"


@pytest.mark.parametrize(("owner", "problem"), [
    (None, None), ("", None), ("me", None), ("anyone", None),
    ("boss", "callback: 'owner' must be 'me' or 'anyone'"), ("Me", "callback: 'owner' must be 'me' or 'anyone'"),
])
def test_callback_owner_is_me_or_anyone(owner, problem):
    assert callback_owner_problem(owner) == problem


def test_callback_number_is_e164_as_typed_by_an_agent():
    assert callback_number("139 1234 5678", "CN") == "+8613912345678"
    assert callback_number("+86 139-1234-5678", "US") == "+8613912345678"
    assert callback_number("not a number", "CN") is None and callback_number("", "CN") is None


def test_bad_number_quotes_at_most_40_characters():
    assert bad_number("not a number") == "callback: 'not a number' is not a phone number"
    assert bad_number("9" * 100) == f"callback: {'9' * 40!r} is not a phone number"


def test_the_rules_the_login_reply_sends_are_the_rules_the_console_reads_back():
    from pathlib import Path

    from callcenter.config import load
    from callcenter.dispositions import rules_from_wire, rules_to_wire

    rules = load(Path(__file__).resolve().parents[1] / "config" / "callcenter.toml", environ={}).settings.dispositions
    wire = rules_to_wire(rules)
    back = rules_from_wire(wire)
    assert list(back) == list(rules) and len(rules) >= 3
    for code, rule in rules.items():
        assert (back[code].label, back[code].requires_note, back[code].requires_callback) == \
            (rule.label, rule.requires_note, rule.requires_callback)
    assert [w["outcome"] for w in wire] == [rule.outcome for rule in rules.values()]
