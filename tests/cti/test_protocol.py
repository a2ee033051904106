"""The CTI protocol's rules without a network: frame parsing, field checks, login throttling."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.cti import protocol as p
from callcenter.cti.auth import LoginLimiter, LoginPolicy


def frame(**fields) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", p.BAD_JSON),
        ("[1, 2]", p.BAD_JSON),
        ('"login"', p.BAD_JSON),
        (b'{"type": "ping", "id": 1}', p.BAD_FRAME),
        (frame(type="ping"), p.BAD_REQUEST),
        (frame(type="ping", id=True), p.BAD_REQUEST),
        (frame(type="ping", id=""), p.BAD_REQUEST),
        (frame(type="ping", id="x" * 65), p.BAD_REQUEST),
        (frame(id=1), p.BAD_REQUEST),
        (frame(type="call.teleport", id=1), p.UNKNOWN_TYPE),
        (frame(type="login", id=1, agent_id="1001", pin="1234"), p.BAD_REQUEST),
        (frame(type="login", id=1, agent_id="1001", pin=1234, protocol=1), p.BAD_REQUEST),
        (frame(type="state.not_ready", id=1, reason="   "), p.BAD_REQUEST),
        (frame(type="call.notes", id=1, call_id="c", text="x" * (p.MAX_NOTE_CHARS + 1)), p.BAD_REQUEST),
        (frame(type="customer.get", id=1, customer_id=0), p.BAD_REQUEST),
        (frame(type="customer.get", id=1, customer_id=True), p.BAD_REQUEST),
        (frame(type="contacts.recent", id=1, limit=1000), p.BAD_REQUEST),
        (frame(type="disposition.save", id=1, call_id="c", code="x", callback=[1]), p.BAD_REQUEST),
        ("[" * 100_000 + "]" * 100_000, p.TOO_LARGE),
        ("[" * 30_000 + "]" * 30_000, p.BAD_JSON),
    ],
)
def test_bad_frames_raise_the_documented_error(raw, code):
    with pytest.raises(p.ProtocolError) as caught:
        p.parse_frame(raw)
    assert caught.value.code == code


def test_errors_after_the_id_is_known_carry_it():
    with pytest.raises(p.ProtocolError) as caught:
        p.parse_frame(frame(type="call.teleport", id="abc"))
    assert caught.value.extra["id"] == "abc"
    with pytest.raises(p.ProtocolError) as caught:
        p.parse_frame(frame(type="customer.get", id=7, customer_id="5"))
    assert caught.value.extra["id"] == 7 and "customer_id" in caught.value.message


def test_a_good_request_comes_back_as_sent():
    message = p.parse_frame(frame(type="disposition.save", id="9", call_id="abc", code="sale", notes="ok",
                                  callback={"number": "+8613912345678", "due_from": "2026-11-24T10:00:00+08:00"}))
    assert message["code"] == "sale" and message["callback"]["number"] == "+8613912345678"


def test_callback_times_need_an_offset():
    with pytest.raises(p.ProtocolError, match="UTC offset"):
        p.parse_time("2026-11-24T10:00:00", "due_from")
    assert p.parse_time("2026-11-24T10:00:00+08:00", "due_from").utcoffset().total_seconds() == 8 * 3600


def test_every_request_type_is_documented():
    doc = (p.__file__.rsplit("/callcenter/", 1)[0] + "/docs/cti-protocol.md")
    text = open(doc, encoding="utf-8").read()
    missing = [kind for kind in [*p.REQUESTS, *p.EVENTS, *p.ERROR_CODES] if f"`{kind}`" not in text]
    assert missing == []


@given(st.text(max_size=300))
def test_parse_frame_never_fails_other_than_with_a_protocol_error(text):
    try:
        message = p.parse_frame(text)
    except p.ProtocolError as exc:
        assert exc.code in p.ERROR_CODES
    else:
        assert message["type"] in p.REQUESTS


def test_envelopes():
    assert json.loads(p.encode(p.result(3, "ping", {"a": 1}))) == {"type": "result", "id": 3, "request": "ping",
                                                                  "data": {"a": 1}}
    error = json.loads(p.encode(p.error("x", "login", p.RATE_LIMITED, "wait", retry_after=30)))
    assert error["code"] == "rate_limited" and error["retry_after"] == 30 and error["id"] == "x"


# ----------------------------------------------------------------------------- login throttling


def test_an_agent_id_is_locked_after_max_failures_and_the_lock_doubles():
    limiter = LoginLimiter(LoginPolicy(max_failures=3, window=60, lockout=10, max_lockout=25))
    key = "agent:1001"
    assert limiter.failure(key, 0) == 0 and limiter.failure(key, 1) == 0
    assert limiter.retry_after(key, 1) == 0
    assert limiter.failure(key, 2) == 10
    assert limiter.retry_after(key, 5) == pytest.approx(7)
    assert limiter.retry_after(key, 12.5) == 0
    for t in (13, 14):
        limiter.failure(key, t)
    assert limiter.failure(key, 15) == 20, "the second lockout is twice as long"
    for t in (40, 41):
        limiter.failure(key, t)
    assert limiter.failure(key, 42) == 25, "capped at max_lockout"


def test_failures_outside_the_window_do_not_count_and_success_clears():
    limiter = LoginLimiter(LoginPolicy(max_failures=3, window=60, lockout=10))
    limiter.failure("agent:1", 0)
    limiter.failure("agent:1", 1)
    assert limiter.failure("agent:1", 100) == 0, "the two old failures expired"
    assert limiter.failures("agent:1", 100) == 1
    limiter.success("agent:1")
    assert limiter.failures("agent:1", 100) == 0


def test_addresses_have_their_own_higher_limit():
    limiter = LoginLimiter(LoginPolicy(max_failures=2, max_failures_per_address=4, window=60, lockout=10))
    locks = [limiter.failure("addr:10.0.0.9", t) for t in range(4)]
    assert locks == [0, 0, 0, 10]


def test_the_limiter_forgets_quiet_keys_and_never_grows_without_bound():
    limiter = LoginLimiter(LoginPolicy(max_failures=5, window=10, lockout=10, max_lockout=10))
    limiter.MAX_KEYS = 50
    for i in range(200):
        limiter.failure(f"agent:x{i}", float(i))
    assert len(limiter._keys) <= 51


def test_every_request_type_has_exactly_one_handler_in_the_servers_table():
    from callcenter.cti.server import CtiServer

    assert set(CtiServer.HANDLERS) == set(p.REQUESTS)
    assert all(h.__name__ == "_r_" + kind.replace(".", "_") for kind, h in CtiServer.HANDLERS.items())
