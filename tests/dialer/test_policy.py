"""The pre-dial policy with plain values: each rule skips with its reason and says when to try again; the
order of the rules; properties that must hold for any time and history."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer import (
    ABANDON_LOCKOUT, BLACKLISTED, DIAL, DNC_FLAG, DNC_LIST, DNC_REQUESTED, FREQUENCY_DAY, FREQUENCY_GAP, HOLIDAY,
    OUTSIDE_HOURS, UNKNOWN_ZONE, Attempt, CallingRules, Lead, RulesError, decide,
)

UTC = dt.UTC
SHANGHAI = "Asia/Shanghai"
# Tuesday 2026-12-08 10:00 in Shanghai
MORNING = dt.datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
LEAD = Lead("+8613912345678", zones=(SHANGHAI,), customer_id=7)
RULES = CallingRules()


def at(hours: float) -> dt.datetime:
    return MORNING + dt.timedelta(hours=hours)


def test_a_clean_lead_in_hours_is_dialled():
    d = decide(LEAD, [], RULES, MORNING)
    assert d.dial and d.reason == DIAL and "Tue 10:00 in Asia/Shanghai" in d.detail


@pytest.mark.parametrize("lead, rules, history, reason", [
    (Lead("+8613912345678", (SHANGHAI,), blacklisted=True, do_not_call=True), RULES, [], BLACKLISTED),
    (Lead("+8613912345678", (SHANGHAI,), do_not_call=True), RULES, [], DNC_FLAG),
    (LEAD, CallingRules(dnc_numbers=frozenset({"+8613912345678"})), [], DNC_LIST),
    (LEAD, RULES, [Attempt(at(-200), "answered", "do_not_call")], DNC_REQUESTED),
])
def test_do_not_call_in_every_form_is_never_waited_out(lead, rules, history, reason):
    d = decide(lead, history, rules, MORNING)
    assert d.reason == reason and not d.dial and d.not_before is None


def test_abandoned_call_locks_the_number_out_for_72_hours():
    history = [Attempt(at(-71), "abandoned")]
    d = decide(LEAD, history, RULES, MORNING)
    assert d.reason == ABANDON_LOCKOUT and d.not_before == at(1)
    assert decide(LEAD, [Attempt(at(-72), "abandoned")], RULES, MORNING).dial


def test_frequency_caps_per_day_and_between_attempts():
    three = [Attempt(at(-20), "no_answer"), Attempt(at(-10), "busy"), Attempt(at(-2), "no_answer")]
    d = decide(LEAD, three, RULES, MORNING)
    assert d.reason == FREQUENCY_DAY and d.not_before == at(4)  # the oldest of the three leaves the 24 h window
    d = decide(LEAD, [Attempt(at(-0.5), "no_answer")], RULES, MORNING)
    assert d.reason == FREQUENCY_GAP and d.not_before == at(0.5)


def test_callee_local_hours_weekdays_and_holidays():
    night = dt.datetime(2026, 12, 8, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    d = decide(LEAD, [], RULES, night)
    assert d.reason == OUTSIDE_HOURS and "Tue 22:00" in d.detail
    assert d.not_before == dt.datetime(2026, 12, 9, 0, 0, tzinfo=UTC)  # 08:00 next morning, local
    # the same instant is 09:00 on Tuesday in New York: a number there is callable
    us = Lead("+12125551234", zones=("America/New_York",))
    assert decide(us, [], RULES, night).dial
    holiday = CallingRules(holidays=frozenset({dt.date(2026, 12, 8)}))
    d = decide(LEAD, [], holiday, MORNING)
    assert d.reason == HOLIDAY and d.not_before == dt.datetime(2026, 12, 9, 0, 0, tzinfo=UTC)
    weekdays = CallingRules(weekdays=frozenset(range(5)))
    saturday = dt.datetime(2026, 12, 12, 2, 0, tzinfo=UTC)
    d = decide(LEAD, [], weekdays, saturday)
    assert d.reason == OUTSIDE_HOURS and d.not_before == dt.datetime(2026, 12, 14, 0, 0, tzinfo=UTC)


def test_a_number_spanning_zones_must_be_in_hours_in_all_of_them():
    both = Lead("+12125551234", zones=("America/New_York", "America/Los_Angeles"))
    early_west = dt.datetime(2026, 12, 8, 14, 30, tzinfo=UTC)  # 09:30 New York, 06:30 Los Angeles
    d = decide(both, [], RULES, early_west)
    assert d.reason == OUTSIDE_HOURS and "America/Los_Angeles" in d.detail
    assert d.not_before == dt.datetime(2026, 12, 8, 16, 0, tzinfo=UTC)  # 08:00 in Los Angeles


def test_unknown_zone_is_skipped_unless_the_campaign_names_a_fallback():
    lead = Lead("+8613912345678")
    assert decide(lead, [], RULES, MORNING).reason == UNKNOWN_ZONE
    assert decide(lead, [], CallingRules(fallback_zone=SHANGHAI), MORNING).dial


def test_bad_rules_are_refused_with_a_clear_message():
    with pytest.raises(RulesError, match="after they start"):
        CallingRules(start=dt.time(21), end=dt.time(8))
    with pytest.raises(RulesError, match="unknown time zone"):
        CallingRules(fallback_zone="Mars/Olympus")
    with pytest.raises(RulesError, match="unknown time zone"):
        decide(Lead("+1", zones=("Nowhere/At_All",)), [], RULES, MORNING)
    with pytest.raises(RulesError, match="aware"):
        decide(LEAD, [], RULES, MORNING.replace(tzinfo=None))


ZONES = st.sampled_from([SHANGHAI, "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney"])
TIMES = st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(UTC))
OUTCOMES = st.sampled_from(["answered", "no_answer", "busy", "machine", "abandoned"])


@settings(max_examples=300, deadline=None)
@given(ZONES, TIMES, st.lists(st.tuples(st.floats(min_value=-200, max_value=0), OUTCOMES), max_size=6))
def test_a_dial_is_always_in_callee_hours_within_the_caps_and_a_skip_says_when(zone, now, past):
    history = [Attempt(now + dt.timedelta(hours=h), o) for h, o in past]
    d = decide(Lead("+100", zones=(zone,)), history, RULES, now)
    if d.dial:
        local = now.astimezone(ZoneInfo(zone))
        assert RULES.start <= local.time() < RULES.end
        assert sum(1 for a in history if now - dt.timedelta(days=1) < a.at <= now) < RULES.max_per_day
        assert not any(a.outcome == "abandoned" and now < a.at + RULES.abandon_lockout for a in history)
    else:
        assert d.not_before is not None and d.not_before > now
        # waiting until then clears this reason (another may follow)
        assert decide(Lead("+100", zones=(zone,)), history, RULES, d.not_before).reason != d.reason
