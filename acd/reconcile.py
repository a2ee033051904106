"""The reconciliation sweep: what the ACD and the call flow believe, compared with what is true.

Agent state built only from events goes wrong when an event is lost: a BYE that never comes, a
worker's report dropped, a phone switched off while its agent is ready. Nothing event-driven ever
notices. The sweep does, every few seconds: it takes one :class:`Observation` (the ACD's agents and
calls, the contacts the call flow holds with their legs, the legs every worker really holds, and
which phones are registered) and returns the :class:`Repair` for each divergence that has lasted
``grace`` seconds, so that a report still in flight is never "repaired". Pure: values in, values
out; the shell that gathers the observation carries the repairs out and audits them.

At most one repair per agent and per leg in one sweep; a healthy observation gives none, and an
observation taken after the repairs were carried out gives none either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from acd.settings import PHONE_OFFLINE

__all__ = [
    "ANSWER_UNSEEN", "CALL_UNKNOWN", "LEG_LOST", "LEG_UNKNOWN", "OFFER_WITHOUT_LEG", "PHONE_BACK", "PHONE_OFFLINE_READY", "REPAIR_KINDS",
    "TALK_WITHOUT_CALL", "WRAP_UP_OVERDUE", "AgentSeen", "CallSeen", "LegSeen", "Observation", "Repair", "SweepRules",
    "SweepResult", "sweep",
]

OFFER_WITHOUT_LEG = "offer_without_leg"
"""Reserved for a call whose agent leg rings on no worker: the offer is released, the call keeps its place."""
ANSWER_UNSEEN = "answer_unseen"
"""Reserved while the agent's phone has answered (its leg is confirmed on the worker): the answer is taken,
the call connects."""
TALK_WITHOUT_CALL = "talk_without_call"
"""On call (for the ACD) with no conversation behind it: the ACD's call is ended, the agent goes to wrap-up."""
LEG_LOST = "leg_lost"
"""A contact holds a leg no worker has any more (its end was never reported): ended as if reported."""
LEG_UNKNOWN = "leg_unknown"
"""A worker holds a leg no contact owns: hung up."""
CALL_UNKNOWN = "call_unknown"
"""The ACD holds a call no contact stands for: it is removed from the queue."""
WRAP_UP_OVERDUE = "wrap_up_overdue"
"""A timed wrap-up past its end (its timer lost): ended. One longer than the limit: ended into not ready
(the agent may have left the desk). A disposition owed stays owed."""
PHONE_OFFLINE_READY = "phone_offline_ready"
"""Ready or ringing while the agent's phone is not registered: made not ready, reason ``phone_offline``."""
PHONE_BACK = "phone_back"
"""Not ready only because the phone was offline, and it is back: ready again (when the rules say so)."""
REPAIR_KINDS = (OFFER_WITHOUT_LEG, ANSWER_UNSEEN, TALK_WITHOUT_CALL, LEG_LOST, LEG_UNKNOWN, CALL_UNKNOWN, WRAP_UP_OVERDUE,
                PHONE_OFFLINE_READY, PHONE_BACK)

_RESERVED, _ON_CALL, _WRAP_UP, _AVAILABLE, _NOT_READY = "reserved", "on_call", "wrap_up", "available", "not_ready"
_TALKING = ("connected", "leaving")
_FINISHING = ("disconnecting", "disconnected")
_UNDECIDED = ("incoming",)
"""A new call the worker has not answered yet: its own decision timeout answers it (503, which the SIP front
fails over to another worker); hanging it up here would turn the caller away."""


@dataclass(frozen=True)
class AgentSeen:
    """One logged-in agent as the ACD has it, and their phone as the registrar has it."""

    agent_id: str
    state: str
    reason: str | None = None
    since: float = 0.0
    """When the ACD's state began (epoch seconds)."""
    call_id: str | None = None
    """The ACD's call of a reserved or on-call agent."""
    wrap_until: float | None = None
    """End of a timed wrap-up (epoch seconds); None when it waits for a disposition."""
    phone: str = "fixed"
    """``online`` / ``offline`` for a phone that registers; ``fixed`` for one that cannot tell."""


