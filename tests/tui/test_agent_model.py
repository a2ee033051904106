"""The console's model: only the server's words change it; timers survive a reconnect."""

from __future__ import annotations

import datetime as dt

from callcenter.tui.agent_model import AgentModel
from screenpop.pop import ScreenPop
from screenpop.wire import to_wire

T = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
LOGIN = {
    "agent": {"id": "1001", "name": "Li Wei", "role": "agent"},
    "dispositions": [{"code": "resolved", "label": "Resolved"}],
    "not_ready_reasons": ["break", "no_answer"],
    "queues": [{"id": "general", "name": "General"}],
    "agents": [{"id": "1001", "name": "Li Wei"}, {"id": "1002", "name": "Wang Fang"}],
    "features": {"hold": False}, "region": "CN", "timezone": "Asia/Shanghai", "center": "Demo",
}


def snapshot(**fields) -> dict:
    base = {"agent_id": "1001", "state": "available", "reason": None, "call": None, "last_call_id": None,
            "since": T.isoformat(), "server_time": (T + dt.timedelta(seconds=30)).isoformat()}
    return {**LOGIN, "snapshot": {**base, **fields}}


def offer(call_id="c1") -> dict:
    return {"type": "call.offered", "call_id": call_id, "queue": "general", "ani": "+8613912345678",
            "display_name": "Zhang", "customer_id": None, "callback": None, "waited": 12.0, "ivr_path": []}


def test_login_takes_configuration_and_anchors_the_state_timer():
    model = AgentModel("1001")
    model.on_login(snapshot(), now=1000.0)
    assert model.name == "Li Wei" and model.label == "Available"
    assert [a["id"] for a in model.agents] == ["1002"], "not yourself as a transfer target"
    assert model.elapsed(1000.0) == 30.0, "in the state for 30 s by the server's clock"


def test_a_whole_call_as_events():
    model = AgentModel("1001")
    model.on_login(snapshot(), now=0.0)
    assert model.on_event({"type": "agent.state", "agent_id": "1001", "state": "reserved"}, now=1.0) == "state"
    assert model.on_event(offer(), now=1.0) == "offer" and model.label == "Ringing"
    pop = ScreenPop(kind="new", number="+8613912345678")
    assert model.on_event({"type": "call.pop", "call_id": "c1", "pop": to_wire(pop)}, now=1.01) == "pop"
    assert model.call.pop == pop
    assert model.on_event({"type": "call.pop", "call_id": "other", "pop": to_wire(pop)}, now=1.02) is None
    model.on_event({"type": "agent.state", "agent_id": "1001", "state": "on_call"}, now=5.0)
    assert model.on_event({"type": "call.connected", "call_id": "c1"}, now=5.0) == "call"
    assert model.elapsed(65.0) == 60.0 and model.label == "On call"
    model.on_event({"type": "call.held", "call_id": "c1"}, now=6.0)
    assert model.label == "On hold"
    assert model.on_event({"type": "call.ended", "call_id": "c1"}, now=70.0) == "ended"
    model.on_event({"type": "agent.state", "agent_id": "1001", "state": "wrap_up"}, now=70.0)
    assert model.call is None and model.needs_disposition and model.wrap_call.call_id == "c1"
    assert model.label == "Wrap-up" and model.elapsed(80.0) == 10.0


def test_an_unreadable_pop_becomes_an_error_not_a_crash():
    model = AgentModel("1001")
    model.on_event(offer(), now=0.0)
    assert model.on_event({"type": "call.pop", "call_id": "c1", "pop": {"kind": "weird"}}, now=0.1) == "pop"
    assert model.call.pop is None and "unreadable screen pop" in model.call.pop_error


def test_an_offer_that_goes_away_leaves_no_call():
    model = AgentModel("1001")
    model.on_event(offer("c1"), now=0.0)
    assert model.on_event({"type": "call.offer_cancelled", "call_id": "c1", "reason": "ring_timeout"}, now=1) == "call"
    assert model.call is None and not model.needs_disposition
    model.on_event(offer("c2"), now=2.0)
    model.on_event({"type": "agent.state", "agent_id": "1001", "state": "available", "previous": "reserved"}, now=3.0)
    assert model.call is None, "the caller hung up while the phone rang"


def test_reconnecting_mid_call_restores_the_call_its_talk_time_and_notes():
    model = AgentModel("1001")
    model.on_login(snapshot(), now=0.0)
    model.on_event(offer(), now=1.0)
    model.call.pop = ScreenPop(kind="new", number=None)
    answered = T + dt.timedelta(seconds=10)
    data = snapshot(state="on_call", call={"call_id": "c1", "phase": "connected", "ani": "+8613912345678",
                                           "answered_at": answered.isoformat(), "notes": "draft", "held": True},
                    server_time=(T + dt.timedelta(seconds=100)).isoformat())
    model.on_login(data, now=500.0)
    assert model.call.phase == "connected" and model.call.notes == "draft" and model.call.held
    assert model.elapsed(500.0) == 90.0, "talk time from the server's answered_at"
    assert model.call.pop is not None, "the pop already shown is kept until the new one arrives"
    assert model.logins == 2


def test_reconnecting_brings_back_every_disposition_owed_with_its_notes():
    model = AgentModel("1001")
    owed = [{"call_id": "c8", "ani": "+8613800000001", "ended_at": T.isoformat()},
            {"call_id": "c9", "ani": "+8613800000002", "notes": "said thanks", "ended_at": T.isoformat()}]
    model.on_login(snapshot(state="wrap_up", last_call_id="c9", owed=owed,
                            wrap={"mode": "until_disposed", "until": None, "owed_call": "c9",
                                  "extensions_left": 0}), now=0.0)
    assert list(model.owed) == ["c8", "c9"] and model.disposition_blocks
    assert model.wrap_call.call_id == "c9" and model.wrap_call.notes == "said thanks"
    model.on_event({"type": "disposition.owed", "owed": owed[1:]}, now=1.0)
    assert list(model.owed) == ["c9"]
    model.on_event({"type": "agent.state", "agent_id": "1001", "state": "available"}, now=2.0)
    assert model.needs_disposition and not model.disposition_blocks, "owed, but the queue does not wait for it"


def test_the_server_list_of_owed_calls_wins_over_the_console_guess():
    model = AgentModel("1001")
    model.on_login(snapshot(), now=0.0)
    model.on_event(offer("c1"), now=1.0)
    model.on_event({"type": "call.connected", "call_id": "c1"}, now=2.0)
    model.on_event({"type": "call.ended", "call_id": "c1", "owed": [{"call_id": "c0"}, {"call_id": "c1"}]}, now=3.0)
    assert list(model.owed) == ["c0", "c1"] and model.owed["c1"].ani == "+8613912345678", "keeps what it knew"
    model.on_event(offer("c2"), now=4.0)
    model.on_event({"type": "call.connected", "call_id": "c2"}, now=5.0)
    model.on_event({"type": "call.ended", "call_id": "c2", "owed": [{"call_id": "c2"}]}, now=6.0)
    assert list(model.owed) == ["c2"]


def test_other_agents_states_are_ignored():
    model = AgentModel("1001")
    model.on_login(snapshot(), now=0.0)
    assert model.on_event({"type": "agent.state", "agent_id": "1002", "state": "not_ready"}, now=1.0) is None
    assert model.state == "available"
