"""Actions returned by the engine: commands for the caller to carry out, named imperatively,
plus two notices (``AgentStateChanged``, ``EventRejected``) and the explanation types."""

from __future__ import annotations

from dataclasses import dataclass

from acd.events import Event

__all__ = [
    "Action",
    "OfferCall",
    "CancelOffer",
    "DialCustomer",
    "OverflowCall",
    "OfferCallback",
    "RefuseCall",
    "AnnouncePosition",
    "AgentStateChanged",
    "EventRejected",
    "OfferReason",
    "AgentVerdict",
    "Explanation",
]


@dataclass(frozen=True, slots=True)
class OfferReason:
    """Why this offer was made; cheap to build, attached to every :class:`OfferCall`.

    ``trigger`` is ``"call"`` when a call that just became ready picked the best free agent,
    ``"agent"`` when an agent that just became free picked the best waiting call.
    ``agent_key`` is the chosen agent's ordering key under ``strategy`` (smaller goes first).
    ``passed_over`` lists free agents ranked before the chosen one but skipped because they
    had let this very call ring out. For the full per-agent picture call ``engine.explain``.
    """

    trigger: str
    strategy: str
    requirement: tuple[tuple[str, int], ...]
    relax_step: int
    waited: float
    agent_key: tuple[float, float, int]
    passed_over: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    """Base class of everything the engine returns."""


@dataclass(frozen=True, slots=True)
class OfferCall(Action):
    """Ring ``agent_id`` with the call (for a callback request: offer it on the console)."""

    call_id: str
    agent_id: str
    queue: str
    explanation: OfferReason
    ring_timeout: float
    callback_number: str | None = None


@dataclass(frozen=True, slots=True)
class CancelOffer(Action):
    """Stop ringing the agent. ``reason``: ring_timeout, caller_hung_up, agent_not_ready, agent_logged_out."""

    call_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DialCustomer(Action):
    """The agent accepted a callback request: dial the customer and bridge to the agent."""

    call_id: str
    agent_id: str
    number: str


@dataclass(frozen=True, slots=True)
class OverflowCall(Action):
    """Move the call out of ``queue`` to ``target`` (``queue:NAME``, callback, voicemail, hangup).

    ``reason``: max_wait, full, no_agents or empty. For a ``queue:NAME`` target the engine has
    already placed the call in that queue (an ``OfferCall`` may follow in the same batch).
    """

    call_id: str
    queue: str
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class OfferCallback(Action):
    """Offer the waiting caller a callback; if they accept, send ``CallbackRequested``."""

    call_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class RefuseCall(Action):
    """The call is not taken by the queue. ``reason``: full, no_agents, empty, overflow_loop."""

    call_id: str
    queue: str
    reason: str


@dataclass(frozen=True, slots=True)
class AnnouncePosition(Action):
    """Tell the waiting caller their position (1 = next) and estimated wait (None if unknown)."""

    call_id: str
    queue: str
    position: int
    estimated_wait: float | None


@dataclass(frozen=True, slots=True)
class AgentStateChanged(Action):
    """Notice for consoles and supervisors: ``agent_id`` went from ``previous`` to ``state``."""

    agent_id: str
    state: str
    reason: str | None
    previous: str


@dataclass(frozen=True, slots=True)
class EventRejected(Action):
    """The event did not apply to the current state (a race or a stale id); nothing changed."""

    event: Event
    reason: str


@dataclass(frozen=True, slots=True)
class AgentVerdict:
    """One agent's standing for one call in an :class:`Explanation`.

    ``verdict`` is one of: chosen, candidate, not_member, logged_out, not_ready, wrap_up,
    on_call, reserved, busy_in_other_queue, missing_skill, level_too_low, missed_this_call.
    ``rank`` orders candidates by the queue's strategy (1 = would be offered first).
    """

    agent_id: str
    verdict: str
    detail: str
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Which agents could take a call and why each other one could not (see ``engine.explain``)."""

    call_id: str
    queue: str
    state: str
    priority: int
    waited: float
    strategy: str
    requirement: tuple[tuple[str, int], ...]
    relax_step: int
    agent_id: str | None
    verdicts: tuple[AgentVerdict, ...]

    def by_verdict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for v in self.verdicts:
            out.setdefault(v.verdict, []).append(v.agent_id)
        return out

    def lines(self) -> list[str]:
        """Human-readable lines for logs and the supervisor console."""
        need = ", ".join(f"{s}>={level}" for s, level in self.requirement) or "no skills"
        head = (
            f"call {self.call_id} in {self.queue} ({self.state}, priority {self.priority}, "
            f"waited {self.waited:.1f}s, strategy {self.strategy}, needs {need}, relax step {self.relax_step})"
        )
        out = [head]
        for v in self.verdicts:
            rank = f" #{v.rank}" if v.rank is not None else ""
            out.append(f"  {v.agent_id}: {v.verdict}{rank} - {v.detail}")
        return out
