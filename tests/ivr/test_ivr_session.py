"""Event sequences in, actions out: every node kind, retries, timeouts, lookups, branches, records."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ivr_support import MONDAY_10AM, SUNDAY_10AM, Driver, demo_port, menu

from ivr import (
    CallerHungUp,
    CallInfo,
    CallStarted,
    Collect,
    DigitReceived,
    DigitsEntered,
    Hangup,
    IvrSession,
    Lookup,
    LookupCompleted,
    OrderStatus,
    Play,
    PromptFinished,
    RequestCallback,
    RouteToQueue,
    SessionError,
    SetLanguage,
    StartTimer,
    TimedOut,
    Transfer,
    luhn_valid,
    mod11_valid,
)

MAIN = """
[menus.main]
prompt = "menu"
options = { 1 = "sales", 2 = "support", 9 = "bye" }
timeout = 5
retries = 2
invalid_prompt = "invalid"
timeout_prompt = "silence"
on_failure = "general"

[menus.sales]
type = "queue"
queue = "sales"
priority = 3
skills = { sales = 2 }
prompt = "to_queue"

[menus.support]
type = "queue"
queue = "support"

[menus.general]
type = "queue"
queue = "general"
priority = 1

[menus.bye]
type = "hangup"
prompt = "bye"
"""


# ----------------------------------------------------------------------------- menus


def test_start_plays_the_menu_and_waits_for_a_key_after_the_prompt():
    d = Driver(menu(MAIN), auto_prompts=False)
    actions = d.start()
    assert actions[0] == SetLanguage("en")
    assert isinstance(actions[1], Collect) and actions[1].max_length == 1 and actions[1].first_digit_timeout == 5
    play = actions[2]
    assert isinstance(play, Play) and play.prompts == ("menu",) and play.text == "en:menu" and play.barge_in
    assert d.timer is None, "no timer while the prompt plays"
    actions = d.finish_prompt()
    assert actions == [StartTimer(actions[0].timer_id, 5.0, d.now + dt.timedelta(seconds=5))]
    assert d.session.waiting_for == "digits"


def test_option_key_routes_to_the_queue_with_priority_and_skills():
    d = Driver(menu(MAIN))
    d.start()
    actions = d.press("1")
    assert isinstance(actions[0], Play) and actions[0].prompts == ("to_queue",)
    assert actions[-1] == RouteToQueue("sales", 3, {"sales": 2})
    assert d.session.ended and d.session.outcome == "queued"
    assert d.press("2") == [], "nothing happens after the end"


def test_invalid_key_replays_with_the_invalid_prompt_then_on_failure_after_the_retries():
    d = Driver(menu(MAIN))
    d.start()
    for attempt in (1, 2):
        actions = d.press("7")
        plays = [a for a in actions if isinstance(a, Play)]
        assert plays[0].prompts == ("invalid", "menu"), attempt
        assert not d.session.ended
    actions = d.press("7")
    assert actions[-1] == RouteToQueue("general", 1, {})
    assert [s["attempt"] for s in d.steps("invalid")] == [1, 2, 3]
    assert d.steps("retries_exhausted")[0]["target"] == "general"


def test_timeouts_replay_with_the_timeout_prompt_then_on_failure():
    d = Driver(menu(MAIN))
    d.start()
    d.time_out()
    assert d.of(Play)[-1].prompts == ("silence", "menu")
    d.time_out()
    assert not d.session.ended
    d.time_out()
    assert d.last(RouteToQueue).queue == "general"
    assert len(d.steps("timeout")) == 3


def test_mixed_invalid_and_timeout_share_the_retry_budget():
    d = Driver(menu(MAIN))
    d.start()
    d.press("5")
    d.time_out()
    d.press("#")
    assert d.session.ended and d.last(RouteToQueue).queue == "general"


def test_without_on_failure_the_last_retry_hangs_up():
    body = MAIN.replace('on_failure = "general"', "")
    d = Driver(menu(body))
    d.start()
    d.press("777")
    assert d.actions[-1] == Hangup("failed")


def test_stale_timer_and_prompt_events_are_ignored():
    d = Driver(menu(MAIN), auto_prompts=False)
    d.start()
    first_play = d.playing[0]
    d.finish_prompt()
    old_timer = d.timer
    d.press("8")  # invalid: replays, the old timer no longer counts
    assert d.send(TimedOut(old_timer.timer_id)) == []
    assert d.send(PromptFinished(first_play.play_id)) == []
    assert d.send(TimedOut(12345)) == []
    assert d.send(LookupCompleted(999)) == []
    assert not d.session.ended


def test_barge_in_off_ignores_keys_during_the_prompt():
    body = MAIN.replace("timeout = 5", "timeout = 5\nbarge_in = false")
    d = Driver(menu(body), auto_prompts=False)
    d.start()
    assert d.press("1") == []
    d.finish_prompt()
    assert d.press("1")[-1].queue == "sales"


def test_repeat_and_back_keys():
    body = """
    [defaults]
    repeat_key = "#"
    back_key = "*"

    [menus.main]
    prompt = "menu"
    options = { 1 = "sub" }

    [menus.sub]
    prompt = "sub"
    options = { 1 = "q" }

    [menus.q]
    type = "queue"
    queue = "general"
    """
    d = Driver(menu(body))
    d.start()
    d.press("*")  # no previous menu: invalid
    assert d.steps("invalid")
    d.press("1")
    assert d.session.node == "sub"
    d.press("#")
    assert d.of(Play)[-1].prompts == ("sub",) and d.steps("repeat")
    d.press("*")
    assert d.session.node == "main"
    assert d.of(Play)[-1].prompts == ("menu",)


def test_digits_entered_burst_is_handled_key_by_key():
    d = Driver(menu(MAIN))
    d.start()
    actions = d.send(DigitsEntered("71"))
    assert actions[-1].queue == "sales"


def test_keys_that_are_not_dtmf_are_ignored():
    d = Driver(menu(MAIN))
    d.start()
    assert d.send(DigitReceived("A")) == []
    assert d.send(DigitReceived("12")) == []
    assert not d.steps("invalid")


# ----------------------------------------------------------------------------- collect

COLLECT = """
[menus.main]
type = "collect"
prompt = "enter"
variable = "order_number"
min_length = 6
max_length = 10
terminator = "#"
first_digit_timeout = 7
inter_digit_timeout = 3
check = "luhn"
retries = 1
invalid_prompt = "invalid"
timeout_prompt = "silence"
next = "done"
on_failure = "general"

