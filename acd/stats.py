"""Statistics views. The engine keeps running counters (updated as events happen, never by
scanning history); these frozen records are what ``engine.queue_stats`` / ``agent_stats`` return.

Service level, with T the queue's ``service_level_seconds``:

* ``sl1`` = answered within T / answered                     (Asterisk ``ServicelevelPerf``)
* ``sl2`` = answered within T / (answered + abandoned)
* ``sl_asterisk_perf2`` = (answered within T + abandoned within T) / (answered + abandoned)
  (Asterisk ``ServicelevelPerf2``: short abandons count as met)
* ``sl_excl_short`` = answered within T / (answered + abandoned − short abandons)
  (short abandons are left out of the denominator; threshold ``short_abandon_seconds``,
  by default T)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["QueueStats", "AgentStats"]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


class QueueCounters:
    """Mutable running totals of one queue (internal; exported for the engine and snapshot)."""

    __slots__ = (
        "entered",
        "answered",
        "answered_in_sl",
        "abandoned",
        "abandoned_in_sl",
        "abandoned_short",
        "overflowed",
        "overflowed_in",
        "diverted",
        "refused",
        "left_empty",
        "converted_to_callback",
        "callbacks_requested",
        "callbacks_answered",
        "callbacks_cancelled",
        "callback_offers",
        "ring_no_answer",
        "answer_wait",
        "max_answer_wait",
        "abandon_wait",
        "completed",
        "talk",
        "wrapups",
        "wrap",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)
        self.answer_wait = 0.0
        self.max_answer_wait = 0.0
        self.abandon_wait = 0.0
        self.talk = 0.0
        self.wrap = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def load(self, data: dict[str, Any]) -> None:
        for name in self.__slots__:
            if name in data:
                setattr(self, name, data[name])


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Queue figures at ``at`` (seconds, the engine's clock)."""

    queue: str
    at: float
    waiting: int
    ringing: int
    callbacks_waiting: int
    longest_wait: float
    members_logged_in: int
    agents_available: int
    entered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    abandoned_in_sl: int
    abandoned_short: int
    overflowed: int
    overflowed_in: int
    diverted: int
    refused: int
    left_empty: int
    converted_to_callback: int
    callbacks_requested: int
    callbacks_answered: int
    callbacks_cancelled: int
    callback_offers: int
    ring_no_answer: int
    completed: int
    service_level_seconds: float
    service_level_target: float
    sl1: float | None
    sl2: float | None
    sl_asterisk_perf2: float | None
    sl_excl_short: float | None
    abandon_rate: float | None
    asa: float | None
    max_answer_wait: float
    avg_abandon_wait: float | None
    avg_talk: float | None
    avg_wrap: float | None
    aht: float | None

    @classmethod
    def build(
        cls,
        queue: str,
        at: float,
        c: QueueCounters,
        *,
        waiting: int,
        ringing: int,
        callbacks_waiting: int,
        longest_wait: float,
        members_logged_in: int,
        agents_available: int,
        service_level_seconds: float,
        service_level_target: float,
    ) -> QueueStats:
        handled = c.answered + c.abandoned
        return cls(
            queue=queue,
            at=at,
            waiting=waiting,
            ringing=ringing,
            callbacks_waiting=callbacks_waiting,
            longest_wait=longest_wait,
            members_logged_in=members_logged_in,
            agents_available=agents_available,
            entered=c.entered,
            answered=c.answered,
            answered_in_sl=c.answered_in_sl,
            abandoned=c.abandoned,
            abandoned_in_sl=c.abandoned_in_sl,
            abandoned_short=c.abandoned_short,
            overflowed=c.overflowed,
            overflowed_in=c.overflowed_in,
            diverted=c.diverted,
            refused=c.refused,
            left_empty=c.left_empty,
            converted_to_callback=c.converted_to_callback,
            callbacks_requested=c.callbacks_requested,
            callbacks_answered=c.callbacks_answered,
            callbacks_cancelled=c.callbacks_cancelled,
            callback_offers=c.callback_offers,
            ring_no_answer=c.ring_no_answer,
            completed=c.completed,
            service_level_seconds=service_level_seconds,
            service_level_target=service_level_target,
            sl1=_ratio(c.answered_in_sl, c.answered),
            sl2=_ratio(c.answered_in_sl, handled),
            sl_asterisk_perf2=_ratio(c.answered_in_sl + c.abandoned_in_sl, handled),
            sl_excl_short=_ratio(c.answered_in_sl, handled - c.abandoned_short),
            abandon_rate=_ratio(c.abandoned, handled),
            asa=_ratio(c.answer_wait, c.answered),
            max_answer_wait=c.max_answer_wait,
            avg_abandon_wait=_ratio(c.abandon_wait, c.abandoned),
            avg_talk=_ratio(c.talk, c.completed),
            avg_wrap=_ratio(c.wrap, c.wrapups),
            aht=_ratio(c.talk + c.wrap, c.completed),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class AgentStats:
    """One agent's figures at ``at``; times in seconds, including the current state so far.

    ``occupancy`` = (talk + wrap) / (talk + wrap + available + reserved): the share of ready
    time spent handling calls (not-ready time is outside both).
    """

    agent_id: str
    at: float
    state: str
    reason: str | None
    time_in_state: float
    queues: tuple[str, ...]
    current_call: str | None
    calls: int
    missed_offers: int
    talk: float
    wrap: float
    available: float
    reserved: float
    not_ready: float
    not_ready_by_reason: dict[str, float]
    logged_in: float
    occupancy: float | None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["queues"] = list(self.queues)
        out["not_ready_by_reason"] = dict(self.not_ready_by_reason)
        return out
