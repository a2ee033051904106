"""Invariants over random callers: any keys and silences end the IVR in a bounded number of steps, never raising."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ivr_support import REPO, SHANGHAI, Driver, demo_port

from callcenter.config import load
from callcenter.prompts import load_menu
from ivr import TERMINAL_ACTIONS, DigitReceived, DigitsEntered, IvrMenu, RequestCallback, TimedOut

SAMPLE: IvrMenu = load_menu(REPO / "config" / "ivr.toml").menu
HOURS = load(REPO / "config" / "callcenter.toml", environ={}).settings.hours
CALLERS = [None, "+8613900000001", "+8613900000002", "+8613900000003", "+8613900000004", "+8613999999999"]
MAX_TAIL = 400  # silences needed at most to end any call after the random part

keys = st.sampled_from(list("0123456789*#"))
steps = st.one_of(
    keys.map(DigitReceived),
    st.text(alphabet="0123456789#", min_size=2, max_size=12).map(DigitsEntered),
    st.just("timeout"),
)
moments = st.datetimes(
    min_value=dt.datetime(2026, 9, 28), max_value=dt.datetime(2027, 2, 10), timezones=st.just(SHANGHAI)
)


def drive(driver: Driver, events: list) -> None:
    driver.start()
    for event in events:
        if driver.session.ended:
            break
        if event == "timeout":
            if driver.timer is not None:
                driver.time_out()
            else:
                driver.send(TimedOut(10**6), after=1)  # a timer nobody started: ignored
        else:
            driver.send(event, after=0.7)


def finish_with_silence(driver: Driver) -> int:
    silences = 0
    while not driver.session.ended:
        assert driver.timer is not None, f"waiting for {driver.session.waiting_for} with no timer in {driver.session.node}"
        driver.time_out()
        silences += 1
        assert silences <= MAX_TAIL, f"still in the IVR after {MAX_TAIL} silences: {driver.session.path_json()[-5:]}"
    return silences


def assert_ended_properly(driver: Driver) -> None:
    terminal = [a for a in driver.actions if isinstance(a, TERMINAL_ACTIONS)]
    assert len(terminal) == 1, terminal
    assert driver.actions[-1] is terminal[0], "nothing may follow the terminal action"
    assert len([a for a in driver.actions if isinstance(a, RequestCallback)]) <= 1
    assert driver.session.outcome is not None
    record = driver.session.record().to_json()
    assert record["path"][-1]["step"] == "end"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=80), st.sampled_from(CALLERS), moments, st.sampled_from(["zh", "en"]))
def test_sample_menu_always_ends_in_a_terminal_action(events, caller, when, language):
    driver = Driver(SAMPLE, caller=caller, port=demo_port(), now=when, hours=HOURS, language=language)
    drive(driver, events)
    finish_with_silence(driver)
    assert_ended_properly(driver)


@settings(max_examples=100, deadline=None)
@given(st.lists(steps, max_size=60), st.sampled_from(CALLERS), moments)
def test_sample_menu_with_a_failing_port_still_ends(events, caller, when):
    class Broken:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise RuntimeError("database unreachable")

            return fail

    driver = Driver(SAMPLE, caller=caller, port=Broken(), now=when, hours=HOURS)
    drive(driver, events)
    finish_with_silence(driver)
    assert_ended_properly(driver)


@settings(max_examples=60, deadline=None)
@given(st.lists(steps, max_size=60), st.sampled_from(CALLERS), moments)
def test_replaying_the_same_events_gives_the_same_actions(events, caller, when):
    runs = []
    for _ in range(2):
        driver = Driver(SAMPLE, caller=caller, port=demo_port(), now=when, hours=HOURS)
        drive(driver, events)
        runs.append((driver.actions, driver.session.path_json()))
    assert runs[0] == runs[1]


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 50) | st.floats(allow_nan=False, width=32) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
node_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["menu", "collect", "play", "lookup", "hours", "queue", "callback", "nope", 3]),
        "prompt": st.sampled_from(["hello", ["hello", "{money:x}"], "Bad item", 7]),
        "options": st.dictionaries(st.sampled_from(["1", "2", "#", "10", "x"]), st.sampled_from(["main", "q", 4]), max_size=3),
        "next": st.sampled_from(["main", "q", ""]),
        "queue": toml_values,
        "variable": st.sampled_from(["order", "Bad", ""]),
        "timeout": toml_values,
    },
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "start": st.sampled_from(["main", "", 5]),
            "menus": st.dictionaries(st.sampled_from(["main", "q", "9bad"]), node_like, max_size=3) | toml_values,
            "prompts": st.just({"en": {"hello": "Hello"}}) | toml_values,
            "defaults": toml_values,
            "limits": toml_values,
        },
    )
)
def test_any_tree_either_parses_or_gives_a_menu_error(tree):
    from ivr import MenuError, check_menu, parse_menu

    try:
        parsed = parse_menu(tree, "fuzz.toml")
    except MenuError as exc:
        assert exc.problems and all(isinstance(path, str) for path, _ in exc.problems)
        return
    check_menu(parsed, queues=["q"], languages=["en"])  # a valid shape always checks without raising