[menus.done]
type = "play"
prompt = ["ok", "{digits:order_number}"]
next = "general"

[menus.general]
type = "queue"
queue = "general"
"""


def test_collect_with_terminator_validates_and_stores_the_variable():
    d = Driver(menu(COLLECT))
    d.start()
    collect = d.last(Collect)
    assert (collect.variable, collect.min_length, collect.max_length, collect.terminator) == ("order_number", 6, 10, "#")
    assert d.timer.seconds == 7
    d.press("1234567")
    assert d.timer.seconds == 3, "the inter-digit timer runs between keys"
    d.press("4#")
    assert d.session.variables["order_number"] == "12345674"
    said = [p for p in d.of(Play) if p.prompts[0] == "ok"][0]
    assert said.prompts[1:] == tuple(f"say/{c}" for c in "12345674")
    assert d.last(RouteToQueue).queue == "general"
    assert d.steps("input")[0] == {**d.steps("input")[0], "variable": "order_number", "digits": "12345674"}


def test_collect_ends_at_max_length_without_terminator():
    body = COLLECT.replace("check = \"luhn\"", "").replace("max_length = 10", "max_length = 6")
    d = Driver(menu(body))
    d.start()
    d.press("123456")
    assert d.session.variables["order_number"] == "123456"


def test_collect_inter_digit_timeout_accepts_a_long_enough_entry():
    body = COLLECT.replace('check = "luhn"', "")
    d = Driver(menu(body))
    d.start()
    d.press("1234567")
    d.time_out()
    assert d.session.variables["order_number"] == "1234567"


def test_collect_inter_digit_timeout_with_too_few_digits_is_invalid():
    d = Driver(menu(COLLECT))
    d.start()
    d.press("123")
    d.time_out()
    assert d.steps("invalid")[0]["digits"] == "123"
    assert d.of(Play)[-1].prompts == ("invalid", "enter")
    assert d.session.digits == "", "a retry starts a fresh entry"


def test_collect_bad_check_digit_then_failure_target():
    d = Driver(menu(COLLECT))
    d.start()
    d.press("12345675#")
    d.press("12345675#")
    assert d.last(RouteToQueue).queue == "general"
    assert "order_number" not in d.session.variables
    assert len(d.steps("invalid")) == 2


def test_collect_first_digit_timeout_uses_the_timeout_prompt():
    d = Driver(menu(COLLECT))
    d.start()
    d.time_out()
    assert d.of(Play)[-1].prompts == ("silence", "enter")


def test_collect_terminator_alone_is_invalid():
    d = Driver(menu(COLLECT))
    d.start()
    d.press("#")
    assert d.steps("invalid")


@pytest.mark.parametrize(
    ("extra", "entry", "valid"),
    [
        ('pattern = "^9[0-9]+$"', "912345#", True),
        ('pattern = "^9[0-9]+$"', "812345#", False),
        ('check = "mod11"', "86011117947", True),  # a Norwegian bank account number (mod 11, weights 2-7)
        ('check = "mod11"', "86011117948", False),
        ('check = "hhmm"\nmin_length = 4\nmax_length = 4', "1430", True),
        ('check = "hhmm"\nmin_length = 4\nmax_length = 4', "2460", False),
        ("", "12*456#", False),  # without a pattern only digits are accepted
    ],
)
def test_collect_validation(extra, entry, valid):
    body = (
        COLLECT.replace('check = "luhn"', extra)
        .replace("min_length = 6\n", "" if "min_length" in extra else "min_length = 6\n")
        .replace("max_length = 10\n", "" if "max_length" in extra else "max_length = 11\n")
    )
    d = Driver(menu(body))
    d.start()
    d.press(entry)
    assert ("order_number" in d.session.variables) is valid


def test_sensitive_entries_stay_out_of_the_record():
    body = COLLECT.replace('check = "luhn"', "sensitive = true").replace('"{digits:order_number}"', '"ok"')
    d = Driver(menu(body))
    d.start()
    d.press("123456#")
    assert d.steps("input")[0]["digits"] == "******"
    assert "order_number" not in d.session.record().variables
    assert "123456" not in json.dumps(d.session.path_json())


def test_check_digit_algorithms():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert mod11_valid("86011117947") and not mod11_valid("86011117940")
    assert not luhn_valid("7") and not mod11_valid("")


# ----------------------------------------------------------------------------- lookups

ORDER = """
[menus.main]
type = "collect"
prompt = "enter"
variable = "order_number"
min_length = 5
max_length = 10
next = "lookup"

