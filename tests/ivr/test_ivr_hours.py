"""Business hours and holidays in the session, with event times in other time zones than the center's."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from ivr_support import REPO, Driver, menu

from callcenter.config import load
from ivr import BusinessHours, Hangup, RequestCallback, RouteToQueue

UTC = dt.UTC
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")

HOURS = """
[menus.main]
type = "hours"
open = "open_q"
closed = "closed"
holiday = "holiday"

[menus.open_q]
type = "queue"
queue = "general"

[menus.closed]
prompt = "closed"
options = { 1 = "callback" }

[menus.callback]
type = "callback"
queue = "general"
at = "next_opening"

[menus.holiday]
type = "hangup"
reason = "closed"
prompt = "holiday"
"""


@pytest.fixture(scope="module")
def center_hours() -> BusinessHours:
    """The sample configuration's hours: Asia/Shanghai, lunch break, Saturday, holidays."""
    return load(REPO / "config" / "callcenter.toml", environ={}).settings.hours


def branch(hours: BusinessHours, when: dt.datetime) -> str:
    d = Driver(menu(HOURS), now=when, hours=hours, caller="+8613900000001")
    d.start()
    if d.session.ended:
        return "open" if isinstance(d.actions[-1], RouteToQueue) else "holiday"
    return "closed"


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (dt.datetime(2026, 11, 2, 1, 30, tzinfo=UTC), "open"),  # Monday 09:30 in Shanghai
        (dt.datetime(2026, 11, 1, 23, 0, tzinfo=UTC), "closed"),  # Monday 07:00 in Shanghai, Sunday in UTC
        (dt.datetime(2026, 11, 2, 4, 30, tzinfo=UTC), "closed"),  # 12:30, the lunch break
        (dt.datetime(2026, 11, 2, 10, 0, tzinfo=UTC), "closed"),  # 18:00 sharp: closed
        (dt.datetime(2026, 11, 2, 9, 59, tzinfo=UTC), "open"),  # 17:59
        (dt.datetime(2026, 11, 7, 3, 0, tzinfo=UTC), "open"),  # Saturday 11:00
        (dt.datetime(2026, 11, 8, 3, 0, tzinfo=UTC), "closed"),  # Sunday
        (dt.datetime(2026, 9, 30, 22, 0, tzinfo=NEW_YORK), "holiday"),  # = 1 October 10:00 in Shanghai
        (dt.datetime(2026, 12, 31, 14, 0, tzinfo=SHANGHAI), "open"),  # New Year's Eve, reduced hours
        (dt.datetime(2026, 12, 31, 16, 0, tzinfo=SHANGHAI), "holiday"),  # after the reduced hours
    ],
)
def test_hours_branch_in_the_centers_time_zone(center_hours, when, expected):
    assert branch(center_hours, when) == expected


def test_daylight_saving_time_in_the_centers_zone():
    hours = BusinessHours(timezone="America/New_York", weekly={d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")})
    # Friday 6 March 2026 is still EST (UTC-5); Monday 9 March is EDT (UTC-4).
    assert branch(hours, dt.datetime(2026, 3, 6, 14, 30, tzinfo=UTC)) == "open"  # 09:30 EST
    assert branch(hours, dt.datetime(2026, 3, 6, 13, 30, tzinfo=UTC)) == "closed"  # 08:30 EST
    assert branch(hours, dt.datetime(2026, 3, 9, 13, 30, tzinfo=UTC)) == "open"  # 09:30 EDT
    assert branch(hours, dt.datetime(2026, 3, 9, 21, 30, tzinfo=UTC)) == "closed"  # 17:30 EDT


def test_closed_callback_offer_schedules_the_next_opening_in_the_centers_zone(center_hours):
    friday_night = dt.datetime(2026, 11, 6, 11, 0, tzinfo=UTC)  # 19:00 Friday in Shanghai
    d = Driver(menu(HOURS), now=friday_night, hours=center_hours, caller="+8613900000001")
    d.start()
    d.press("1")
    due = d.last(RequestCallback).due
    assert due == dt.datetime(2026, 11, 7, 10, 0, tzinfo=SHANGHAI)  # Saturday opens at 10:00
    assert due.utcoffset() == dt.timedelta(hours=8)
    assert d.actions[-1] == Hangup("callback_requested")


def test_callback_before_a_holiday_skips_it(center_hours):
    evening = dt.datetime(2026, 9, 30, 20, 0, tzinfo=SHANGHAI)  # 1 and 2 October are holidays
    d = Driver(menu(HOURS), now=evening, hours=center_hours, caller="+8613900000001")
    d.start()
    d.press("1")
    assert d.last(RequestCallback).due == dt.datetime(2026, 10, 3, 10, 0, tzinfo=SHANGHAI)  # Saturday


def test_a_node_can_have_its_own_hours():
    body = HOURS.replace('holiday = "holiday"', 'holiday = "holiday"\nhours = { timezone = "Europe/London", weekly = { mon = ["08:00-09:00"] } }')
    hours_node_menu = menu(body)
    at_8_30_london = dt.datetime(2026, 11, 2, 8, 30, tzinfo=ZoneInfo("Europe/London"))
    d = Driver(hours_node_menu, now=at_8_30_london)
    d.start()
    assert isinstance(d.actions[-1], RouteToQueue)
    at_2_london = dt.datetime(2026, 11, 2, 2, 0, tzinfo=ZoneInfo("Europe/London"))  # 10:00 in Shanghai: the center is open
    assert BusinessHours().is_open(at_2_london)
    d = Driver(hours_node_menu, now=at_2_london)
    d.start()
    assert not d.session.ended and d.prompts() == ["closed"]
