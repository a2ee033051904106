"""The CTI server under attack: parallel PIN guessing, garbage in every field, floods of connections.

Each test reproduces an attack against the real server on loopback (``Stack``) and checks what
the attacker gets and what the server keeps afterwards.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from callcenter import security
from callcenter.cti import auth
from callcenter.cti import protocol as p
from callcenter.cti import server as cti_server
from callcenter.cti import sessions as cti_sessions
from callcenter.cti.auth import LoginLimiter, LoginPolicy
from tests.cti.cti_support import PINS, Stack, wait_for


class Clock:
    """``time.monotonic`` that a test can move forward (to get past a lockout without waiting for it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def pin_checks(monkeypatch) -> list[str]:
    """Every PIN the server checks, in order; each check is slowed down as on a busy server."""
    checks: list[str] = []
    real = security.verify_pin

    def counted(pin: str, stored: str) -> bool:
        checks.append(pin)
        time.sleep(0.02)
        return real(pin, stored)

    for module in (auth, cti_server):
        if hasattr(module, "verify_pin"):
            monkeypatch.setattr(module, "verify_pin", counted)
    return checks


async def _opened(url: str):
    ws = await connect(url, open_timeout=10)
    assert json.loads(await ws.recv())["type"] == "hello"
    return ws


async def _ask(ws, message: dict, *, too_large_ok: bool = False) -> dict:
    """Send one request and return its reply (events and errors of other frames in between are skipped)."""
    await ws.send(json.dumps(message))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply.get("type") in ("result", "error") and reply.get("id") == message["id"]:
            return reply
        if too_large_ok and reply.get("code") == p.TOO_LARGE:  # a frame too large to read has no id
            return reply


def _login(agent_id: str, pin: str, request_id: str = "login") -> dict:
    return {"type": "login", "id": request_id, "agent_id": agent_id, "pin": pin, "protocol": 1}


# ----------------------------------------------------------------------------- 1. PIN guessing in parallel

RACE_POLICY = LoginPolicy(max_failures=5, max_failures_per_address=100, window=300, lockout=60, max_lockout=900,
                          failure_delay=0, max_failures_per_connection=10)


async def test_parallel_wrong_pins_cannot_outrun_the_throttle(tmp_path, pin_checks, monkeypatch):
    clock = Clock()
    stack = Stack(tmp_path, policy=RACE_POLICY, monotonic=clock)
    await stack.start()
    entered: list[str] = []
    handler = stack.cti.HANDLERS["login"]

    async def counting_login(server, session, message):
        entered.append(message["pin"])
        return await handler(server, session, message)

    monkeypatch.setitem(stack.cti.HANDLERS, "login", counting_login)
    conns = [await _opened(stack.url) for _ in range(50)]
    try:
        wrong = [f"{n:04d}" for n in range(49)]
        assert PINS["1002"] not in wrong
        guesses = [asyncio.create_task(_ask(ws, _login("1002", pin))) for ws, pin in zip(conns, wrong)]
        await wait_for(lambda: len(entered) == 49)  # all 49 read by the server before any check could end
        right = await _ask(conns[49], _login("1002", PINS["1002"]))
        replies = await asyncio.gather(*guesses)

        assert len(pin_checks) <= RACE_POLICY.max_failures, f"{len(pin_checks)} PINs were checked"
        assert PINS["1002"] not in pin_checks, "the right PIN was refused without being checked"
        assert right["code"] == p.RATE_LIMITED and right["retry_after"] > 0
        codes = [r["code"] for r in replies]
        assert codes.count(p.AUTH_FAILED) == len(pin_checks)
        assert codes.count(p.RATE_LIMITED) == 49 - len(pin_checks)
        assert all(r["retry_after"] > 0 for r in replies if r["code"] == p.RATE_LIMITED)

        # The checks that ran have failed: the agent is locked, the right PIN still gets nowhere.
        again = await _ask(conns[49], _login("1002", PINS["1002"], "again"))
        assert again["code"] == p.RATE_LIMITED and 50 < again["retry_after"] <= RACE_POLICY.lockout
        assert len(pin_checks) <= RACE_POLICY.max_failures

        clock.offset += again["retry_after"] + 1
        done = await _ask(conns[49], _login("1002", PINS["1002"], "after"))
        assert done["type"] == "result" and done["data"]["agent"]["id"] == "1002"
        assert stack.cti.limiter.failures("agent:1002", clock()) == 0, "a good login clears the agent's failures"
    finally:
        for ws in conns:
            await ws.close()
        await stack.stop()


async def test_parallel_guesses_for_many_agents_from_one_address_are_capped_too(tmp_path, pin_checks):
    policy = LoginPolicy(max_failures=5, max_failures_per_address=8, window=300, lockout=60, failure_delay=0)
    stack = Stack(tmp_path, policy=policy)
    await stack.start()
    conns = [await _opened(stack.url) for _ in range(30)]
    try:
        replies = await asyncio.gather(*(_ask(ws, _login(f"x{n}", "0000")) for n, ws in enumerate(conns)))
        codes = [r["code"] for r in replies]
        assert len(pin_checks) <= policy.max_failures_per_address
        assert codes.count(p.AUTH_FAILED) == len(pin_checks) and codes.count(p.RATE_LIMITED) == 30 - len(pin_checks)
    finally:
        for ws in conns:
            await ws.close()
        await stack.stop()


async def test_good_logins_from_one_address_are_not_counted_against_it(tmp_path):
    """Consoles behind one NAT: slots taken by good logins are given back, not counted as failures."""
    policy = LoginPolicy(max_failures=2, max_failures_per_address=3, window=300, lockout=60, failure_delay=0)
    stack = Stack(tmp_path, policy=policy)
    await stack.start()
    try:
        for round_ in range(3):
            conns = [await _opened(stack.url) for _ in PINS]
            for ws, (agent, pin) in zip(conns, PINS.items()):
                reply = await _ask(ws, _login(agent, pin))
                assert reply["type"] == "result", (round_, agent, reply)
            for ws in conns:
                await ws.close()
        limiter = stack.cti.limiter
        assert limiter.failures("addr:127.0.0.1", time.monotonic()) == 0
        ws = await _opened(stack.url)
        assert (await _ask(ws, _login("1002", "0000")))["code"] == p.AUTH_FAILED
        assert (await _ask(ws, _login("1002", PINS["1002"], "good")))["type"] == "result", "one failure, then right"
        await ws.close()
    finally:
        await stack.stop()


def test_the_limiter_reserves_a_slot_before_the_check():
    limiter = LoginLimiter(LoginPolicy(max_failures=3, max_failures_per_address=5, window=60, lockout=10,
                                       max_lockout=40))
    keys = ("agent:1001", "addr:10.0.0.1")
    assert [limiter.acquire(keys, 0) for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire(keys, 0) > 0, "three checks in flight: the fourth waits, whatever its PIN"
    assert limiter.acquire(("agent:1002", "addr:10.0.0.1"), 0) == 0
    assert limiter.acquire(("agent:1003", "addr:10.0.0.1"), 0) == 0
    assert limiter.acquire(("agent:1004", "addr:10.0.0.1"), 0) > 0, "five in flight from the address"
    for t in (1, 2):
        limiter.release(keys, t)
        assert limiter.failure(keys[0], t) == 0
    limiter.release(keys, 3)
    assert limiter.failure(keys[0], 3) == 10, "the third failure locks the agent"
    assert limiter.acquire(keys, 4) == pytest.approx(9)
    limiter.release(("agent:1002", "addr:10.0.0.1"), 5)
    limiter.success("agent:1002")
    assert limiter.acquire(("agent:1002", "addr:10.0.0.1"), 5) == 0, "a good login gave its slot back"
    assert limiter.acquire(keys, 13.5) == 0, "the lockout is over"


def test_a_good_login_clears_the_agent_but_keeps_the_other_checks_in_flight():
    limiter = LoginLimiter(LoginPolicy(max_failures=2, window=60, lockout=10))
    keys = ("agent:1001", "addr:a")
    assert limiter.acquire(keys, 0) == 0 and limiter.acquire(keys, 0) == 0
    limiter.release(keys, 1)
    limiter.success(keys[0])
    assert limiter.acquire(keys, 1) == 0
    assert limiter.acquire(keys, 1) > 0, "the guess still in flight holds its slot"


# ----------------------------------------------------------------------------- 2. garbage in every field

_LONG = "\u00e9x" * 1000
GARBAGE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**53, max_value=2**300),
    st.integers(max_value=-(2**63)), st.floats(), st.text(max_size=30),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=10),
    st.text(alphabet=st.characters(categories=["Cs", "Co", "Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=10),
    st.just(_LONG), st.just("x" * 5000), st.just(""), st.just("   "),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.none()), max_size=3),
)
TIMES = st.sampled_from(["2026-11-24T10:00:00+08:00", "2026-11-24T10:00:00", "9999-12-31T23:59:59+14:00",
                         "0001-01-01T00:00:00-23:59", "2026-02-30T00:00:00+00:00", "now", "2026-11-22T10:00:00Z",
                         "2026-11-24T10:00:00+08:00[Asia/Shanghai]", "2026-11-24"])