[menus.lookup]
type = "lookup"
lookup = "order_status"
input = "order_number"
prompt = "wait"
timeout = 4
found = "result"
not_found = "sorry"
failed = "general"

[menus.result]
type = "play"
prompt = ["status_{order.status}", "amount", "{money:order.amount}", "{date:order.date}"]
next = "bye"

[menus.sorry]
type = "play"
prompt = "sorry"
next = "bye"

[menus.bye]
type = "hangup"
prompt = "bye"

[menus.general]
type = "queue"
queue = "general"
"""


def test_order_lookup_found_speaks_status_amount_and_date_in_english():
    d = Driver(menu(ORDER))
    d.start()
    d.press("12345674#")
    lookup = d.last(Lookup)
    assert (lookup.kind, lookup.key) == ("order_status", "12345674")
    result = [p for p in d.of(Play) if p.prompts[0] == "status_shipped"][0]
    assert "one hundred twenty three yuan forty five fen" in result.text
    assert "Thursday October first two thousand twenty six" in result.text
    assert d.actions[-1] == Hangup("self_service")
    step = d.steps("lookup")[0]
    assert step["found"] is True and step["result"]["status"] == "shipped" and step["result"]["amount"] == "123.45"


def test_order_lookup_in_mandarin_uses_yuan_jiao_fen():
    d = Driver(menu(ORDER, languages=("zh",)), language="zh")
    d.start()
    d.press("12345674#")
    result = [p for p in d.of(Play) if p.prompts[0] == "status_shipped"][0]
    assert "一百二十三元四角五分" in result.text
    assert "二零二六年十月一日星期四" in result.text
    assert "say/yuan" in result.prompts and "say/jiao" in result.prompts and "say/fen" in result.prompts


def test_order_lookup_not_found():
    d = Driver(menu(ORDER))
    d.start()
    d.press("99999#")
    assert "sorry" in d.prompts()
    assert d.steps("lookup")[0]["found"] is False


def test_order_lookup_error_and_timeout_take_the_failed_branch():
    d = Driver(menu(ORDER), auto_lookups=False)
    d.start()
    d.press("12345#")
    d.answer_lookup(error="database down")
    assert d.last(RouteToQueue).queue == "general"

    d = Driver(menu(ORDER), auto_lookups=False)
    d.start()
    d.press("12345#")
    assert d.session.waiting_for == "lookup"
    assert d.press("1") == [], "keys are ignored while looking up"
    d.time_out()
    assert d.last(RouteToQueue).queue == "general"
    assert d.steps("lookup")[0]["timed_out"] is True
    assert d.send(LookupCompleted(d.lookups[0].request_id, result=None)) == [], "a late answer is ignored"


def test_warranty_by_serial_active_and_expired():
    body = """
    [menus.main]
    type = "collect"
    prompt = "enter"
    variable = "serial"
    min_length = 6
    max_length = 12
    next = "lookup"

    [menus.lookup]
    type = "lookup"
    lookup = "warranty"
    input = "serial"
    by = "serial"
    found = "result"
    not_found = "bye"

    [menus.result]
    type = "play"
    prompt = ["{date:warranty.end}"]
    next = "bye"

    [menus.bye]
    type = "hangup"
    """
    d = Driver(menu(body))
    d.start()
    d.press("1234567890#")
    assert d.last(Lookup).by == "serial"
    assert d.session.variables["warranty.status"] == "active"
    assert "January thirty first two thousand twenty seven" in d.of(Play)[-1].text

    d = Driver(menu(body))
    d.start()
    d.press("5555555555#")
    assert d.session.variables["warranty.status"] == "expired"


BALANCE = """
[menus.main]
type = "lookup"
lookup = "balance"
found = "result"
not_found = "sorry"

[menus.result]
type = "play"
prompt = ["amount", "{money:account.amount}"]
next = "bye"

[menus.sorry]
type = "hangup"
prompt = "sorry"

[menus.bye]
type = "hangup"
"""


def test_balance_for_the_identified_caller():
    d = Driver(menu(BALANCE), caller="+8613900000002")
    d.start()
    assert d.of(Lookup)[0].kind == "caller"
    lookup = d.last(Lookup)
    assert (lookup.kind, lookup.customer_id) == ("balance", 2)
    assert "eighty eight yuan fifty fen" in d.of(Play)[-1].text
    assert d.session.variables["account.status"] == "owing"


def test_balance_for_an_unknown_caller_is_not_found_without_a_lookup():
    d = Driver(menu(BALANCE), caller="+8613999999999")
    d.start()
    assert [lk.kind for lk in d.of(Lookup)] == ["caller"]
    assert "sorry" in d.prompts()


# ----------------------------------------------------------------------------- caller ID

CALLER = """
[caller]
blacklisted = "blocked"

[defaults]
tier_priority = { vip = 9, gold = 7 }
tier_queue = { vip = "vip" }

[menus.main]
type = "caller"
tiers = { vip = "greet_vip", gold = "greet_gold" }
known = "greet_known"
unknown = "greet_new"

