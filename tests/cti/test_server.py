"""The CTI server on loopback with a real call flow (FakeTelephony) and a real SQLite database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import shutil
import subprocess

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from callcenter.cti import protocol as p
from callcenter.cti.client import CtiClient, client_ssl_context
from callcenter.cti.errors import CtiAuthError, CtiConnectionError, CtiRequestError
from callcenter.core import telephony_protocol as tp
from tests.cti.cti_support import PINS, Stack, of_type, wait_for

NUMBER = "+8613912345678"


@pytest.fixture
async def stack(tmp_path):
    s = Stack(tmp_path)
    await s.start()
    yield s
    await s.stop()


async def offered_to(stack: Stack, agent: str, events: list[dict], ani: str = "13912345678",
                     display_name: str = "Zhang San") -> tuple[str, str]:
    stack.only_agent(agent)
    leg = await stack.caller_to_queue(ani=ani, display_name=display_name)
    offer = await wait_for(lambda: of_type(events, "call.offered"))
    return leg, offer[-1]["call_id"]


async def test_login_announces_the_protocol_and_sends_the_agent_snapshot(stack):
    client, events, data = await stack.logged_in("1001")
    assert client.hello["type"] == "hello" and client.hello["protocol"] == p.PROTOCOL_VERSION
    assert data["protocol"] == 1 and data["agent"] == {"id": "1001", "name": "Li Wei", "role": "agent"}
    assert [d["code"] for d in data["dispositions"]][:2] == ["resolved", "sale"]
    assert {"code": "no_sale", "requires_note": True}.items() <= next(
        d for d in data["dispositions"] if d["code"] == "no_sale").items()
    assert "break" in data["not_ready_reasons"] and data["timezone"] == "Asia/Shanghai"
    assert data["snapshot"]["state"] == "available" and data["snapshot"]["call"] is None
    assert data["features"] == {name: callable(getattr(stack.center, name, None)) for name in ("hold", "transfer", "dial")}
    assert (await client.request("ping"))["server_time"]
    await client.close()


async def test_an_agent_not_yet_logged_in_to_the_acd_is_logged_in_by_the_console(stack):
    assert stack.center.agent_snapshot("1003")["state"] == "logged_out"
    client, events, data = await stack.logged_in("1003")
    assert data["snapshot"]["state"] == "available"
    await wait_for(lambda: of_type(events, "agent.state"))
    assert await client.request("state.not_ready", reason="lunch") == {"state": "not_ready", "reason": "lunch"}
    assert of_type(events, "agent.state")[-1]["reason"] == "lunch"
    with pytest.raises(CtiRequestError) as caught:
        await client.request("state.not_ready", reason="nap")
    assert caught.value.code == p.BAD_REQUEST
    await client.request("logout")
    assert stack.center.agent_snapshot("1003")["state"] == "logged_out"
    assert await client.wait_closed() == "logged out"


async def test_not_ready_during_a_call_applies_after_it(stack):
    client, events, _ = await stack.logged_in("1001")
    leg, call_id = await offered_to(stack, "1001", events)
    with pytest.raises(CtiRequestError) as caught:
        await client.request("state.ready")
    assert caught.value.code == p.REFUSED and caught.value.data["state"] == "reserved", "the phone is ringing"
    await stack.answer("1001")
    assert await client.request("state.not_ready", reason="break") == {"state": "on_call", "pending": "break"}
    await stack.caller_hangs_up(leg, "1001")
    await client.request("disposition.save", call_id=call_id, code="resolved")
    assert stack.center.agent_snapshot("1001")["state"] == "not_ready"
    assert stack.center.agent_snapshot("1001")["reason"] == "break"
    await client.close()


async def test_unsupported_protocol_is_refused(stack):
    client = await stack.client()
    with pytest.raises(CtiRequestError) as caught:
        await client.request("login", agent_id="1001", pin=PINS["1001"], protocol=99)
    assert caught.value.code == p.UNSUPPORTED_PROTOCOL and caught.value.data["supported"] == [1]
    await client.close()


async def test_a_whole_call_offer_pop_answer_hangup_disposition_with_callback(stack):
    customer = stack.add_customer("Li Lei", NUMBER, tier="vip", with_history=True)
    client, events, _ = await stack.logged_in("1001")
    leg, call_id = await offered_to(stack, "1001", events)
    pop = (await wait_for(lambda: of_type(events, "call.pop")))[-1]
    assert of_type(events, "call.connected") == [], "the pop arrives while the phone is still ringing"
    assert pop["call_id"] == call_id and pop["pop"]["kind"] == "customer"
    assert pop["pop"]["profile"]["customer_id"] == customer and pop["pop"]["profile"]["tier"] == "vip"
    assert pop["pop"]["call"]["queue"] == "general" and pop["pop"]["call"]["display_name"] == "Zhang San"
    assert [s["digits"] for s in pop["pop"]["call"]["ivr_path"] if s.get("step") == "input"] == ["1", "0"]
    assert [c["disposition"] for c in pop["pop"]["profile"]["contacts"]] == ["repair"], "this call is not history yet"
    assert [e["id"] for e in events] == sorted({e["id"] for e in events}, key=lambda i: int(i[1:]))

    await stack.answer("1001")
    await wait_for(lambda: of_type(events, "call.connected"))
    assert (await client.request("call.notes", call_id=call_id, text="wants a technician"))["chars"] == 18
    assert await client.request("call.hangup") == {"call_id": call_id}
    hangups = [c for c in stack.fake.sent(tp.Hangup) if c.leg == stack.agent_leg("1001")]
    assert hangups and hangups[-1].reason == "agent hung up"
    await stack.caller_hangs_up(leg, "1001")
    await wait_for(lambda: of_type(events, "call.ended"))
    assert stack.center.agent_snapshot("1001")["state"] == "wrap_up"

    due = stack.clock() + dt.timedelta(days=1)
    reply = await client.request("disposition.save", call_id=call_id, code="callback", notes="call after 6pm",
                                 callback={"number": "139 1234 5678", "due_from": due.isoformat(), "owner": "me"})
    assert reply == {"call_id": call_id, "code": "callback", "state": "available", "callback": True, "owed": []}
    assert stack.dispositions(call_id) == [("callback", "call after 6pm", "1001")]
    (callback,) = stack.callbacks()
    assert (callback.number, callback.owner_agent_id, callback.source, callback.customer_id) == (
        NUMBER, "1001", "agent", customer), "the pop's identification is recorded on the call, so on the callback"
    assert stack.store.get(call_id)["customer_id"] == customer
    await client.close()


async def test_disposition_rules_are_enforced_by_the_server(stack):
    client, events, _ = await stack.logged_in("1001")
    leg, call_id = await offered_to(stack, "1001", events)
    await stack.answer("1001")
    await stack.caller_hangs_up(leg, "1001")
    cases = [
        ({"code": "no_sale", "notes": " "}, p.REFUSED, "note is required"),
        ({"code": "callback"}, p.REFUSED, "schedule a callback"),
        ({"code": "made_up"}, p.BAD_REQUEST, "unknown disposition"),
        ({"code": "callback", "callback": {"number": "not a number", "due_from": "2026-11-24T10:00:00+08:00"}},
         p.BAD_REQUEST, "not a phone number"),
        ({"code": "callback", "callback": {"number": NUMBER, "due_from": "2026-11-24T10:00:00"}},
         p.BAD_REQUEST, "UTC offset"),
        ({"code": "callback", "callback": {"number": NUMBER, "due_from": "2020-01-01T10:00:00+08:00"}},
         p.REFUSED, "in the past"),
        ({"code": "callback", "callback": {"number": NUMBER, "due_from": "2026-11-24T10:00:00+08:00",
                                           "owner": "boss"}}, p.BAD_REQUEST, "owner"),
    ]
    for fields, code, text in cases:
        with pytest.raises(CtiRequestError) as caught:
            await client.request("disposition.save", call_id=call_id, **fields)
        assert (caught.value.code, text in caught.value.message) == (code, True), (fields, caught.value.message)
    assert stack.dispositions(call_id) == [] and stack.callbacks() == []
    assert stack.center.agent_snapshot("1001")["state"] == "wrap_up", "nothing saved, still in wrap-up"
    await client.request("disposition.save", call_id=call_id, code="no_sale", notes="too expensive",
                         end_wrap_up=False)
    assert stack.center.agent_snapshot("1001")["state"] == "wrap_up"
    assert (await client.request("state.end_wrap_up"))["state"] == "available"
    await client.close()


async def test_wrong_pins_are_refused_logged_without_the_pin_and_rate_limited(stack, caplog):
    caplog.set_level(logging.INFO, logger="callcenter.cti")
    client = await stack.client()
    for _ in range(2):
        with pytest.raises(CtiAuthError) as caught:
            await client.login("1002", "0000")
        assert caught.value.code == p.AUTH_FAILED and caught.value.message == "unknown agent or wrong PIN"
    with pytest.raises(CtiAuthError) as caught:
        await client.login("9999", "0000")
    assert caught.value.message == "unknown agent or wrong PIN", "an unknown id gets the same answer"
    with pytest.raises(CtiAuthError):
        await client.login("1002", "0001")  # third failure for 1002 (FAST_POLICY: 3)
    with pytest.raises(CtiAuthError) as caught:
        await client.login("1002", PINS["1002"])
    assert caught.value.code == p.RATE_LIMITED and 0 < caught.value.data["retry_after"] <= 30
    failures = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(failures) == 4 and "wrong PIN" in failures[0] and "unknown agent" in failures[2]
    assert "locked for 30s" in failures[3]
    assert not any(pin in r.getMessage() for r in caplog.records for pin in ("0000", "0001", PINS["1002"]))
    assert any("refused: locked" in r.getMessage() for r in caplog.records)
    other, _, data = await stack.logged_in("1001")
    assert data["agent"]["id"] == "1001", "another agent from the same address is not locked out"
    await client.close()
    await other.close()


async def test_an_address_that_keeps_guessing_is_locked_and_disconnected(tmp_path):
    from callcenter.cti.auth import LoginPolicy

    s = Stack(tmp_path, policy=LoginPolicy(max_failures=50, max_failures_per_address=4, window=60, lockout=30,
                                           failure_delay=0, max_failures_per_connection=3))
    await s.start()
    try:
        client = await s.client()
        for agent in ("1001", "1002", "1003"):
            with pytest.raises(CtiAuthError):
                await client.login(agent, "0000")
        assert await asyncio.wait_for(client.wait_closed(), 3) == "too many failed logins"
        client = await s.client()
        with pytest.raises(CtiAuthError):
            await client.login("1004", "0000")  # 4th failure from this address: locked
        with pytest.raises(CtiAuthError) as caught:
            await client.login("1005", PINS["1005"])
        assert caught.value.code == p.RATE_LIMITED
        await client.close()
    finally:
        await s.stop()


async def test_an_agent_acting_on_another_agents_call_is_refused_and_logged(stack, caplog):
    caplog.set_level(logging.WARNING, logger="callcenter.cti")
    owner, owner_events, _ = await stack.logged_in("1001")
    thief, thief_events, _ = await stack.logged_in("1002")
    leg, call_id = await offered_to(stack, "1001", owner_events)
    await stack.answer("1001")
    assert of_type(thief_events, "call.offered") == [] and of_type(thief_events, "call.pop") == [], \
        "another agent's calls are never pushed to this console"
    attempts = [
        ("call.hangup", {"call_id": call_id}),
        ("call.notes", {"call_id": call_id, "text": "mine now"}),
        ("customer.link", {"call_id": call_id, "customer_id": 1}),
        ("disposition.save", {"call_id": call_id, "code": "resolved"}),
        ("state.ready", {"agent_id": "1001"}),
        ("agent.snapshot", {"agent_id": "1001"}),
        ("agents.list", {}),
    ]
    for kind, fields in attempts:
        with pytest.raises(CtiRequestError) as caught:
            await thief.request(kind, **fields)
        assert caught.value.code == p.FORBIDDEN, kind
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CTI refused")]
    assert len(refused) == len(attempts) and all("agent 1002 from 127.0.0.1" in m for m in refused)
    assert stack.center.agent_snapshot("1001")["call"]["call_id"] == call_id, "the call is untouched"
    assert not [c for c in stack.fake.sent(tp.Hangup) if c.leg == stack.agent_leg("1001")]
    await stack.caller_hangs_up(leg, "1001")
    await owner.request("disposition.save", call_id=call_id, code="resolved")
    assert stack.dispositions(call_id) == [("resolved", None, "1001")]
    await owner.close()
    await thief.close()


async def test_supervisors_get_the_feed_and_read_only_requests(stack):
    supervisor, feed, data = await stack.logged_in("9001")
    assert data["agent"]["role"] == "supervisor" and data["snapshot"] is None
    agents = (await supervisor.request("agents.list"))["agents"]
    assert {a["agent_id"] for a in agents} == {"1001", "1002", "1003", "1004", "1005"}
    assert (await supervisor.request("agent.snapshot", agent_id="1002"))["snapshot"]["state"] == "available"
    for kind, fields in [("call.hangup", {}), ("state.ready", {}), ("disposition.save", {"call_id": "x", "code": "sale"}),
                         ("callbacks.list", {}), ("state.not_ready", {"reason": "break"})]:
        with pytest.raises(CtiRequestError) as caught:
            await supervisor.request(kind, **fields)
        assert caught.value.code == p.FORBIDDEN and "agent request" in caught.value.message
    stack.center.not_ready("1002", "lunch")
    pushed = await wait_for(lambda: of_type(feed, "agent.state"))
    assert pushed[-1]["agent_id"] == "1002" and pushed[-1]["state"] == "not_ready"
    assert stack.center.agent_snapshot("9001")["state"] == "logged_out", "a supervisor login takes no calls"
    await supervisor.close()


async def test_garbage_gets_errors_and_the_connection_and_server_survive(stack):
    client, events, _ = await stack.logged_in("1001")
    for raw, code in [("{oops", p.BAD_JSON), (b"\x00\x01", p.BAD_FRAME), ("x" * (70 * 1024), p.TOO_LARGE),
                      (json.dumps({"type": "call.teleport", "id": "t"}), p.UNKNOWN_TYPE),
                      (json.dumps({"type": "ping"}), p.BAD_REQUEST)]:
        await client.send_raw(raw)
        error = await wait_for(lambda: [e for e in of_type(events, "error") if e["code"] == code])
        assert error[-1]["id"] in (None, "t")
    assert (await client.request("ping"))["server_time"], "the connection stays open"
    await client.send_raw("x" * (p.HARD_FRAME_BYTES + 10))
    assert await asyncio.wait_for(client.wait_closed(), 3) != ""
    again, _, data = await stack.logged_in("1001")
    assert data["snapshot"]["state"] == "available", "the server carries on"
    await again.close()


async def test_a_flood_of_bad_frames_closes_the_connection_with_1008(stack):
    async with connect(stack.url, proxy=None) as ws:
        await ws.recv()  # hello
        with pytest.raises(ConnectionClosed) as closed:
            for i in range(200):
                await ws.send("nope")
            while True:
                await ws.recv()
        assert closed.value.rcvd.code == p.CLOSE_POLICY


async def test_requests_before_login_and_a_silent_connection(tmp_path):
    s = Stack(tmp_path, login_timeout=0.3)
    await s.start()
    try:
        client = await s.client()
        with pytest.raises(CtiRequestError) as caught:
            await client.request("callbacks.list")
        assert caught.value.code == p.NOT_LOGGED_IN
        assert await asyncio.wait_for(client.wait_closed(), 3) == "login timeout"
    finally:
        await s.stop()


async def test_a_console_that_drops_mid_call_gets_state_call_notes_and_pop_back(stack):
    stack.add_customer("Li Lei", NUMBER, tier="gold")
    client, events, _ = await stack.logged_in("1001")
    leg, call_id = await offered_to(stack, "1001", events)
    await stack.answer("1001")
    await client.request("call.notes", call_id=call_id, text="draft note")
    await wait_for(lambda: of_type(events, "call.pop"))
    await client.close()  # the console crashes
    await stack.settle()
    assert stack.center.agent_snapshot("1001")["call"]["phase"] == "connected", "the call goes on"
    assert stack.cti.connected_agents() == []
    client, events, data = await stack.logged_in("1001")
    snapshot = data["snapshot"]
    assert snapshot["state"] == "on_call" and snapshot["call"]["call_id"] == call_id
    assert snapshot["call"]["notes"] == "draft note" and snapshot["call"]["answered_at"]
    assert dt.datetime.fromisoformat(snapshot["server_time"]) >= dt.datetime.fromisoformat(snapshot["since"])
    pop = await wait_for(lambda: of_type(events, "call.pop"))
    assert pop[-1]["pop"]["profile"]["name"] == "Li Lei"
    assert await client.request("call.hangup") == {"call_id": call_id}
    await client.close()


async def test_a_second_login_replaces_the_first_console(stack):
    first, first_events, _ = await stack.logged_in("1001")
    second, _, _ = await stack.logged_in("1001")
    assert await asyncio.wait_for(first.wait_closed(), 3) == "logged in elsewhere"
    assert of_type(first_events, "session.closed")[-1]["reason"] == "replaced"
    assert stack.cti.connected_agents() == ["1001"]
    assert (await second.request("ping"))["server_time"]
    await second.close()


async def test_hold_resume_and_blind_transfer(stack):
    client, events, _ = await stack.logged_in("1001")
    leg, call_id = await offered_to(stack, "1001", events)
    agent_leg = await stack.answer("1001")
    assert await client.request("call.hold") == {"call_id": call_id, "held": True}
    assert [e["call_id"] for e in of_type(events, "call.held")] == [call_id], "told once"
    assert any(isinstance(c, tp.Unbridge) and {c.a, c.b} == {leg, agent_leg} for c in stack.fake.sent())
    assert (await client.request("agent.snapshot"))["snapshot"]["call"]["held"] is True
    with pytest.raises(CtiRequestError) as caught:
        await client.request("call.hold")
    assert caught.value.code == p.REFUSED
    assert await client.request("call.unhold", call_id=call_id) == {"call_id": call_id, "held": False}
    assert [e["call_id"] for e in of_type(events, "call.resumed")] == [call_id]
    for target, code in [("agent:1001", p.BAD_REQUEST), ("queue:nowhere", p.BAD_REQUEST), ("sales", p.BAD_REQUEST)]:
        with pytest.raises(CtiRequestError) as caught:
            await client.request("call.transfer", target=target)
        assert caught.value.code == code, target
    assert await client.request("call.transfer", target="queue:sales") == {"call_id": call_id, "target": "queue:sales"}
    await wait_for(lambda: of_type(events, "call.transferred"))
    assert stack.center.agent_snapshot("1001")["state"] == "wrap_up"
    assert stack.center.calls[call_id].queue == "sales", "the caller waits in the new queue"
    await client.close()


async def test_the_call_a_reconnecting_console_redraws_is_the_centers_own_state(stack):
    """Held, waited, callback and draft notes come from the contact center (which owns the call), not from
    a copy the CTI server kept; every console is told hold, transfer and dial are there."""
    client, events, data = await stack.logged_in("1001")
    assert data["features"] == {"hold": True, "transfer": True, "dial": True}
    leg, call_id = await offered_to(stack, "1001", events)
    await stack.answer("1001")
    assert await client.request("call.hold") == {"call_id": call_id, "held": True}
    assert (await wait_for(lambda: of_type(events, "call.held")))[-1]["call_id"] == call_id
    await client.request("call.notes", call_id=call_id, text="[b]draft[/b]")
    again, _, relogin = await stack.logged_in("1001")  # a second console replaces the first
    call = relogin["snapshot"]["call"]
    assert call["call_id"] == call_id and call["held"] is True and call["notes"] == "[b]draft[/b]"
    assert call["waited"] is not None and call["waited"] >= 0 and call["callback"] is None
    assert stack.center.calls[call_id].on_hold
    assert await again.request("call.unhold") == {"call_id": call_id, "held": False}
    assert (await again.request("agent.snapshot"))["snapshot"]["call"]["held"] is False
    await again.close()
    await client.close()


async def test_customer_requests_search_create_and_link(stack):
    stack.add_customer("Wang Jun", "+8613700000001")
    stack.add_customer("Wang Jun Jr", "+8613700000001")
    client, events, _ = await stack.logged_in("1001")
    found = (await client.request("customer.search", query="wang"))["customers"]
    assert [c["name"] for c in found] == ["Wang Jun", "Wang Jun Jr"]
    assert [c["customer_id"] for c in (await client.request("customer.search", query="137 0000 0001"))["customers"]] \
        == [c["customer_id"] for c in found]
    leg, call_id = await offered_to(stack, "1001", events, ani="13700000001")
    pop = (await wait_for(lambda: of_type(events, "call.pop")))[-1]["pop"]
    assert pop["kind"] == "choose" and len(pop["candidates"]) == 2
    chosen = pop["candidates"][1]["customer_id"]
    linked = await client.request("customer.link", call_id=call_id, customer_id=chosen)
    assert linked["profile"]["name"] == "Wang Jun Jr" and stack.store.get(call_id)["customer_id"] == chosen
    with pytest.raises(CtiRequestError) as caught:
        await client.request("customer.get", customer_id=99999)
    assert caught.value.code == p.NOT_FOUND

    await stack.answer("1001")
    await stack.caller_hangs_up(leg, "1001")
    await client.request("disposition.save", call_id=call_id, code="resolved")
    events.clear()
    leg, call_id = await offered_to(stack, "1001", events, ani="+442071838750", display_name="")
    pop = (await wait_for(lambda: of_type(events, "call.pop")))[-1]["pop"]
    assert pop["kind"] == "new" and pop["number"] == "+442071838750"
    with pytest.raises(CtiRequestError) as caught:
        await client.request("customer.create", name="Ann", number="12", call_id=call_id)
    assert caught.value.code == p.BAD_REQUEST and "not a phone number" in caught.value.message
    created = await client.request("customer.create", name="Ann Smith", number="+44 20 7183 8750", language="en",
                                   call_id=call_id)
    assert created["profile"]["numbers"] == ["+442071838750"] and created["profile"]["language"] == "en"
    assert stack.store.get(call_id)["customer_id"] == created["customer_id"]
    recent = (await client.request("contacts.recent"))["contacts"]
    assert recent[0]["call_id"] == call_id and recent[1]["customer_name"] == "Wang Jun Jr"
    await client.close()


async def test_callbacks_list_and_dial_now(stack):
    client, events, _ = await stack.logged_in("1001")
    now = stack.clock()
    for owner, due in [("1001", now - dt.timedelta(hours=3)), (None, now + dt.timedelta(hours=2)),
                       ("1002", now - dt.timedelta(hours=1))]:
        stack.store.add_callback(number=NUMBER, customer_id=None, queue="general", due_from=due,
                                 due_until=due + dt.timedelta(hours=2) if owner is None else None,
                                 source="agent", owner_agent_id=owner)
    listed = (await client.request("callbacks.list"))["callbacks"]
    assert [c["owner"] for c in listed] == ["1001", None], "mine and anyone's, earliest first; not 1002's"
    with pytest.raises(CtiRequestError) as caught:
        await client.request("call.dial", callback_id=3)
    assert caught.value.code == p.FORBIDDEN, "1002's callback"
    assert (await client.request("call.dial", callback_id=1)) == {"number": NUMBER, "callback_id": 1}
    offer = (await wait_for(lambda: of_type(events, "call.offered")))[-1]
    assert offer["callback"] == NUMBER, "the agent's phone rings first, with the pop"
    await stack.center.drain()
    assert (stack.callbacks()[0].status, stack.callbacks()[0].attempts) == ("in_progress", 1)
    with pytest.raises(CtiRequestError) as caught:
        await client.request("call.dial", number="13800138000")
    assert caught.value.code == p.REFUSED and "reserved" in caught.value.message, "one call at a time"
    await client.close()


def _self_signed(tmp_path):
    cert, key = tmp_path / "cti.pem", tmp_path / "cti.key"
    subprocess.run([shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_tls_login_with_a_self_signed_certificate(tmp_path):
    cert, key = _self_signed(tmp_path)
    s = Stack(tmp_path, overrides=(f"cti.certificate={cert}", f"cti.private_key={key}"))
    await s.start()
    try:
        assert s.url.startswith("wss://127.0.0.1:")
        client = CtiClient(s.url, ssl_context=client_ssl_context(s.url, str(cert)))
        await client.connect()
        data = await client.login("1001", PINS["1001"])
        assert data["agent"]["id"] == "1001"
        await client.close()
        with pytest.raises(CtiConnectionError):
            await CtiClient(s.url).connect()  # the system CAs do not trust a self-signed certificate
        with pytest.raises(CtiConnectionError):
            await CtiClient(s.url.replace("wss://", "ws://"), open_timeout=2).connect()  # no plain text
    finally:
        await s.stop()


def test_server_settings_errors_are_clear(tmp_path):
    from callcenter.cti.server import CtiServerError, parse_listen, server_ssl_context

    assert parse_listen("ws://0.0.0.0:8800") == ("ws", "0.0.0.0", 8800)
    with pytest.raises(CtiServerError, match="ws://HOST:PORT"):
        parse_listen("http://x:1")
    with pytest.raises(CtiServerError, match="cannot load"):
        server_ssl_context(str(tmp_path / "missing.pem"), None)