LAST_CALL = "<the agent's last call>"
"""Stands for the call the fuzzed agent has just handled, so requests about calls get past ownership."""
PLAUSIBLE: dict[str, st.SearchStrategy] = {
    "agent_id": st.sampled_from(["1001", "1001", "1002", "9001", "7777", "../1001"]),
    "pin": st.sampled_from(["0000", "1234", PINS["1002"]]),
    "protocol": st.sampled_from([1, 1, 2, 2**62]),
    "role": st.sampled_from(["agent", "supervisor", "root"]),
    "phone": st.sampled_from(["sip:1001@127.0.0.1", "tel:1", "sip:@"]),
    "client": st.text(max_size=20),
    "not_ready_reason": st.sampled_from(["break", "nap"]),
    "call_id": st.sampled_from([LAST_CALL, LAST_CALL, "c-1", "old-1", "x" * 128]),
    "customer_id": st.sampled_from([1, 2, 2**31, 2**63 - 1]),
    "callback_id": st.sampled_from([1, 2, 2**63 - 1]),
    "number": st.sampled_from(["+8613912345678", "13912345678", "139 1234 5678", "12", "+", "++86 139",
                               "\u0661\u0662\u0663", "+1 (800) FLOWERS", "+99999999999999999999"]),
    "code": st.sampled_from(["resolved", "no_sale", "callback", "sale", "nope"]),
    "reason": st.sampled_from(["break", "lunch", "nap"]),
    "queue": st.sampled_from(["general", "vip", "nope"]),
    "target": st.sampled_from(["queue:general", "agent:1002", "agent:1001", "agent:9001", "queue:", ":"]),
    "state": st.sampled_from(list(p.FORCE_STATES) + ["asleep"]),
    "query": st.sampled_from(["Li", "%", "_", "*", "\"", "'; drop table customers; --", "+86139", "\u674e"]),
    "name": st.sampled_from(["Wang Fang", "\u738b\u82b3", "a\tb"]),
    "company": st.text(max_size=20), "language": st.sampled_from(["zh", "en", "xx-YY"]),
    "email": st.sampled_from(["a@b.c", "not an email"]),
    "text": st.text(max_size=50), "notes": st.text(max_size=50),
    "end_wrap_up": st.booleans(),
    "skills": st.dictionaries(st.sampled_from(["sales", "zh", "", "x" * 40]), st.one_of(st.integers(0, 6), GARBAGE),
                              max_size=3),
    "due_from": TIMES, "due_until": TIMES, "owner": st.sampled_from(["me", "anyone", "them"]),
}


