"""The screen pop as values: IVR route and keys, callback urgency, the wire format, and rendering safely."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from screenpop.pop import AgentCallback, CallContext, CustomerCandidate, ScreenPop, ivr_digits, ivr_route, pop_kind
from screenpop.profile import CallbackSummary, CaseSummary, ContactSummary, CustomerProfile, OrderLine, OrderSummary
from screenpop.render import render_callbacks, render_pop, render_profile
from screenpop.wire import WireError, from_wire, pop_from_wire, profile_from_wire, to_wire

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
HOSTILE = ("[bold red]x[/]", "evil\x1b[2J\x1b]0;pwned\x07name", "rtl\u202eoverride", "[link=file:///etc/passwd]y[/link]")

PATH = (
    {"at": "2026-11-23T02:00:00+00:00", "node": None, "step": "start", "caller": "+8613912345678"},
    {"at": "2026-11-23T02:00:01+00:00", "node": "language", "step": "enter", "type": "menu"},
    {"at": "2026-11-23T02:00:02+00:00", "node": "language", "step": "input", "digits": "1"},
    {"at": "2026-11-23T02:00:02+00:00", "node": "lang_zh", "step": "enter", "type": "language"},
    {"at": "2026-11-23T02:00:03+00:00", "node": "main", "step": "enter", "type": "menu"},
    {"at": "2026-11-23T02:00:04+00:00", "node": "main", "step": "input", "digits": "0"},
    {"at": "2026-11-23T02:00:05+00:00", "node": "account", "step": "input", "digits": "******"},
    {"at": "2026-11-23T02:00:05+00:00", "node": "main", "step": "enter", "type": "menu"},
    "not a step",
)


def profile(**overrides) -> CustomerProfile:
    values = dict(
        customer_id=7, external_id="C-7", name="Li Lei", company="Acme", email="li@example.com", tier="vip",
        language="zh", notes="prefers WeChat", blacklisted=True, blacklist_reason="chargeback fraud",
        do_not_call=False, do_not_call_reason=None, credit_limit=Decimal("20000.00"), balance=Decimal("150.50"),
        numbers=("+8613912345678",),
        orders=(OrderSummary("SO1", NOW - dt.timedelta(days=10), Decimal("3299.00"), "CNY", "delivered",
                             (OrderLine("Air conditioner", 1, Decimal("3299.00"), "AC1", dt.date(2027, 1, 5)),)),),
        order_count=1, lifetime_spend=Decimal("3299.00"), last_order_at=NOW - dt.timedelta(days=10),
        cases=(CaseSummary(3, "repair", "open", NOW - dt.timedelta(days=2), None, "unit does not cool"),),
        contacts=(ContactSummary(NOW - dt.timedelta(hours=3), "inbound", "general", "Wang Fang", "answered", "repair",
                                 "technician booked", 120.0),),
        callbacks=(CallbackSummary(5, "+8613912345678", NOW + dt.timedelta(hours=1), None, "pending", None, 0),),
    )
    values.update(overrides)
    return CustomerProfile(**values)


def text_of(renderable, width: int = 140) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None, force_terminal=True)
    console.print(renderable)
    return console.export_text()


def test_ivr_route_and_keys_from_the_path():
    assert ivr_route(PATH) == ("language", "lang_zh", "main")
    assert ivr_digits(PATH) == ("1", "0", "******"), "masked entries stay masked"
    assert CallContext("c", ivr_path=PATH[:-1]).route == ("language", "lang_zh", "main")


def test_the_pop_kind_follows_the_profile_then_the_number_owners():
    from screenpop import choose_pop_kind

    assert choose_pop_kind(has_profile=True, candidates=0) == "customer", "identified by the IVR"
    assert choose_pop_kind(has_profile=True, candidates=3) == "customer"
    assert choose_pop_kind(has_profile=False, candidates=0) == "new"
    assert choose_pop_kind(has_profile=False, candidates=1) == "new", "the only owner vanished before its profile loaded"
    assert choose_pop_kind(has_profile=False, candidates=2) == "choose"


def test_pop_kind_and_callback_urgency():
    assert [pop_kind(n) for n in (0, 1, 2, 9)] == ["new", "customer", "choose", "choose"]
    base = dict(callback_id=1, number="+8613912345678", customer_id=None, customer_name=None, queue=None,
                status="pending", owner=None, attempts=0)
    assert AgentCallback(**base, due_from=NOW + dt.timedelta(minutes=5), due_until=None).urgency(NOW) == "later"
    assert AgentCallback(**base, due_from=NOW - dt.timedelta(minutes=5), due_until=None).urgency(NOW) == "due"
    assert AgentCallback(**base, due_from=NOW - dt.timedelta(minutes=61), due_until=None).urgency(NOW) == "overdue"
    assert AgentCallback(**base, due_from=NOW - dt.timedelta(hours=3),
                         due_until=NOW + dt.timedelta(minutes=1)).urgency(NOW) == "due"
    assert AgentCallback(**base, due_from=NOW - dt.timedelta(hours=3),
                         due_until=NOW - dt.timedelta(minutes=1)).urgency(NOW) == "overdue"


def test_the_wire_format_round_trips_a_whole_pop():
    pop = ScreenPop(kind="customer", number="+8613912345678", profile=profile(),
                    call=CallContext("c1", ani="+8613912345678", display_name="Zhang", queue="general",
                                     waited_seconds=12.5, ivr_path=PATH[:-1]),
                    recent_calls=2, repeat_hours=24)
    wire = to_wire(pop)
    assert wire["profile"]["balance"] == "150.50" and wire["profile"]["orders"][0]["lines"][0]["warranty_end"] == "2027-01-05"
    assert pop_from_wire(wire) == pop
    assert profile_from_wire(to_wire(profile())) == profile()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w.pop("name"), "name: missing"),
        (lambda w: w.update(balance=1.5), "balance: expected a decimal string"),
        (lambda w: w.update(balance="lots"), "is not a number"),
        (lambda w: w.update(last_order_at="yesterday"), "ISO 8601"),
        (lambda w: w.update(blacklisted="no"), "true or false"),
        (lambda w: w.update(numbers="+86139"), "expected a list"),
        (lambda w: w["orders"][0]["lines"][0].update(quantity="1"), "expected an integer"),
    ],
)
def test_bad_wire_data_is_refused_with_the_field_named(change, message):
    wire = to_wire(profile())
    change(wire)
    with pytest.raises(WireError, match=message):
        profile_from_wire(wire)


def test_an_unknown_pop_kind_is_refused():
    wire = to_wire(ScreenPop(kind="new", number=None))
    wire["kind"] = "surprise"
    with pytest.raises(WireError, match="kind"):
        pop_from_wire(wire)


@given(st.text(max_size=60), st.decimals(allow_nan=False, allow_infinity=False, places=2, max_value=10**9,
                                          min_value=-10**9))
def test_any_text_and_amount_survive_the_wire(name, amount):
    original = profile(name=name, balance=amount, notes=name)
    assert from_wire(CustomerProfile, to_wire(original)) == original


@pytest.mark.parametrize("hostile", HOSTILE)
def test_caller_controlled_text_is_shown_literally(hostile):
    pop = ScreenPop(kind="customer", number="+8613912345678",
                    profile=profile(name=hostile, company=hostile, notes=hostile,
                                    contacts=(ContactSummary(NOW, "inbound", hostile, hostile, "answered", hostile,
                                                             hostile, 1.0),)),
                    call=CallContext("c1", ani="+8613912345678", display_name=hostile, queue="general"))
    shown = text_of(render_pop(pop, now=NOW, region="CN"))
    expected = hostile.replace("\x1b", "\ufffd").replace("\x07", "\ufffd").replace("\u202e", "\ufffd")
    assert expected in shown, "shown as typed, control characters made visible"
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown


def test_markup_in_a_display_name_applies_no_style():
    console = Console(width=120, file=io.StringIO(), color_system="truecolor", force_terminal=True)
    pop = ScreenPop(kind="new", number="+8613912345678",
                    call=CallContext("c1", ani="+8613912345678", display_name="[bold red]x[/]"))
    segments = list(console.render(render_pop(pop, now=NOW, region="CN")))
    styled = [s for s in segments if "[bold red]x[/]" in s.text]
    assert styled and all(s.style is None or s.style.color is None or s.style.color.name != "red" for s in styled)


def test_the_three_kinds_of_pop_render_what_the_agent_needs():
    call = CallContext("c1", ani="+8613912345678", display_name="Zhang", queue="general", queue_name="General",
                       waited_seconds=75, ivr_path=PATH[:-1])
    shown = text_of(render_pop(ScreenPop(kind="customer", number="+8613912345678", profile=profile(), call=call,
                                         recent_calls=2), now=NOW, region="CN"))
    for expected in ("139 1234 5678", "General", "waited 1:15", "language → lang_zh → main", "1 0 ******",
                     "2 other contact(s) in the last 24 h", "Li Lei", "VIP", "BLACKLISTED", "chargeback fraud",
                     "ARREARS ¥150.50", "REPEAT CALLER (24 h)", "1 OPEN CASE(S)", "Air conditioner", "active",
                     "technician booked", "RFM", "credit ¥20,000.00", "Pending callbacks"):
        assert expected in shown, expected
    choose = ScreenPop(kind="choose", number="+8613912345678", call=call, candidates=(
        CustomerCandidate(1, None, "Wang Jun", "Acme", "gold", ("+8613912345678",)),
        CustomerCandidate(2, None, "Wang Jun Jr", None, "standard", ("+8613912345678",), blacklisted=True)))
    shown = text_of(render_pop(choose, now=NOW, region="CN"))
    assert "2 customers share this number" in shown and "Wang Jun Jr" in shown and "BLACKLISTED" in shown
    new = ScreenPop(kind="new", number="+442071838750", call=call,
                    number_history=(ContactSummary(NOW - dt.timedelta(days=1), "inbound", "sales", None, "abandoned",
                                                   None, None, None),),
                    number_callbacks=(CallbackSummary(9, "+442071838750", NOW, None, "pending", None, 0),))
    shown = text_of(render_pop(new, now=NOW, region="CN"))
    assert "New contact" in shown and "+44 20 7183 8750" in shown and "Press a to create" in shown
    assert "Earlier contacts from this number" in shown and "abandoned" in shown and "Pending callbacks" in shown


def test_the_live_pop_decides_the_repeat_flag_not_the_history():
    recent = profile(contacts=(ContactSummary(NOW - dt.timedelta(minutes=5), "inbound", None, None, None, None, None,
                                              None),))
    assert "REPEAT CALLER" in text_of(render_profile(recent, now=NOW))
    assert "REPEAT CALLER" not in text_of(render_profile(recent, now=NOW, repeat_caller=False)), \
        "the call in progress is not a repeat of itself"
    assert "REPEAT CALLER (48 h)" in text_of(render_profile(profile(contacts=()), now=NOW, repeat_caller=True,
                                                            repeat_hours=48))


def test_callbacks_render_with_their_urgency():
    base = dict(number="+8613912345678", customer_id=None, customer_name="[red]Ann[/]", queue=None,
                status="pending", owner=None, attempts=1)
    shown = text_of(render_callbacks([
        AgentCallback(1, due_from=NOW - dt.timedelta(hours=5), due_until=None, **base),
        AgentCallback(2, due_from=NOW - dt.timedelta(minutes=5), due_until=None, **base),
        AgentCallback(3, due_from=NOW + dt.timedelta(hours=5), due_until=None, **base)], now=NOW))
    assert "overdue" in shown and "due" in shown and "later" in shown and "[red]Ann[/]" in shown