[menus.greet_vip]
type = "play"
prompt = "vip"
next = "q"

[menus.greet_gold]
type = "play"
prompt = "gold"
next = "q"

[menus.greet_known]
type = "play"
prompt = "known"
next = "q"

[menus.greet_new]
type = "play"
prompt = "new"
next = "q"

[menus.q]
type = "queue"
queue = "sales"
priority = 5

[menus.blocked]
type = "hangup"
reason = "blacklisted"
prompt = "blocked"
"""


@pytest.mark.parametrize(
    ("caller", "greeting", "route"),
    [
        ("+8613900000003", "vip", RouteToQueue("vip", 9, {})),
        ("+8613900000002", "gold", RouteToQueue("sales", 7, {})),
        ("+8613900000001", "known", RouteToQueue("sales", 5, {})),
        ("+8613999999999", "new", RouteToQueue("sales", 5, {})),
        (None, "new", RouteToQueue("sales", 5, {})),
    ],
)
def test_greeting_and_priority_by_tier(caller, greeting, route):
    d = Driver(menu(CALLER), caller=caller)
    d.start()
    assert d.prompts()[0] == greeting
    assert d.actions[-1] == route
    assert bool(d.of(Lookup)) is (caller is not None)


def test_blacklisted_caller_gets_the_configured_treatment():
    d = Driver(menu(CALLER), caller="+8613900000004")
    d.start()
    assert d.prompts() == ["blocked"]
    assert d.actions[-1] == Hangup("blacklisted")
    assert d.session.record().customer_id == 4


def test_caller_lookup_timeout_treats_the_caller_as_unknown():
    d = Driver(menu(CALLER), caller="+8613900000003", auto_lookups=False)
    d.start()
    assert d.session.waiting_for == "caller_lookup"
    assert d.press("1") == []
    d.time_out()
    assert d.prompts()[0] == "new"
    assert d.steps("caller_lookup")[0]["timed_out"] is True


def test_caller_lookup_error_treats_the_caller_as_unknown():
    d = Driver(menu(CALLER), caller="+8613900000003", auto_lookups=False)
    d.start()
    d.answer_lookup(error="OperationalError: no such table")
    assert d.prompts()[0] == "new"


def test_queue_language_skill_follows_the_callers_language():
    body = """
    [menus.main]
    prompt = "menu"
    options = { 1 = "zh", 2 = "en" }

    [menus.zh]
    type = "language"
    language = "zh"
    next = "q"

    [menus.en]
    type = "language"
    language = "en"
    next = "q"

    [menus.q]
    type = "queue"
    queue = "support"
    skills = { support = 2 }
    language_skill = 3
    prompt = "to_queue"
    """
    d = Driver(menu(body, languages=("zh", "en")), language="zh")
    d.start()
    assert d.of(Play)[0].language == "zh" and d.of(Play)[0].text == "zh:menu"
    d.press("2")
    assert SetLanguage("en") in d.actions
    assert d.of(Play)[-1].language == "en" and d.of(Play)[-1].text == "en:to_queue"
    assert d.actions[-1] == RouteToQueue("support", 5, {"support": 2, "en": 3})
    assert d.session.record().language == "en"


# ----------------------------------------------------------------------------- hours

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
type = "hangup"
reason = "closed"
prompt = "closed"

[menus.holiday]
type = "hangup"
reason = "closed"
prompt = "holiday"
"""


def test_hours_branch_open_and_closed():
    d = Driver(menu(HOURS), now=MONDAY_10AM)
    d.start()
    assert d.actions[-1] == RouteToQueue("general", 5, {})
    d = Driver(menu(HOURS), now=SUNDAY_10AM)
    d.start()
    assert d.prompts() == ["closed"] and d.actions[-1] == Hangup("closed")


# ----------------------------------------------------------------------------- callbacks

CALLBACK = """
[menus.main]
prompt = "menu"
options = { 1 = "keep", 2 = "when", 3 = "next" }

[menus.keep]
type = "callback"
queue = "general"
keep_place = true
confirm = "confirm"

[menus.when]
type = "collect"
prompt = "enter"
variable = "at"
min_length = 4
max_length = 4
terminator = ""
check = "hhmm"
next = "at_time"

[menus.at_time]
type = "callback"
queue = "sales"
at = "at"
confirm = ["confirm", "{date:callback.due}", "{time:callback.due}"]
outside_hours = "sorry"

[menus.next]
type = "callback"
queue = "general"
at = "next_opening"
no_number = "sorry"

[menus.sorry]
type = "hangup"
prompt = "sorry"
"""


def test_callback_keeping_the_place_in_the_queue():
    d = Driver(menu(CALLBACK), caller="+8613900000002")
    d.start()
    d.press("1")
    request = d.last(RequestCallback)
    assert (request.queue, request.number, request.keep_place, request.due, request.customer_id) == (
        "general", "+8613900000002", True, None, 2,
    )
    assert d.actions[-1] == Hangup("callback_requested")
    assert d.session.outcome == "callback_requested"
    assert "confirm" in d.prompts()