@dataclass(frozen=True)
class CallSeen:
    """One contact the call flow holds."""

    call_id: str
    """The ACD's id of the contact."""
    phase: str
    agent_id: str | None = None
    legs: tuple[str, ...] = ()
    agent_leg: str | None = None


@dataclass(frozen=True)
class LegSeen:
    """One leg a worker holds, with its SIP state (``calling``, ``early``, ``confirmed``, ``disconnecting``)."""

    leg: str
    worker: str
    state: str


@dataclass(frozen=True)
class Observation:
    """Everything one sweep compares, taken at ``now`` (epoch seconds)."""

    now: float
    agents: tuple[AgentSeen, ...] = ()
    calls: tuple[CallSeen, ...] = ()
    acd_calls: frozenset[str] = frozenset()
    """Calls the ACD holds (waiting, offered or connected)."""
    legs: tuple[LegSeen, ...] = ()
    """Every leg the workers that answered hold."""
    silent_workers: frozenset[str] = frozenset()
    """Workers that did not answer: nothing is concluded about the legs they hold."""
    leg_workers: Mapping[str, str] = field(default_factory=dict)
    """Where each leg the call flow knows lives (the worker that was told to create or took it)."""


@dataclass(frozen=True)
class SweepRules:
    grace: float = 3.0
    max_wrap_up: float = 1800.0
    ready_when_back: bool = True


@dataclass(frozen=True)
class Repair:
    """One divergence to repair: what was seen, since when, and what to do, in words and as data."""

    kind: str
    subject: str
    seen: str
    since: float
    lasted: float
    action: str
    agent_id: str | None = None
    call_id: str | None = None
    leg: str | None = None
    worker: str | None = None


@dataclass(frozen=True)
class SweepResult:
    repairs: tuple[Repair, ...]
    pending: dict[tuple[str, str, str], float]
    """Divergences seen but not old enough yet, by key, with when they were first seen: the next sweep's input."""


@dataclass(frozen=True)
class _Found:
    key: tuple[str, str, str]
    start: float | None  # known start (a wrap-up's end); None: from when it was first seen
    repair: Repair


