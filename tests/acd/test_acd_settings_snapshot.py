"""Settings built from the application configuration, validation messages, snapshots and event logs."""

from __future__ import annotations

import json
import random

import pytest
from acd_support import make

from acd import (
    AcdEngine,
    AcdSettings,
    AgentLoggedIn,
    AgentSettings,
    CallQueued,
    OfferAccepted,
    OverflowSettings,
    QueueSettings,
    SettingsError,
    SkillsChanged,
    SnapshotError,
    event_from_dict,
    event_to_dict,
)
from acd.events import EVENT_TYPES
from callcenter.config import validate
from callcenter.security import hash_pin

PIN = hash_pin("2468")


def test_from_application_config():
    tree = {
        "acd": {"not_ready_reasons": ["break", "no_answer"], "max_missed_offers": 3},
        "queues": {
            "sales": {
                "strategy": "round_robin",
                "service_level_seconds": 30,
                "max_length": 10,
                "overflow": {"after_seconds": 120, "target": "queue:support"},
                "when_no_agents": "overflow",
                "leave_when_empty": True,
                "wrapup_seconds": 15,
                "ring_timeout_seconds": 12,
                "required_skills": {"en": 2},
                "relax_after_seconds": [30, 90],
            },
            "support": {},
            "general": {},
        },
        "agents": {
            "1001": {"name": "Li", "pin_hash": PIN, "phone": "sip:1001@127.0.0.1", "skills": {"en": 4}, "queues": ["sales", "support"]}
        },
    }
    s = AcdSettings.from_config(validate(tree, "test"))
    sales = s.queues["sales"]
    assert sales.strategy == "round_robin" and sales.max_length == 10
    assert sales.overflow == OverflowSettings(120, "queue:support") and sales.overflow.target_queue == "support"
    assert sales.relax_after_seconds == (30.0, 90.0) and sales.required_skills == {"en": 2}
    assert sales.announce_every_seconds == 60  # the application default
    assert s.agents["1001"] == AgentSettings(skills={"en": 4}, queues=("sales", "support"), name="Li")
    assert s.not_ready_reasons == ("break", "no_answer", "phone_offline") and s.max_missed_offers == 3
    eng = AcdEngine(s)
    eng.handle(AgentLoggedIn("1001"), 0)
    assert eng.agent_state("1001") == ("available", None)
    assert AcdSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize(
    "build, text",
    [
        (lambda: QueueSettings(strategy="random"), "strategy: must be one of"),
        (lambda: QueueSettings(relax_after_seconds=(30, 10)), "relax_after_seconds: must be increasing"),
        (lambda: QueueSettings(when_no_agents="overflow"), "needs an overflow target"),
        (lambda: QueueSettings(required_skills={"en": 7}), "required_skills.en: level must be an integer from 1 to 5"),
        (lambda: OverflowSettings(60, "queue:"), "overflow.target"),
        (lambda: AcdSettings(queues={}), "at least one queue"),
        (lambda: AcdSettings(queues={"q": QueueSettings(overflow=OverflowSettings(60, "queue:q"))}), "cannot overflow to itself"),
        (lambda: AcdSettings(queues={"q": QueueSettings(overflow=OverflowSettings(60, "queue:x"))}), "queue 'x' does not exist"),
        (lambda: AcdSettings(queues={"q": QueueSettings()}, agents={"a": AgentSettings(queues=("zz",))}), "agents.a.queues.0"),
        (lambda: AcdSettings(queues={"q": QueueSettings()}, not_ready_reasons=("break",)), "must include 'no_answer'"),
        (lambda: AcdSettings(queues={"q": QueueSettings()}, max_missed_offers=0), "max_missed_offers"),
        (lambda: AcdSettings(queues={"q": {"strategy": "nope"}}), "queues.q.strategy"),
    ],
)
def test_invalid_settings_name_the_key(build, text):
    with pytest.raises(SettingsError) as info:
        build()
    assert text in str(info.value)


def _stream(seed: int, n: int = 400):
    rng = random.Random(seed)
    eng = make(
        queues={"q": {"required_skills": {"en": 2}, "relax_after_seconds": (20,), "wrapup_seconds": 5}, "r": {"strategy": "fewest_calls"}},
        agents={f"a{i}": (("q", "r") if i % 2 else ("r",), {"en": 1 + i % 4}) for i in range(6)},
    )
    events = []
    now = 0.0
    for i in range(6):
        events.append((now, AgentLoggedIn(f"a{i}")))
    ringing: list[tuple[str, str]] = []
    for i in range(n):
        now += rng.choice([0.0, 1.0, 4.0])
        if ringing and rng.random() < 0.5:
            cid, aid = ringing.pop(0)
            events.append((now, OfferAccepted(cid, aid)))
        elif rng.random() < 0.05:
            events.append((now, SkillsChanged(f"a{rng.randrange(6)}", {"en": rng.randint(1, 5)})))
        else:
            events.append((now, CallQueued(f"c{i}", rng.choice("qr"), priority=rng.choice([0, 1]))))
        out = eng.handle(events[-1][1], now)
        ringing += [(a.call_id, a.agent_id) for a in out if type(a).__name__ == "OfferCall"]
    return events


def test_same_stream_same_actions_and_state():
    events = _stream(3)
    runs = []
    for _ in range(2):
        eng = make(
            queues={"q": {"required_skills": {"en": 2}, "relax_after_seconds": (20,), "wrapup_seconds": 5}, "r": {"strategy": "fewest_calls"}},
            agents={f"a{i}": (("q", "r") if i % 2 else ("r",), {"en": 1 + i % 4}) for i in range(6)},
        )
        runs.append(([eng.handle(ev, t) for t, ev in events], eng.snapshot()))
    assert runs[0] == runs[1]


def test_event_log_round_trip():
    events = _stream(5, 50)
    for _, ev in events:
        assert event_from_dict(json.loads(json.dumps(event_to_dict(ev)))) == ev
    assert set(EVENT_TYPES) >= {"CallQueued", "OfferAccepted", "Tick", "CallbackRequested"}


def test_restore_rejects_foreign_or_mismatched_snapshots():
    eng = make(agents={"a": (("q",), {})})
    eng.handle(AgentLoggedIn("a"), 0)
    eng.handle(CallQueued("c", "q"), 1)
    snap = eng.snapshot()
    with pytest.raises(SnapshotError):
        AcdEngine.restore({"format": "something else"})
    other = AcdSettings(queues={"other": QueueSettings()})
    with pytest.raises(SnapshotError, match="does not fit the settings"):
        AcdEngine.restore(snap, other)
    broken = dict(snap)
    del broken["timers"]
    with pytest.raises(SnapshotError, match="malformed"):
        AcdEngine.restore(broken)
    restored = AcdEngine.restore(snap)
    assert restored.snapshot() == snap and restored.now == 1
