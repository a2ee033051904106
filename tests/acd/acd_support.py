"""Helpers shared by the ACD tests: compact engine construction and action filters."""

from __future__ import annotations

from acd import (
    AcdEngine,
    AcdSettings,
    AgentSettings,
    AgentStateChanged,
    CancelOffer,
    EventRejected,
    OfferCall,
    OverflowSettings,
    QueueSettings,
)


def queue(**kw) -> QueueSettings:
    kw.setdefault("wrapup_seconds", 0)
    kw.setdefault("ring_timeout_seconds", 10)
    if isinstance(kw.get("overflow"), tuple):
        after, target = kw["overflow"]
        kw["overflow"] = OverflowSettings(after_seconds=after, target=target)
    return QueueSettings(**kw)


def make(queues: dict | None = None, agents: dict | None = None, engine_cls=AcdEngine, **kw) -> AcdEngine:
    """``queues``: id -> QueueSettings or kwargs; ``agents``: id -> (queues, skills) or AgentSettings."""
    queues = queues if queues is not None else {"q": {}}
    qs = {qid: q if isinstance(q, QueueSettings) else queue(**q) for qid, q in queues.items()}
    ags = {}
    for aid, spec in (agents if agents is not None else {"a": (("q",), {})}).items():
        if isinstance(spec, AgentSettings):
            ags[aid] = spec
        else:
            qids, skills = spec
            ags[aid] = AgentSettings(queues=tuple(qids), skills=skills)
    return engine_cls(AcdSettings(queues=qs, agents=ags, **kw))


def offers(actions) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in actions if isinstance(a, OfferCall)]


def cancels(actions) -> list[tuple[str, str, str]]:
    return [(a.call_id, a.agent_id, a.reason) for a in actions if isinstance(a, CancelOffer)]


def states(actions) -> list[tuple[str, str, str | None]]:
    return [(a.agent_id, a.state, a.reason) for a in actions if isinstance(a, AgentStateChanged)]


def rejected(actions) -> list[str]:
    return [a.reason for a in actions if isinstance(a, EventRejected)]


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions if not isinstance(a, AgentStateChanged)]