def test_callback_at_a_chosen_time_later_today_and_tomorrow():
    d = Driver(menu(CALLBACK), caller="+8613900000001")
    d.start()
    d.press("2")
    d.press("1430")
    due = d.last(RequestCallback).due
    assert due == dt.datetime(2026, 11, 2, 14, 30, tzinfo=MONDAY_10AM.tzinfo)
    assert "two thirty p m" in d.of(Play)[-1].text

    d = Driver(menu(CALLBACK), caller="+8613900000001")
    d.start()
    d.press("2")
    d.press("0930")  # already past today: tomorrow morning
    assert d.last(RequestCallback).due == dt.datetime(2026, 11, 3, 9, 30, tzinfo=MONDAY_10AM.tzinfo)


def test_callback_time_outside_hours_goes_to_outside_hours():
    d = Driver(menu(CALLBACK), caller="+8613900000001")  # default hours: Monday to Friday, 09:00-18:00
    d.start()
    d.press("2")
    d.press("2000")
    assert not d.of(RequestCallback)
    assert "sorry" in d.prompts()


def test_callback_time_outside_hours_without_a_target_moves_to_the_next_opening():
    body = CALLBACK.replace('outside_hours = "sorry"', "")
    d = Driver(menu(body), caller="+8613900000001")
    d.start()
    d.press("2")
    d.press("2000")
    assert d.last(RequestCallback).due == dt.datetime(2026, 11, 3, 9, 0, tzinfo=MONDAY_10AM.tzinfo)


def test_callback_at_next_opening_when_closed_and_without_a_number():
    d = Driver(menu(CALLBACK), caller="+8613900000001", now=SUNDAY_10AM)
    d.start()
    d.press("3")
    assert d.last(RequestCallback).due == dt.datetime(2026, 11, 2, 9, 0, tzinfo=MONDAY_10AM.tzinfo)

    d = Driver(menu(CALLBACK), caller=None)
    d.start()
    d.press("3")
    assert not d.of(RequestCallback)
    assert d.prompts()[-1] == "sorry"


# ----------------------------------------------------------------------------- endings and limits


def test_transfer_and_hangup_nodes():
    body = """
    [menus.main]
    prompt = "menu"
    options = { 1 = "out", 2 = "bye" }

    [menus.out]
    type = "transfer"
    destination = "sip:operator@pbx.example"
    prompt = "to_queue"

    [menus.bye]
    type = "hangup"
    reason = "self_service"
    prompt = "bye"
    """
    d = Driver(menu(body))
    d.start()
    assert d.press("1")[-1] == Transfer("sip:operator@pbx.example")
    assert d.session.outcome == "transferred"
    d = Driver(menu(body))
    d.start()
    actions = d.press("2")
    assert isinstance(actions[0], Play) and actions[-1] == Hangup("self_service")


def test_max_steps_sends_the_caller_to_on_limit_then_hangs_up_on_a_second_overrun():
    body = """
    [limits]
    max_steps = 5
    on_limit = "q"

    [menus.main]
    prompt = "menu"
    options = { 1 = "other" }

    [menus.other]
    prompt = "sub"
    options = { 1 = "main" }

    [menus.q]
    type = "queue"
    queue = "general"
    """
    d = Driver(menu(body))
    d.start()
    d.press("1111")
    assert not d.session.ended
    d.press("1")
    assert d.last(RouteToQueue).queue == "general"
    assert d.steps("limit")[0]["limit"] == "max_steps"


def test_max_seconds_limit():
    body = """
    [limits]
    max_seconds = 60

    [menus.main]
    prompt = "menu"
    options = { 1 = "main" }
    """
    d = Driver(menu(body))
    d.start()
    d.press("1", gap=30)
    assert not d.session.ended
    d.press("1", gap=31)
    assert d.actions[-1] == Hangup("failed")
    assert d.steps("limit")[0]["limit"] == "max_seconds"


def test_missing_target_at_run_time_hangs_up_instead_of_crashing():
    body = """
    [menus.main]
    prompt = "menu"
    options = { 1 = "nowhere" }
    """
    d = Driver(menu(body))
    d.start()
    d.press("1")
    assert d.actions[-1] == Hangup("failed")
    assert d.steps("error")[0]["node"] == "nowhere"


def test_caller_hanging_up_ends_the_session_as_abandoned():
    d = Driver(menu(MAIN))
    d.start()
    assert d.send(CallerHungUp()) == []
    assert d.session.ended and d.session.outcome == "abandoned"
    assert d.press("1") == []


# ----------------------------------------------------------------------------- API and records


def test_session_api_misuse_raises_session_error():
    session = IvrSession(menu(MAIN), CallInfo("x"))
    with pytest.raises(SessionError):
        session.handle(DigitReceived("1"), MONDAY_10AM)
    with pytest.raises(SessionError):
        session.start(dt.datetime(2026, 11, 2, 10, 0))
    assert session.handle(CallStarted(), MONDAY_10AM)[0] == SetLanguage("en")
    assert session.start(MONDAY_10AM) == [], "starting twice does nothing"


def test_record_is_json_serialisable_and_tells_the_path():
    d = Driver(menu(CALLER + "\n"), caller="+8613900000002")
    d.start()
    record = d.session.record()
    data = json.loads(json.dumps(record.to_json()))
    assert data["outcome"] == "queued" and data["customer_id"] == 2 and data["tier"] == "gold"
    assert [s["node"] for s in data["path"] if s["step"] == "enter"] == ["main", "greet_gold", "q"]
    assert data["final_action"] == {"type": "RouteToQueue", "queue": "sales", "priority": 7, "skills": {}}
    assert data["variables"]["caller.tier"] == "gold"
    assert json.loads(json.dumps(d.session.path_json())) == data["path"]


