"""The shared clock helpers (callcenter.clock) and the shared words and formats (screenpop.text)."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.clock import as_utc, assume_utc, parse_time, server_offset, utcnow
from screenpop.text import STATE_LABELS, format_duration

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


# ----------------------------------------------------------------------------- clock


def test_utcnow_is_aware_utc_and_comparable_with_other_aware_times():
    before = dt.datetime.now(SHANGHAI)
    now = utcnow()
    assert now.utcoffset() == dt.timedelta(0) and now.tzinfo is dt.UTC
    assert before <= now <= dt.datetime.now(SHANGHAI)


def test_a_naive_time_is_taken_as_utc_and_an_aware_one_keeps_its_zone():
    naive = dt.datetime(2026, 11, 24, 2, 0)
    assert assume_utc(naive) == dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    local = dt.datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
    assert assume_utc(local) is local, "shown in its own zone, not converted"


def test_as_utc_converts_the_instant_to_utc():
    local = dt.datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
    assert as_utc(local) == local and as_utc(local).tzinfo is dt.UTC and as_utc(local).hour == 2
    assert as_utc(dt.datetime(2026, 11, 24, 2, 0)) == dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("value", [None, 12, "", "yesterday", "2026-13-01T00:00:00"])
def test_parse_time_gives_none_for_what_is_not_a_timestamp(value):
    assert parse_time(value) is None


def test_parse_time_reads_iso_8601_and_takes_naive_as_utc():
    assert parse_time("2026-11-24T02:00:00") == dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    moment = parse_time("2026-11-24T10:00:00+08:00")
    assert moment.utcoffset() == dt.timedelta(hours=8) and moment == dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


def test_server_offset_is_how_far_the_servers_clock_is_ahead():
    local = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    assert server_offset("2026-11-24T10:00:10+08:00", local) == dt.timedelta(seconds=10)
    assert server_offset("2026-11-24T01:59:00", local) == dt.timedelta(minutes=-1), "naive: UTC"
    assert server_offset("not a time", local) is None and server_offset(None, local) is None


# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("seconds", "text"), [
    (None, ""), (0, "0:00"), (59.9, "0:59"), (61, "1:01"), (600, "10:00"), (3599, "59:59"), (3600, "1:00:00"),
    (3725, "1:02:05"), (360000, "100:00:00"),
])
def test_format_duration_is_m_ss_then_h_mm_ss_from_an_hour(seconds, text):
    assert format_duration(seconds) == text


def test_the_agent_consoles_timer_pads_its_minutes_to_keep_its_width():
    assert [format_duration(s, pad_minutes=True) for s in (0, 65, 599, 3725)] == ["00:00", "01:05", "09:59", "1:02:05"]


def test_report_columns_always_show_hours():
    assert [format_duration(s, hours="always") for s in (0, 307, 3725, 36000)] == \
        ["0:00:00", "0:05:07", "1:02:05", "10:00:00"]


def test_a_missing_duration_shows_as_asked_and_a_negative_one_as_zero():
    assert format_duration(None, missing="—") == "—" and format_duration(0, missing="—") == "0:00"
    assert format_duration(-3) == "0:00" and format_duration(-3, pad_minutes=True) == "00:00"


# ----------------------------------------------------------------------------- state labels


def test_every_agent_state_of_the_acd_has_a_label_in_the_acds_order():
    import acd

    assert tuple(STATE_LABELS) == acd.AGENT_STATES
    assert STATE_LABELS["reserved"] == "Ringing" and STATE_LABELS["wrap_up"] == "Wrap-up"


def test_both_consoles_use_the_one_table_of_labels():
    from callcenter.tui import agent_model, supervisor_model

    assert agent_model.STATE_LABELS is STATE_LABELS and supervisor_model.STATE_LABELS is STATE_LABELS
