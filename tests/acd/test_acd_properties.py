"""Invariants over random event sequences (hypothesis).

Each example builds random settings (queues with every rule switched on or off, agents with
random skills and memberships) and a random stream of events that reacts to what the engine
did (offers in flight get answered, rejected, abandoned or left to ring out). After every
event we check: the engine's own consistency (no call offered to two agents, no agent with
two calls, no waiting call beside a free qualified agent), that no call is lost, that the
statistics match counts kept independently from the events and actions, that the naive
reference engine returned exactly the same actions, and finally that restoring a snapshot
taken part-way and replaying the rest gives the same actions and the same final state.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd import (
    AcdEngine,
    AcdSettings,
    AgentBecameAvailable,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentSettings,
    AgentWentNotReady,
    CallAbandoned,
    CallbackRequested,
    CallEnded,
    CallQueued,
    CancelOffer,
    EventRejected,
    OfferAccepted,
    OfferCall,
    OfferRejected,
    OverflowCall,
    OverflowSettings,
    QueueSettings,
    RefuseCall,
    SkillsChanged,
    StatisticsReset,
    Tick,
    WrapUpEnded,
)
from acd.reference import NaiveAcdEngine

SKILLS = ("en", "fr", "de")
QUEUES = ("q0", "q1", "q2")


@st.composite
def acd_settings(draw) -> AcdSettings:
    n_queues = draw(st.integers(1, 3))
    qids = QUEUES[:n_queues]
    queues = {}
    for i, qid in enumerate(qids):
        targets = ["callback", "voicemail", "hangup"] + [f"queue:{q}" for q in qids if q != qid]
        overflow = None
        if draw(st.booleans()):
            overflow = OverflowSettings(after_seconds=draw(st.sampled_from([15.0, 40.0])), target=draw(st.sampled_from(targets)))
        queues[qid] = QueueSettings(
            strategy=draw(st.sampled_from(["longest_idle", "round_robin", "fewest_calls", "least_talk_time"])),
            service_level_seconds=draw(st.sampled_from([5.0, 20.0])),
            max_length=draw(st.sampled_from([0, 0, 2, 4])),
            overflow=overflow,
            when_no_agents=draw(st.sampled_from(["join", "refuse", "overflow"] if overflow else ["join", "refuse"])),
            leave_when_empty=draw(st.booleans()),
            wrapup_seconds=draw(st.sampled_from([0.0, 0.0, 6.0])),
            ring_timeout_seconds=draw(st.sampled_from([4.0, 9.0])),
            required_skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 4), max_size=2)),
            relax_after_seconds=draw(st.sampled_from([(), (10.0,), (5.0, 25.0)])),
            announce_every_seconds=draw(st.sampled_from([0.0, 0.0, 12.0])),
        )
    agents = {}
    for j in range(draw(st.integers(1, 5))):
        agents[f"a{j}"] = AgentSettings(
            skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3)),
            queues=tuple(draw(st.lists(st.sampled_from(qids), min_size=1, max_size=3, unique=True))),
        )
    return AcdSettings(queues=queues, agents=agents, max_missed_offers=draw(st.integers(1, 3)))


class Shadow:
    """What we know from the events and actions alone, kept without looking inside the engine."""

    def __init__(self, s: AcdSettings):
        self.settings = s
        self.alive: set[str] = set()
        self.queue: dict[str, str] = {}
        self.enqueued_at: dict[str, float] = {}
        self.callback: set[str] = set()
        self.ringing: dict[str, str] = {}  # call -> agent
        self.connected: dict[str, str] = {}
        self.answered = dict.fromkeys(s.queues, 0)
        self.answered_in_sl = dict.fromkeys(s.queues, 0)
        self.abandoned = dict.fromkeys(s.queues, 0)
        self.abandoned_in_sl = dict.fromkeys(s.queues, 0)
        self.carried = dict.fromkeys(s.queues, 0)  # live callers already waiting at a statistics reset
        self.pending_live = dict.fromkeys(s.queues, 0)
        self.offers_made = 0

    def reset(self) -> None:
        for d in (self.answered, self.answered_in_sl, self.abandoned, self.abandoned_in_sl):
            for k in d:
                d[k] = 0

    def apply(self, ev, now: float, actions: list) -> None:
        rejected = any(isinstance(a, EventRejected) for a in actions)
        kind = type(ev)
        was_connected = ev.call_id in self.connected if hasattr(ev, "call_id") else False
        if not rejected:  # what the event frees comes before the offers it may trigger
            if kind in (CallAbandoned, CallEnded) and was_connected:
                del self.connected[ev.call_id]
            elif kind is OfferRejected:
                self.ringing.pop(ev.call_id)
            elif kind is StatisticsReset:
                self.reset()
                self.carried = dict(self.pending_live)
            elif kind is CallQueued:
                self.alive.add(ev.call_id)
                self.queue[ev.call_id] = ev.queue
                self.enqueued_at[ev.call_id] = now
            elif kind is CallbackRequested:
                if ev.call_id not in self.alive:
                    self.alive.add(ev.call_id)
                    self.queue[ev.call_id] = ev.queue
                    self.enqueued_at[ev.call_id] = now
                self.callback.add(ev.call_id)
            elif kind in (CallAbandoned, CallEnded) and ev.call_id not in self.callback:
                q = self.queue[ev.call_id]
                self.abandoned[q] += 1
                if now - self.enqueued_at[ev.call_id] <= self.settings.queues[q].service_level_seconds:
                    self.abandoned_in_sl[q] += 1
        for act in actions:
            t = type(act)
            if t is OfferCall:
                assert act.call_id in self.alive, "offer for a call that is not in the ACD"
                assert act.call_id not in self.ringing, "call offered to two agents"
                assert act.agent_id not in self.ringing.values(), "agent holds two offers"
                assert act.agent_id not in self.connected.values(), "agent on a call got an offer"
                self.ringing[act.call_id] = act.agent_id
                self.offers_made += 1
            elif t is CancelOffer:
                assert self.ringing.pop(act.call_id) == act.agent_id
            elif t is RefuseCall:
                self.alive.discard(act.call_id)
            elif t is OverflowCall:
                if act.target.startswith("queue:"):
                    self.queue[act.call_id] = act.target.split(":", 1)[1]
                    self.enqueued_at[act.call_id] = now
                else:
                    self.alive.discard(act.call_id)
        if rejected:
            return
        if kind is OfferAccepted:
            self.ringing.pop(ev.call_id)
            self.connected[ev.call_id] = ev.agent_id
            if ev.call_id not in self.callback:
                q = self.queue[ev.call_id]
                self.answered[q] += 1
                if now - self.enqueued_at[ev.call_id] <= self.settings.queues[q].service_level_seconds:
                    self.answered_in_sl[q] += 1
        elif kind in (CallAbandoned, CallEnded):
            self.ringing.pop(ev.call_id, None)
            self.alive.discard(ev.call_id)
            self.callback.discard(ev.call_id)



def drive(data, s: AcdSettings, steps: int):
    """Draw a reactive event stream; returns the list of (now, event) and checks as it goes."""
    eng = AcdEngine(s)
    naive = NaiveAcdEngine(s)
    shadow = Shadow(s)
    history: list[tuple[float, object, list]] = []
    now = 0.0
    call_no = 0
    agent_ids = list(s.agents)
    queue_ids = list(s.queues)
    for _ in range(steps):
        now += data.draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0, 20.0]))
        choice = data.draw(st.integers(0, 13))
        aid = data.draw(st.sampled_from(agent_ids))
        known = sorted(shadow.alive) or ["none"]
        cid = data.draw(st.sampled_from(known))
        if choice <= 2:
            call_no += 1
            ev = CallQueued(
                f"c{call_no}",
                data.draw(st.sampled_from(queue_ids)),
                priority=data.draw(st.sampled_from([0, 0, 1, 5])),
                skills=data.draw(st.sampled_from([None, None, {"de": 2}])),
            )
        elif choice <= 4 and shadow.ringing:
            rc = data.draw(st.sampled_from(sorted(shadow.ringing)))
            ev = OfferAccepted(rc, shadow.ringing[rc]) if choice == 3 else OfferRejected(rc, shadow.ringing[rc])
        elif choice == 5:
            ev = CallAbandoned(cid)
        elif choice == 6:
            ev = CallEnded(data.draw(st.sampled_from(sorted(shadow.connected) or ["none"])))
        elif choice == 7:
            ev = AgentLoggedIn(aid)
        elif choice == 8:
            ev = AgentLoggedOut(aid)
        elif choice == 9:
            ev = AgentWentNotReady(aid, data.draw(st.sampled_from(["break", "lunch"])))
        elif choice == 10:
            ev = data.draw(st.sampled_from([AgentBecameAvailable(aid), WrapUpEnded(aid)]))
        elif choice == 11:
            call_no += 1
            ev = data.draw(
                st.sampled_from(
                    [CallbackRequested(cid, "+15550100"), CallbackRequested(f"cb{call_no}", "+15550101", queue=queue_ids[0])]
                )
            )
        elif choice == 12:
            ev = data.draw(st.sampled_from([SkillsChanged(aid, {"en": 3, "de": 2}), SkillsChanged(aid, {}), StatisticsReset()]))
        else:
            ev = Tick()
        # as a real driver does: run each timer at its own deadline, then the event
        while (due := eng.next_deadline()) is not None and due <= now:
            step(eng, naive, shadow, history, Tick(), due)
        step(eng, naive, shadow, history, ev, now)
    return eng, history


def step(eng, naive, shadow, history, ev, now) -> None:
    actions = eng.handle(ev, now)
    assert naive.handle(ev, now) == actions, "indexed and naive engines disagree"
    shadow.apply(ev, now, actions)
    history.append((now, ev, actions))
    eng.check_invariants()
    assert shadow.alive == set(eng.call_ids()), "a call was lost or invented"
    check_stats(eng, shadow)


def check_stats(eng: AcdEngine, shadow: Shadow) -> None:
    for qid in eng.queue_ids():
        st_ = eng.queue_stats(qid)
        shadow.pending_live[qid] = st_.waiting
        # every caller who entered is answered, abandoned, overflowed, left, converted or still here
        assert st_.entered + shadow.carried[qid] == (
            st_.answered + st_.abandoned + st_.overflowed + st_.left_empty + st_.converted_to_callback + st_.waiting
        )
        assert st_.answered == shadow.answered[qid]
        assert st_.abandoned == shadow.abandoned[qid]
        assert st_.answered_in_sl == shadow.answered_in_sl[qid]
        assert st_.abandoned_in_sl == shadow.abandoned_in_sl[qid]
        assert st_.callbacks_waiting + st_.waiting == sum(
            1 for c in shadow.alive if shadow.queue.get(c) == qid and c not in shadow.connected
        )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), s=acd_settings(), steps=st.integers(5, 70))
def test_random_streams_keep_every_invariant(data, s, steps):
    eng, history = drive(data, s, steps)
    assert eng.snapshot()["calls"] == [eng.call_info(c) for c in sorted(eng.call_ids(), key=lambda c: eng.call_info(c)["seq"])]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), s=acd_settings(), steps=st.integers(5, 60))
def test_snapshot_restore_and_replay_give_the_same_state(data, s, steps):
    eng, history = drive(data, s, steps)
    cut = data.draw(st.integers(0, len(history)))
    replayed = AcdEngine(s)
    for now, ev, _ in history[:cut]:
        replayed.handle(ev, now)
    snap = json.loads(json.dumps(replayed.snapshot()))  # plain JSON round trip
    restored = AcdEngine.restore(snap)
    assert restored.snapshot() == snap
    for now, ev, actions in history[cut:]:
        assert restored.handle(ev, now) == actions
    assert restored.snapshot() == eng.snapshot()
    assert restored.next_deadline() == eng.next_deadline()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n_agents=st.integers(1, 3),
    strategy=st.sampled_from(["longest_idle", "round_robin", "fewest_calls", "least_talk_time"]),
    steps=st.integers(10, 80),
)
def test_fifo_within_priority_in_one_queue(data, n_agents, strategy, steps):
    """Whenever a call is offered it is the first waiting call by (priority desc, arrival)."""
    s = AcdSettings(
        queues={"q": QueueSettings(strategy=strategy, wrapup_seconds=0, ring_timeout_seconds=5)},
        agents={f"a{i}": AgentSettings(queues=("q",)) for i in range(n_agents)},
        max_missed_offers=3,
    )
    eng = AcdEngine(s)
    waiting: dict[str, tuple[int, int]] = {}
    ringing: dict[str, tuple[str, tuple[int, int]]] = {}
    connected: set[str] = set()

    def apply(ev, now):
        actions = eng.handle(ev, now)
        if any(isinstance(a, EventRejected) for a in actions):
            assert len(actions) == 1
            return
        # what the event itself changes comes before the offers it triggers
        if isinstance(ev, CallQueued):
            waiting[ev.call_id] = (-ev.priority, int(ev.call_id[1:]))
        elif isinstance(ev, CallAbandoned):
            waiting.pop(ev.call_id, None)
        elif isinstance(ev, OfferRejected):
            waiting[ev.call_id] = ringing.pop(ev.call_id)[1]  # keeps its place
        elif isinstance(ev, CallEnded):
            connected.discard(ev.call_id)
        for act in actions:
            if isinstance(act, OfferCall):
                key = waiting.pop(act.call_id)
                assert all(key < other for other in waiting.values()), "offered out of order"
                ringing[act.call_id] = (act.agent_id, key)
            elif isinstance(act, CancelOffer):
                agent, key = ringing.pop(act.call_id)
                if not isinstance(ev, CallAbandoned) or ev.call_id != act.call_id:
                    waiting[act.call_id] = key  # back at its old place
        if isinstance(ev, OfferAccepted):
            ringing.pop(ev.call_id)
            connected.add(ev.call_id)

    now = 0.0
    arrivals = 0
    for _ in range(steps):
        now += data.draw(st.sampled_from([0.0, 1.0, 2.0, 6.0]))
        choice = data.draw(st.integers(0, 6))
        aid = f"a{data.draw(st.integers(0, n_agents - 1))}"
        while (due := eng.next_deadline()) is not None and due <= now:
            apply(Tick(), due)
        if choice <= 2:
            arrivals += 1
            ev = CallQueued(f"c{arrivals}", "q", priority=data.draw(st.sampled_from([0, 0, 1, 2])))
        elif choice == 3 and ringing:
            cid = data.draw(st.sampled_from(sorted(ringing)))
            ev = data.draw(st.sampled_from([OfferAccepted(cid, ringing[cid][0]), OfferRejected(cid, ringing[cid][0])]))
        elif choice == 4 and (waiting or ringing or connected):
            cid = data.draw(st.sampled_from(sorted(set(waiting) | set(ringing) | connected)))
            ev = CallEnded(cid) if cid in connected else CallAbandoned(cid)
        elif choice == 5:
            ev = data.draw(st.sampled_from([AgentLoggedIn(aid), AgentWentNotReady(aid, "break"), AgentBecameAvailable(aid)]))
        else:
            ev = Tick()
        apply(ev, now)
    assert set(waiting) | set(ringing) | connected == set(eng.call_ids())