def test_same_events_give_the_same_actions():
    def run() -> list:
        d = Driver(menu(ORDER), port=demo_port())
        d.start()
        d.press("123#")
        d.time_out()
        d.press("12345674#")
        return d.actions

    assert run() == run()


def test_money_amounts_keep_their_currency():
    d = Driver(menu(ORDER))
    d.port.orders["55555"] = OrderStatus("55555", "paid", Decimal("1.01"), "USD", dt.date(2026, 1, 5), 1)
    d.start()
    d.press("55555#")
    result = [p for p in d.of(Play) if p.prompts[0] == "status_paid"][0]
    assert "one dollar one cent" in result.text


# ----------------------------------------------------------------------------- type-ahead

TYPE_AHEAD = """
[menus.greet]
type = "play"
prompt = "hello"
next = "notice"

[menus.notice]
type = "play"
prompt = "wait"
next = "main"

[menus.main]
prompt = "menu"
options = { 1 = "sales", 2 = "sub", 3 = "account" }
invalid_prompt = "invalid"
repeat_key = "#"
on_failure = "general"

[menus.sub]
prompt = "sub"
options = { 1 = "support", 2 = "general" }
back_key = "*"

[menus.account]
type = "collect"
prompt = "enter"
variable = "account"
min_length = 4
max_length = 6
sensitive = true
next = "general"

[menus.sales]
type = "queue"
queue = "sales"

[menus.support]
type = "queue"
queue = "support"

[menus.general]
type = "queue"
queue = "general"
"""


def ta_menu(body: str):
    return menu(body, head='start = "greet"')


def greet_with(setting: str) -> str:
    return TYPE_AHEAD.replace('next = "notice"', f'next = "notice"\n{setting}', 1)


def step_data(d: Driver, name: str) -> list[dict]:
    return [{k: v for k, v in s.items() if k != "at"} for s in d.steps(name)]


def test_a_key_during_the_greeting_stops_it_and_the_menu_takes_it_without_its_prompt():
    d = Driver(ta_menu(TYPE_AHEAD), auto_prompts=False)
    d.start()
    greeting = d.last(Play)
    assert greeting.prompts == ("hello",) and greeting.barge_in, "the driver may stop the greeting at a key"
    assert d.session.waiting_for == "digits"
    actions = d.press("1")
    assert actions[-1] == RouteToQueue("sales", 5, {})
    assert [p.prompts for p in d.of(Play)] == [("hello",)], "neither the notice nor the menu prompt is started"
    assert step_data(d, "type_ahead") == [
        {"node": "greet", "step": "type_ahead", "buffered": 1, "barge_in": True},
        {"node": "notice", "step": "type_ahead", "skipped": True, "buffered": 1},
    ]
    assert step_data(d, "input") == [{"node": "main", "step": "input", "digits": "1", "typed_ahead": True}]
    assert d.session.typed_ahead == ""


def test_keys_typed_during_a_greeting_that_plays_to_the_end_walk_several_menus():
    d = Driver(ta_menu(greet_with("barge_in = false")), auto_prompts=False)
    d.start()
    assert not d.last(Play).barge_in and d.session.waiting_for == "prompt"
    assert d.press("21") == [], "kept, and the greeting goes on"
    assert d.session.typed_ahead == "21"
    assert [s.get("barge_in") for s in d.steps("type_ahead")] == [None, None]
    actions = d.finish_prompt()
    assert actions[-1] == RouteToQueue("support", 5, {})
    assert [p.prompts for p in d.of(Play)] == [("hello",)]
    inputs = [(s["node"], s["digits"], s["typed_ahead"]) for s in d.steps("input")]
    assert inputs == [("main", "2", True), ("sub", "1", True)]


def test_type_ahead_off_on_a_play_node_ignores_keys_while_it_plays():
    d = Driver(ta_menu(greet_with("type_ahead = false")), auto_prompts=False)
    d.start()
    assert not d.last(Play).barge_in and d.session.waiting_for == "prompt"
    assert d.press("1") == []
    assert d.session.typed_ahead == "" and not d.steps("type_ahead")
    d.finish_prompt()
    assert d.last(Play).prompts == ("wait",), "the next play node is played as usual"
    d.finish_prompt()
    assert d.last(Play).prompts == ("menu",) and not d.steps("input")
    d.finish_prompt()
    assert d.press("1")[-1] == RouteToQueue("sales", 5, {})


def test_defaults_can_switch_type_ahead_off_for_every_node():
    d = Driver(ta_menu("[defaults]\ntype_ahead = false\n" + TYPE_AHEAD), auto_prompts=False)
    d.start()
    assert d.press("1") == [] and d.session.typed_ahead == ""


def test_keys_waiting_do_not_skip_a_notice_that_must_be_heard():
    body = TYPE_AHEAD.replace('next = "main"', 'next = "main"\nbarge_in = false', 1)
    d = Driver(ta_menu(body), auto_prompts=False)
    d.start()
    d.press("1")
    assert d.last(Play).prompts == ("wait",) and d.session.node == "notice", "the greeting stopped, the notice plays"
    assert d.session.typed_ahead == "1"
    actions = d.send(PromptFinished(d.last(Play).play_id), after=1)
    assert actions[-1] == RouteToQueue("sales", 5, {})


