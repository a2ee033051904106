"""Events fed to the engine: facts that already happened, named in the past tense.

The time of an event is not a field: it is the ``now`` passed beside it to
:meth:`acd.engine.AcdEngine.handle`, so a recorded stream is a list of ``(now, event)`` pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from acd.errors import InvalidEvent

__all__ = [
    "Event",
    "CallQueued",
    "CallAbandoned",
    "CallbackRequested",
    "OfferAccepted",
    "OfferRejected",
    "OfferFailed",
    "CallEnded",
    "AgentLoggedIn",
    "AgentLoggedOut",
    "AgentWentNotReady",
    "AgentBecameAvailable",
    "WrapUpEnded",
    "WrapUpExtended",
    "CallDisposed",
    "SkillsChanged",
    "StatisticsReset",
    "Tick",
    "EVENT_TYPES",
    "event_to_dict",
    "event_from_dict",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all engine events."""


@dataclass(frozen=True, slots=True)
class CallQueued(Event):
    """A caller was routed to ``queue``. Higher ``priority`` is served first (VIP > 0).

    ``skills`` adds to (or raises) the queue's required skills for this call only.
    """

    call_id: str
    queue: str
    priority: int = 0
    skills: Mapping[str, int] | None = None
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class CallAbandoned(Event):
    """The caller hung up before being answered (also releases an agent whose phone rings)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallbackRequested(Event):
    """The caller asked to be called back at ``number``.

    For a call that is waiting it keeps its place; otherwise ``queue`` must be given and a new
    callback request joins that queue at the back of its priority.
    """

    call_id: str
    number: str
    queue: str | None = None
    priority: int = 0
    skills: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class DirectCallRequested(Event):
    """A call for one named agent: a caller blind-transferred to them, or a customer they dial now.

    Routing rules do not apply: the agent must be available (to dial, wrap-up will do too), or
    the engine answers ``EventRejected``. With ``number`` the agent's phone rings first and the
    customer is dialled once it answers (as for a callback). The call counts in ``queue``'s
    statistics. Unanswered, a transferred caller waits in ``queue`` like any caller; a dial is dropped.
    """

    call_id: str
    agent_id: str
    queue: str
    number: str | None = None
    priority: int = 0
    caller: str | None = None


@dataclass(frozen=True, slots=True)
class OfferAccepted(Event):
    """The agent's phone answered the offered call."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferRejected(Event):
    """The agent declined the offer (or the phone was busy); counts as a missed offer."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferFailed(Event):
    """The offer never reached the agent's phone (no room to dial it, refused before it rang).

    Not a missed offer: nothing counts against the agent. The call goes back to its place and
    other free agents are tried first.
    """

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class CallEnded(Event):
    """The conversation ended (either side hung up); the agent goes to wrap-up."""

    call_id: str


@dataclass(frozen=True, slots=True)
class AgentLoggedIn(Event):
    """The agent logged in, to its configured queues or to ``queues`` when given.

    With ``not_ready_reason`` the agent starts not ready, otherwise available.
    """

    agent_id: str
    queues: tuple[str, ...] | None = None
    not_ready_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AgentLoggedOut(Event):
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentWentNotReady(Event):
    """The agent paused with a configured reason code (during a call: after the call and wrap-up)."""

    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class AgentBecameAvailable(Event):
    """The agent is ready for calls (ends not-ready, or wrap-up early)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class WrapUpEnded(Event):
    """The agent finished after-call work before the wrap-up timer.

    Refused while the agent owes the disposition an ``until_disposed`` queue requires, unless
    ``forced`` (a supervisor's decision; the disposition stays owed, it is just no longer blocking).
    """

    agent_id: str
    forced: bool = False


@dataclass(frozen=True, slots=True)
class WrapUpExtended(Event):
    """The agent asked for more after-call work time (queues with ``timed_extendable`` wrap-up)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class CallDisposed(Event):
    """The agent saved the disposition of ``call_id``: a wrap-up that waited for it may end."""

    agent_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class SkillsChanged(Event):
    """The agent's skills were replaced by ``skills`` (levels 1-5)."""

    agent_id: str
    skills: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class StatisticsReset(Event):
    """Start a new statistics period (e.g. at midnight); routing state is kept."""


@dataclass(frozen=True, slots=True)
class Tick(Event):
    """Only time passed: run the timers due by ``now`` (same as ``engine.tick(now)``)."""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        CallQueued,
        CallAbandoned,
        CallbackRequested,
        DirectCallRequested,
        OfferAccepted,
        OfferRejected,
        OfferFailed,
        CallEnded,
        AgentLoggedIn,
        AgentLoggedOut,
        AgentWentNotReady,
        AgentBecameAvailable,
        WrapUpEnded,
        WrapUpExtended,
        CallDisposed,
        SkillsChanged,
        StatisticsReset,
        Tick,
    )
}


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-able form ``{"type": name, **fields}`` for event logs."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Inverse of :func:`event_to_dict`."""
    kind = data.get("type")
    cls = EVENT_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise InvalidEvent(f"unknown event type {kind!r}; known: {', '.join(EVENT_TYPES)}")
    values = {k: v for k, v in data.items() if k != "type"}
    if cls is AgentLoggedIn and values.get("queues") is not None:
        values["queues"] = tuple(values["queues"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise InvalidEvent(f"{kind}: {exc}") from None