def sweep(obs: Observation, pending: Mapping[tuple[str, str, str], float], rules: SweepRules = SweepRules()) -> SweepResult:
    """The repairs due in ``obs``, given the divergences ``pending`` from earlier sweeps."""
    now = obs.now
    held = {leg.leg: leg for leg in obs.legs}
    calls = {c.call_id: c for c in obs.calls}

    def alive(leg: str) -> bool:
        """Held, or perhaps held by a worker that did not answer (one whose worker is unknown may be anywhere)."""
        if leg in held:
            return True
        worker = obs.leg_workers.get(leg)
        return worker in obs.silent_workers if worker is not None else bool(obs.silent_workers)

    found: list[_Found] = []
    spoken_for: set[str] = set()  # legs a repair of their agent already covers

    def add(kind: str, subject: str, ref: str, seen: str, action: str, start: float | None = None, **ids) -> None:
        found.append(_Found((kind, subject, ref), start, Repair(kind, subject, seen, 0.0, 0.0, action, **ids)))

    for a in obs.agents:
        subject = f"agent:{a.agent_id}"
        call = calls.get(a.call_id or "")
        in_state = f"{now - a.since:.0f} s"
        if a.state == _RESERVED:
            if call is None or call.agent_id != a.agent_id or call.agent_leg is None or not alive(call.agent_leg):
                why = ("no contact holds it" if call is None else
                       "its phone was never dialled" if call.agent_leg is None or call.agent_id != a.agent_id else
                       f"leg {call.agent_leg} rings on no worker")
                if call is not None and call.agent_leg:
                    spoken_for.add(call.agent_leg)
                # keyed by the offer (the state's start): a call re-offered each second by the call flow's own
                # retry (no room to dial) is a new offer each time, not one that lasts
                add(OFFER_WITHOUT_LEG, subject, f"{a.call_id}@{a.since:.6f}",
                    f"reserved for call {a.call_id} for {in_state}, but {why}",
                    "offer released; the call keeps its place in the queue", agent_id=a.agent_id, call_id=a.call_id,
                    leg=call.agent_leg if call else None)
                continue
            answered = held.get(call.agent_leg)
            if answered is not None and answered.state == "confirmed":
                add(ANSWER_UNSEEN, subject, f"{a.call_id}@{a.since:.6f}", f"reserved for call {a.call_id} for "
                    f"{in_state}, but its phone answered (leg {call.agent_leg} is talking on {answered.worker})",
                    "answer taken: the call connects", agent_id=a.agent_id, call_id=a.call_id, leg=call.agent_leg,
                    worker=answered.worker)
                continue
        elif a.state == _ON_CALL:
            if call is None or call.agent_id != a.agent_id or call.phase not in _TALKING:
                why = ("no contact holds it" if call is None else
                       f"the contact is with agent {call.agent_id}" if call.agent_id != a.agent_id else
                       f"the contact is {call.phase}")
                add(TALK_WITHOUT_CALL, subject, a.call_id or "", f"on call {a.call_id} for {in_state}, but {why}",
                    "call ended in the ACD; agent to wrap-up", agent_id=a.agent_id, call_id=a.call_id)
                continue
        elif a.state == _WRAP_UP:
            limit = a.since + rules.max_wrap_up
            end = min(a.wrap_until, limit) if a.wrap_until is not None else limit
            if now >= end:
                seen = (f"wrap-up due to end {now - end:.0f} s ago" if a.wrap_until is not None and a.wrap_until <= limit
                        else f"wrap-up for {in_state}, over the {rules.max_wrap_up:.0f} s limit")
                timed = a.wrap_until is not None and a.wrap_until <= limit
                add(WRAP_UP_OVERDUE, subject, f"{a.since:.3f}", seen,
                    "wrap-up ended" if timed else "wrap-up ended, agent not ready (a disposition owed stays owed)",
                    start=end, agent_id=a.agent_id)
                continue
        if a.phone == "offline" and a.state in (_AVAILABLE, _RESERVED):
            add(PHONE_OFFLINE_READY, subject, "", f"{a.state.replace('_', ' ')} for {in_state} with the phone offline",
                f"not ready ({PHONE_OFFLINE})", agent_id=a.agent_id, call_id=a.call_id)
        elif a.phone == "online" and a.state == _NOT_READY and a.reason == PHONE_OFFLINE and rules.ready_when_back:
            add(PHONE_BACK, subject, "", f"not ready ({PHONE_OFFLINE}) for {in_state}, but the phone is registered",
                "ready", agent_id=a.agent_id)

    owned: set[str] = set()
    for c in obs.calls:
        for leg in c.legs:
            owned.add(leg)
            if leg in spoken_for or alive(leg):
                continue
            role = "caller" if leg != c.agent_leg else "agent"
            add(LEG_LOST, f"leg:{leg}", c.call_id, f"call {c.call_id} ({c.phase}) holds its {role} leg {leg}, "
                "which no worker has", "leg ended as if its end had been reported", call_id=c.call_id, leg=leg,
                worker=obs.leg_workers.get(leg))
    for leg in obs.legs:
        if leg.leg not in owned and leg.state not in _FINISHING + _UNDECIDED:
            add(LEG_UNKNOWN, f"leg:{leg.leg}", leg.worker, f"worker {leg.worker} holds leg {leg.leg} ({leg.state}) "
                "that no contact owns", "leg hung up", leg=leg.leg, worker=leg.worker)
    for call_id in sorted(obs.acd_calls - calls.keys()):
        add(CALL_UNKNOWN, f"call:{call_id}", "", f"the ACD holds call {call_id}, which no contact stands for",
            "call removed from the ACD", call_id=call_id)

    repairs: list[Repair] = []
    still: dict[tuple[str, str, str], float] = {}
    for item in found:
        first = item.start if item.start is not None else pending.get(item.key, now)
        if now - first >= rules.grace:
            r = item.repair
            repairs.append(Repair(r.kind, r.subject, r.seen, first, round(now - first, 3), r.action, r.agent_id,
                                  r.call_id, r.leg, r.worker))
        else:
            still[item.key] = first
    return SweepResult(tuple(repairs), still)