def test_a_menu_with_type_ahead_off_drops_waiting_keys_and_plays_its_prompt():
    body = TYPE_AHEAD.replace('on_failure = "general"', 'on_failure = "general"\ntype_ahead = false', 1)
    d = Driver(ta_menu(body), auto_prompts=False)
    d.start()
    d.press("1")
    assert d.session.node == "main" and d.last(Play).prompts == ("menu",)
    assert step_data(d, "type_ahead")[-1] == {"node": "main", "step": "type_ahead", "discarded": 1}
    assert not d.steps("input") and not d.session.ended


def test_a_wrong_key_typed_ahead_is_invalid_input_and_the_keys_after_it_are_dropped():
    d = Driver(ta_menu(greet_with("barge_in = false")), auto_prompts=False)
    d.start()
    d.press("71")
    d.finish_prompt()
    assert step_data(d, "invalid") == [
        {"node": "main", "step": "invalid", "attempt": 1, "digits": "7", "typed_ahead": True},
    ]
    assert step_data(d, "type_ahead")[-1] == {"node": "main", "step": "type_ahead", "discarded": 1}
    assert d.last(Play).prompts == ("invalid", "menu"), "the caller now hears the menu"
    assert not d.session.ended and d.session.typed_ahead == ""


def test_a_collect_node_takes_typed_digits_waits_for_the_rest_and_keeps_them_secret():
    d = Driver(ta_menu(greet_with("barge_in = false")), auto_prompts=False)
    d.start()
    d.press("312")
    d.finish_prompt()
    assert d.session.node == "account" and d.session.digits == "12"
    assert "enter" not in d.prompts(), "the collect prompt is not played"
    assert d.timer is not None and d.timer.seconds == 4, "the inter-digit timer runs for the rest"
    d.press("34#")
    assert d.session.variables["account"] == "1234"
    assert step_data(d, "input")[-1] == {
        "node": "account", "step": "input", "variable": "account", "digits": "****", "typed_ahead": True,
    }
    assert all("digits" not in s for s in d.steps("type_ahead")), "keys kept are counted, not shown"
    assert "1234" not in json.dumps(d.session.path_json())


def test_a_whole_entry_typed_ahead_finishes_the_collect_node():
    d = Driver(ta_menu(greet_with("barge_in = false")), auto_prompts=False)
    d.start()
    d.press("3123456")  # max_length 6: no terminator needed
    actions = d.finish_prompt()
    assert actions[-1] == RouteToQueue("general", 5, {})
    assert d.session.record().variables == {}, "sensitive"


def test_the_repeat_and_back_keys_work_when_typed_ahead():
    d = Driver(ta_menu(greet_with("barge_in = false")), auto_prompts=False)
    d.start()
    d.press("2*1")
    assert d.finish_prompt()[-1] == RouteToQueue("sales", 5, {})
    assert step_data(d, "back") == [{"node": "sub", "step": "back", "target": "main", "typed_ahead": True}]


def test_the_type_ahead_buffer_is_bounded_and_so_is_the_path():
    d = Driver(ta_menu(greet_with("barge_in = false")), auto_prompts=False)
    d.start()
    assert d.session.type_ahead_limit == 20
    d.press("2" * 50, gap=0.05)
    assert d.session.typed_ahead == "2" * 20
    assert len(d.steps("type_ahead")) == 20
    assert d.steps("type_ahead")[-1]["buffered"] == 20


def test_the_buffer_holds_at_least_one_whole_collect_entry():
    body = TYPE_AHEAD.replace("max_length = 6", "max_length = 32")
    session = IvrSession(ta_menu(body), CallInfo("x"))
    assert session.type_ahead_limit == 33, "32 digits and the terminator"


def test_characters_that_are_not_dtmf_keys_are_not_typed_ahead():
    d = Driver(ta_menu(TYPE_AHEAD), auto_prompts=False)
    d.start()
    for junk in ("A", "12", "", "x", "\x00", "１"):
        assert d.send(DigitReceived(junk)) == []
    assert d.send(DigitsEntered("AB")) == []
    assert d.session.typed_ahead == "" and d.session.node == "greet" and not d.steps("type_ahead")


def test_keys_typed_ahead_are_dropped_when_the_caller_hangs_up():
    d = Driver(ta_menu(greet_with("barge_in = false")), auto_prompts=False)
    d.start()
    d.press("12")
    d.send(CallerHungUp())
    assert d.session.outcome == "abandoned" and d.session.typed_ahead == ""


def test_play_nodes_keep_keys_by_default_in_the_sample_menu_too():
    from ivr_support import REPO

    from callcenter.prompts import load_menu

    sample = load_menu(REPO / "config" / "ivr.toml").menu
    d = Driver(sample, caller="+8613999999999", language="zh", auto_prompts=False)
    d.start()
    d.press("1")  # Mandarin (barge-in on the language menu)
    d.finish_prompt()
    assert d.last(Play).prompts == ("welcome",) and d.session.waiting_for == "digits"
    actions = d.press("1", gap=3)  # three seconds into the greeting: sales
    assert actions[-1].queue == "sales"
    assert "main_menu" not in d.prompts()
    assert [(s["node"], s["digits"], s.get("typed_ahead")) for s in d.steps("input")] == [
        ("language", "1", None), ("main", "1", True),
    ]