@st.composite
def _fields(draw, spec: dict[str, p.Field]) -> dict:
    """Mostly plausible values with one or two fields garbage, so requests get past the first check."""
    names = sorted(spec)
    spoilt = draw(st.sets(st.sampled_from(names), max_size=2)) if names else set()
    fields = {}
    for name in names:
        field = spec[name]
        if name in spoilt:
            fields[name] = draw(GARBAGE)
        elif field.required or draw(st.booleans()):
            if name == "callback":
                fields[name] = draw(_fields(p.CALLBACK_FIELDS))
            elif name in PLAUSIBLE:
                fields[name] = draw(PLAUSIBLE[name])
            elif field.kind is int:
                fields[name] = draw(st.integers(field.minimum or 0, field.maximum or 1000))
            else:
                fields[name] = draw(st.text(max_size=field.max_chars or 20))
    return fields


def _request(kind: str) -> st.SearchStrategy:
    return _fields(p.REQUESTS[kind])


class Live:
    """The stack on a loop of its own, driven one request at a time from hypothesis' (synchronous) examples.

    Three consoles: an agent, a supervisor, and one that is not logged in (a fresh one for every
    ``login``). A console the server closed (logout, replaced) is opened and logged in again.
    """

    CONSOLES = {"agent": "1001", "supervisor": "9001"}

    def __init__(self, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.stack = Stack(folder, max_errors_per_minute=10**9,
                           policy=LoginPolicy(max_failures=10**6, max_failures_per_address=10**6, failure_delay=0,
                                              max_failures_per_connection=10**6))
        self.conns: dict[str, object] = {}
        self.errors: list[logging.LogRecord] = []
        self._handler = logging.Handler(logging.ERROR)
        self._handler.emit = self.errors.append
        logging.getLogger("callcenter").addHandler(self._handler)
        self.run(self.stack.start())
        self.stack.add_customer("Li Lei", "+8613912345678", with_history=True)
        self.run(self._a_call())

    async def _a_call(self) -> None:
        """Agent 1001 answers a caller who then hangs up: a call of theirs to dispose, link, annotate."""
        self.stack.only_agent("1001")
        leg = await self.stack.caller_to_queue()
        await self.stack.answer("1001")
        await self.stack.caller_hangs_up(leg, "1001")
        self.last_call = self.stack.center.last_call_of_agent["1001"]

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    async def _console(self, role: str):
        ws = self.conns.get(role)
        if ws is None or ws.state is not State.OPEN:
            ws = await _opened(self.stack.url)
            agent = self.CONSOLES[role]
            reply = await _ask(ws, _login(agent, PINS[agent]))
            assert reply["type"] == "result", reply
            self.conns[role] = ws
        return ws

    def ask(self, role: str, kind: str, fields: dict) -> dict:
        if fields.get("call_id") == LAST_CALL:
            fields = {**fields, "call_id": self.last_call}

        async def go() -> dict:
            ws = await (_opened(self.stack.url) if role == "anonymous" else self._console(role))
            try:
                return await _ask(ws, {**fields, "type": kind, "id": "fuzz"}, too_large_ok=True)
            except ConnectionClosed as exc:  # e.g. logout: the server closes after its reply
                return {"type": "closed", "code": exc.rcvd.code if exc.rcvd else None}
            finally:
                if role == "anonymous":
                    await ws.close()

        return self.run(go())

    def drain(self) -> None:
        self.run(self.stack.center.drain())

    def ping(self, role: str) -> dict:
        async def go() -> dict:
            return await _ask(await self._console(role), {"type": "ping", "id": "ping"})

        return self.run(go())

    def close(self) -> None:
        async def go() -> None:
            for ws in self.conns.values():
                await ws.close()
            await self.stack.stop()

        try:
            self.run(go())
        finally:
            logging.getLogger("callcenter").removeHandler(self._handler)
            self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = Live(tmp_path_factory.mktemp("fuzz"))
    yield server
    server.close()


@pytest.mark.parametrize("kind", sorted(p.REQUESTS))
@settings(max_examples=int(os.environ.get("CTI_FUZZ_EXAMPLES", "25")),  # e.g. 1000 for a longer search
          deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_garbage_in_any_field_never_gets_internal(live, kind, data):
    fields = data.draw(_request(kind), label="fields")
    live.errors.clear()
    for role in ("anonymous", "agent", "supervisor") if kind == "login" else ("agent", "supervisor"):
        reply = live.ask(role, kind, fields)
        assert reply.get("code") != p.INTERNAL, (role, kind, fields, reply)
        assert not live.errors, [(r.getMessage(), repr(r.exc_info and r.exc_info[1])) for r in live.errors]
        if reply["type"] == "error" and reply["code"] == p.BAD_REQUEST:
            assert "'" in reply["message"] or ":" in reply["message"], reply  # names the field
    live.drain()  # records are written after the reply: a write that fails shows up here
    assert not live.errors, [(r.getMessage(), repr(r.exc_info and r.exc_info[1])) for r in live.errors]
    for role in ("agent", "supervisor"):
        assert live.ping(role)["type"] == "result"


@pytest.mark.parametrize(("kind", "fields", "field"), [
    ("customer.get", {"customer_id": 10**30}, "customer_id"),
    ("customer.get", {"customer_id": 2**63}, "customer_id"),
    ("customer.get", {"customer_id": "5"}, "customer_id"),
    ("customer.get", {"customer_id": [1]}, "customer_id"),
    ("customer.get", {"customer_id": 1.0}, "customer_id"),
    ("customer.get", {"customer_id": True}, "customer_id"),
    ("customer.link", {"call_id": "c", "customer_id": 2**64}, "customer_id"),
    ("call.dial", {"callback_id": 2**63}, "callback_id"),
    ("call.dial", {"callback_id": "1"}, "callback_id"),
    ("call.dial", {"number": {"a": 1}}, "number"),
    ("call.dial", {"number": "\ud800"}, "number"),
    ("customer.search", {"query": "Li\ud800"}, "query"),
    ("customer.search", {"query": "Li\x00"}, "query"),
    ("call.notes", {"call_id": "c", "text": "a\ud800"}, "text"),
    ("disposition.save", {"call_id": "c", "code": "resolved", "notes": "\udfff"}, "notes"),
    ("login", {"agent_id": "1001", "pin": "\ud800", "protocol": 1}, "pin"),
    ("agent.set_skills", {"agent_id": "1001", "skills": {"\ud800": 3}}, "skills"),
    ("contacts.recent", {"limit": False}, "limit"),
    ("disposition.save", {"call_id": "c", "code": "callback", "callback": {"number": 5, "due_from": []}}, "number"),
    ("disposition.save", {"call_id": "c", "code": "callback", "callback": {"number": "+8613912345678",
                                                                           "due_from": {"at": 1}}}, "due_from"),
    ("disposition.save", {"call_id": "c", "code": "callback", "callback": {"due_from": "2026-11-24T10:00:00+08:00"}},
     "number"),
])
def test_wrong_field_types_get_bad_request_naming_the_field(live, kind, fields, field):
    role = {"login": "anonymous", "agent.set_skills": "supervisor"}.get(kind, "agent")
    reply = live.ask(role, kind, fields)
    assert reply["code"] == p.BAD_REQUEST and f"'{field}'" in reply["message"], reply


def test_objects_nested_to_the_parsers_limit_are_answered(live):
    deep = json.loads('{"a":' * 900 + "1" + "}" * 900)
    for role, kind, fields in [("supervisor", "agent.set_skills", {"agent_id": "1001", "skills": deep}),
                               ("agent", "disposition.save", {"call_id": "c", "code": "callback", "callback": deep})]:
        reply = live.ask(role, kind, fields)
        assert reply["type"] == "error" and reply["code"] in (p.BAD_REQUEST, p.REFUSED), reply
    assert live.ping("agent")["type"] == "result"


# ----------------------------------------------------------------------------- 3. what connections leave behind


def _sessions_alive() -> int:
    return sum(isinstance(o, cti_sessions.Session) for o in gc.get_objects())


async def test_connections_bad_requests_and_failed_logins_leave_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(auth, "verify_pin", lambda pin, stored: False)  # what is kept matters here, not scrypt
    clock = Clock()
    policy = LoginPolicy(max_failures=3, max_failures_per_address=10**6, window=60, lockout=30, max_lockout=120,
                         failure_delay=0.01, max_failures_per_connection=2)
    stack = Stack(tmp_path, policy=policy, monotonic=clock, login_timeout=5)
    await stack.start()
    server = stack.cti
    try:
        await asyncio.sleep(0.05)
        gc.collect()
        threads, tasks, sessions = threading.active_count(), len(asyncio.all_tasks()), _sessions_alive()

        async def abuse(n: int) -> None:
            ws = await _opened(stack.url)
            try:
                for frame in ("{nope", b"\x00", "z" * 70_000, json.dumps({"type": "state.ready", "id": 1}),
                              json.dumps({"type": "customer.get", "id": 2, "customer_id": "x"}),
                              json.dumps({"type": "teleport", "id": 3})):
                    await ws.send(frame)
                agent = ("1001", "1002", "9001")[n % 3] if n % 2 else f"nobody{n}"
                await _ask(ws, _login(agent, "0000", "l1"))
                await _ask(ws, _login(agent, "0001", "l2"))  # the connection's last failure: the server closes it
            except ConnectionClosed:
                pass
            finally:
                if n % 5:
                    await ws.close()
                else:
                    ws.transport.abort()  # gone without a close frame

        for start in range(0, 300, 50):
            await asyncio.gather(*(abuse(n) for n in range(start, start + 50)))
        await wait_for(lambda: not server._sessions and not server._tasks, timeout=10)
        await wait_for(lambda: len(asyncio.all_tasks()) <= tasks, timeout=10)
        gc.collect()
        assert _sessions_alive() == sessions, "every closed connection's session is freed"
        assert not server._agents and not server._supervisors
        assert threading.active_count() <= threads + 1, "PIN checks have one thread, not one per login"
        limiter = server.limiter
        assert 0 < len(limiter) <= limiter.MAX_KEYS
        assert limiter.in_flight() == 0, "every slot taken for a PIN check was given back"

        # Once their window and lockouts are over the keys are forgotten, without a new failure needed.
        clock.offset += max(policy.window, policy.max_lockout) + policy.lockout + 1
        ws = await _opened(stack.url)
        await ws.close()
        await wait_for(lambda: not server._sessions)
        assert len(limiter) == 0
    finally:
        await stack.stop()


def test_the_limiter_stays_bounded_under_a_flood_of_keys_and_keeps_locks():
    limiter = LoginLimiter(LoginPolicy(max_failures=2, max_failures_per_address=10**6, window=60, lockout=30,
                                       max_lockout=120))
    limiter.MAX_KEYS = 100
    for t in (0, 1):
        limiter.failure("agent:1002", t)
    assert limiter.retry_after("agent:1002", 2) > 0
    for i in range(1000):
        keys = (f"agent:x{i}", f"addr:10.0.{i // 256}.{i % 256}")
        assert limiter.acquire(keys, 2 + i / 1000) == 0
        limiter.release(keys, 2 + i / 1000)
        limiter.failure(keys[0], 2 + i / 1000)
        limiter.failure(keys[1], 2 + i / 1000)
    assert len(limiter) <= limiter.MAX_KEYS
    assert limiter.retry_after("agent:1002", 4) > 0, "a flood of new keys does not evict a lock"
    limiter.prune(1000)
    assert len(limiter) == 0
