"""The IPC messages: wire format, validation, clipping of network strings (no SIP involved)."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.core import telephony_protocol as p

leg_ids = st.from_regex(p.LEG_ID_RE, fullmatch=True)
any_text = st.text(max_size=600)


def _strategy_for(cls: type[p.Message], name: str, tp, strict: bool):
    optional = typing.get_origin(tp) in (typing.Union, __import__("types").UnionType)
    if optional:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if name in ("leg", "a", "b", "peer"):
        base = leg_ids
    elif name == "legs" and typing.get_origin(tp) is tuple:
        base = st.lists(leg_ids, min_size=1, max_size=4).map(tuple)
    elif name == "uri":
        base = st.from_regex(r"sip:[a-z0-9]{1,20}@127\.0\.0\.1:[0-9]{2,5}", fullmatch=True)
    elif name == "files":
        base = st.lists(st.from_regex(r"/[a-z/]{1,40}\.wav", fullmatch=True), min_size=1, max_size=5).map(tuple)
    elif name == "status":
        base = st.integers(400, 699)
    elif name == "retry_after":
        base = st.integers(0, 86400)
    elif name in ("timeout",):
        base = st.floats(0.1, 600)
    elif name == "grace":
        base = st.floats(0, 60)
    elif tp is str:
        base = st.from_regex(r"[A-Za-z0-9 ._-]{0,20}", fullmatch=True) if strict else any_text
    elif tp is bool:
        base = st.booleans()
    elif tp is int:
        base = st.integers(-(2**31), 2**31)
    elif tp is float:
        base = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
    elif typing.get_origin(tp) is dict:
        base = st.dictionaries(st.text(min_size=1, max_size=80), any_text, max_size=20)
    elif typing.get_origin(tp) is tuple:
        base = st.lists(leg_ids, max_size=6).map(tuple)
    else:  # pragma: no cover
        raise AssertionError(f"no strategy for {cls.__name__}.{name}")
    return st.one_of(st.none(), base) if optional else base


def messages(kinds):
    options = []
    for cls in kinds.values():
        hints = typing.get_type_hints(cls)
        fields = {f.name: _strategy_for(cls, f.name, hints[f.name], issubclass(cls, p.Command))
                  for f in dataclasses.fields(cls) if f.name not in ("id", "worker")}
        if cls is p.Bridge:
            options.append(st.tuples(leg_ids, leg_ids).filter(lambda ab: ab[0] != ab[1])
                           .map(lambda ab: p.Bridge(a=ab[0], b=ab[1])))
        elif cls is p.Dial:
            options.append(st.builds(dict, **fields).filter(lambda kw: kw["peer"] != kw["leg"]).map(lambda kw: p.Dial(**kw)))
        else:
            options.append(st.builds(cls, **fields))
    return st.one_of(options)


@settings(max_examples=300, deadline=None)
@given(messages(p.COMMANDS))
def test_commands_round_trip(command):
    line = p.encode(command)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    assert p.decode(line) == command
    assert json.loads(line)["type"] == type(command).__name__


@settings(max_examples=300, deadline=None)
@given(messages(p.EVENTS))
def test_events_clip_network_text_and_round_trip(event):
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, str):
            assert p.clean_text(value, 10**6) == value
            assert len(value) <= f.metadata.get("limit", p.SHORT if f.name in ("leg", "a", "b") else p.TEXT)
    if isinstance(event, p.CallArrived):
        assert len(event.headers) <= p.MAX_HEADERS
    assert p.decode(p.encode(event)) == event


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.dictionaries(st.sampled_from(["type", "id", "leg", "files", "status", "uri", "x"]),
                                 st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                           st.sampled_from(list(p.COMMANDS) + list(p.EVENTS)),
                                           st.lists(st.integers(), max_size=3)), max_size=6).map(json.dumps)))
def test_decode_raises_only_protocol_error(data):
    try:
        message = p.decode(data)
    except p.MalformedMessage:
        return
    assert isinstance(message, p.Message)


def test_unknown_fields_are_ignored_missing_ones_are_not():
    assert p.decode('{"type":"StopPlayback","id":"c1","leg":"w1-1","future":true}') == p.StopPlayback(id="c1", leg="w1-1")
    with pytest.raises(p.MalformedMessage, match="lacks field 'leg'"):
        p.decode('{"type":"StopPlayback","id":"c1"}')
    with pytest.raises(p.MalformedMessage, match="unknown message type"):
        p.decode('{"type":"__class__"}')
    with pytest.raises(p.MalformedMessage, match="too long"):
        p.decode(b"{" + b" " * p.MAX_LINE + b"}")


@pytest.mark.parametrize("build, match", [
    (lambda: p.RejectCall(leg="w1-1", status=200), "400-699"),
    (lambda: p.Hangup(leg="w1-1", status=99), "400-699"),
    (lambda: p.Dial(leg="w1-2", uri="http://evil", timeout=5), "not a sip"),
    (lambda: p.Dial(leg="w1-2", uri="sip:a@b>\r\nX: y", timeout=5), "not a sip|control characters"),
    (lambda: p.Dial(leg="w1-2", uri="sip:a@b", timeout=0), "timeout"),
    (lambda: p.Dial(leg="w1-2", uri="sip:a@b", peer="w1-2"), "another leg"),
    (lambda: p.Bridge(a="w1-1", b="w1-1"), "two different legs"),
    (lambda: p.PlayPrompts(leg="w1-1", files=()), "at least one"),
    (lambda: p.PlayPrompts(leg="../etc", files=("a.wav",)), "leg id"),
    (lambda: p.PlayPrompts(leg="w1-1", files=("a\nb.wav",)), "control characters"),
    (lambda: p.Dial(leg="w1-2", uri="sip:a@b", display_name="x" * 200), "longer than"),
    (lambda: p.AnswerCall(leg=5), "string"),
    (lambda: p.Dial(leg="w1-2", uri="sip:a@b", timeout=float("nan")), "finite"),
    (lambda: p.StartRecording(conversation="c", legs=(), path="/tmp/x.wav"), "1 to 4"),
])
def test_bad_commands_are_refused(build, match):
    with pytest.raises(p.MalformedMessage, match=match):
        build()


def test_network_strings_are_clipped_and_cleaned():
    event = p.CallArrived(leg="w1-1", call_id="c" * 999, ani="1" * 99, dnis="2\x00", display_name="<script>\r\n" + "é" * 300,
                          headers={f"X-{i}": "v\x07" for i in range(40)})
    assert len(event.call_id) == 256 and len(event.ani) == 64 and event.dnis == "2"
    assert event.display_name.startswith("<script>é") and len(event.display_name) == 128
    assert len(event.headers) == 16 and set(event.headers.values()) == {"v"}


@pytest.mark.parametrize("value, expected", [
    ('"Alice" <sip:1001@example.com>;tag=1', ("Alice", "1001", "sip:1001@example.com")),
    ('"Al\\"ice" <sip:1001@h;user=phone>', ('Al"ice', "1001", "sip:1001@h;user=phone")),
    ("Bob <sips:%2B861@h:5061>", ("Bob", "+861", "sips:%2B861@h:5061")),
    ("sip:5@x;tag=2", ("", "5", "sip:5@x")),
    ("<tel:+12025550100;phone-context=x>", ("", "+12025550100", "tel:+12025550100;phone-context=x")),
    ('"unterminated <sip:1@x>', ("unterminated <sip:1@x>", "", "")),
    ("", ("", "", "")),
    ("<sip:@>", ("", "", "sip:@")),
])
def test_parse_name_addr(value, expected):
    assert p.parse_name_addr(value) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=400))
def test_parse_name_addr_never_raises(value):
    display, user, uri = p.parse_name_addr(value)
    assert all(isinstance(x, str) for x in (display, user, uri))


def test_every_message_type_is_registered_and_named_by_its_role():
    assert set(p.COMMANDS) & set(p.EVENTS) == set()
    for name in p.EVENTS:
        assert name.endswith(("ed", "Started", "Changed", "Pong", "Died", "Received", "Ringing")), name
    for cls in p.COMMANDS.values():
        assert issubclass(cls, p.Command)