def test_closed_menu_in_the_sample_does_not_take_keys_meant_for_the_main_menu():
    from ivr_support import REPO

    from callcenter.prompts import load_menu

    sample = load_menu(REPO / "config" / "ivr.toml").menu
    d = Driver(sample, caller="+8613999999999", language="zh", now=SUNDAY_10AM, auto_prompts=False)
    d.start()
    d.press("1")
    d.finish_prompt()
    d.press("1")  # during the greeting
    assert d.session.node == "closed" and d.last(Play).prompts == ("closed", "closed_options")
    assert not d.of(RequestCallback)


def test_a_bad_type_ahead_value_is_an_error_naming_the_node():
    from ivr import MenuError

    with pytest.raises(MenuError) as caught:
        ta_menu(greet_with('type_ahead = "yes"'))
    assert caught.value.problems == [("menus.greet.type_ahead", "must be true or false (no quotes), not 'yes'")]
    with pytest.raises(MenuError) as caught:
        ta_menu("[defaults]\ntype_ahead = 1\n" + TYPE_AHEAD)
    assert caught.value.problems[0][0] == "defaults.type_ahead"
    with pytest.raises(MenuError) as caught:
        ta_menu(TYPE_AHEAD.replace('queue = "sales"', 'queue = "sales"\ntype_ahead = true', 1))
    assert caught.value.problems[0][0] == "menus.sales.type_ahead" and "unknown key" in caught.value.problems[0][1]


def test_checker_warns_about_type_ahead_that_no_menu_takes():
    from ivr import check_menu

    body = """
    [menus.main]
    type = "play"
    prompt = "hello"
    next = "q"
    type_ahead = true

    [menus.q]
    type = "queue"
    queue = "sales"
    """
    findings = [f for f in check_menu(menu(body), queues=["sales"]) if "type_ahead" in f.path]
    assert [(f.path, f.severity) for f in findings] == [("menus.main.type_ahead", "warning")]
    queues = ["sales", "support", "general"]
    assert not [f for f in check_menu(ta_menu(TYPE_AHEAD), queues=queues) if "type_ahead" in f.path]
    assert not [f for f in check_menu(menu(body.replace("type_ahead = true", "")), queues=["sales"]) if "type_ahead" in f.path]


# A caller who types a valid path during the greeting ends where pressing the same keys at
# each menu would have taken them.
KEY_PATHS = st.one_of(
    st.sampled_from(["1", "21", "22", "2*1", "2*21", "#1", "#22"]),
    st.text(alphabet="0123456789", min_size=4, max_size=6).map(lambda digits: "3" + digits + "#"),
    st.text(alphabet="0123456789", min_size=6, max_size=6).map(lambda digits: "3" + digits),
)


@settings(max_examples=80, deadline=None)
@given(KEY_PATHS, st.booleans())
def test_typing_ahead_a_path_ends_where_pressing_it_at_the_menus_does(keys, barge_in):
    live = Driver(ta_menu(TYPE_AHEAD))
    live.start()
    live.press(keys)

    ahead = Driver(ta_menu(greet_with(f"barge_in = {str(barge_in).lower()}")), auto_prompts=False)
    ahead.start()
    ahead.press(keys)
    if not ahead.session.ended:
        ahead.auto_prompts = True
        ahead.finish_prompt()
    assert ahead.session.ended and ahead.actions[-1] == live.actions[-1]
    assert [s["digits"] for s in ahead.steps("input")] == [s["digits"] for s in live.steps("input")]
    first = next(s for s in ahead.session.path_json() if s["step"] in ("input", "repeat", "back"))
    assert first["node"] == "main" and first["typed_ahead"] is True
    if not barge_in:
        assert ahead.prompts() == ["hello"], "every key was typed ahead: no menu prompt is played"


@settings(max_examples=120, deadline=None)
@given(st.text(alphabet="0123456789*#AB x", max_size=60), st.booleans(), st.booleans())
def test_any_keys_during_the_greeting_are_bounded_and_the_call_still_ends(keys, barge_in, type_ahead):
    body = greet_with(f"barge_in = {str(barge_in).lower()}\ntype_ahead = {str(type_ahead).lower()}")
    d = Driver(ta_menu(body), auto_prompts=False)
    d.start()
    for key in keys:
        d.send(DigitReceived(key), after=0.05)
        assert len(d.session.typed_ahead) <= d.session.type_ahead_limit
    assert len(d.steps("type_ahead")) <= d.session.type_ahead_limit + 3
    d.auto_prompts = True
    if d.playing:
        d.finish_prompt()
    silences = 0
    while not d.session.ended:
        assert d.timer is not None, d.session.path_json()[-3:]
        d.time_out()
        silences += 1
        assert silences < 50
    assert d.session.typed_ahead == ""
    assert json.loads(json.dumps(d.session.path_json()))[-1]["step"] == "end"


def test_a_hangup_reason_of_blocked_from_older_configurations_reads_as_blacklisted():
    """`blocked` is the front's outcome for "every worker full"; the IVR's own refusal is `blacklisted`."""
    from ivr.menu import HangupNode

    assert HangupNode(type="hangup", reason="blocked").reason == "blacklisted"
    with pytest.raises(ValueError):
        HangupNode(type="hangup", reason="turned_away")
