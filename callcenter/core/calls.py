"""One contact as the control process sees it, and what the call flow keeps about contacts.

``Call`` is the interaction row's live twin; ``OwedDisposition`` a conversation an agent still has
to give a disposition for. The phases name where a call is (IVR, queue, agent's phone, talking).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import ivr

__all__ = [
    "CALLBACK", "CONNECTED", "DISPOSABLE_CALLS", "ENDED", "IVR", "LEAVING", "OFFER_RETRY_SECONDS", "OWED_LOOKBACK",
    "OWED_PER_AGENT", "QUEUED", "RINGING", "BoundedDict", "Call", "OwedDisposition", "dialable", "new_call_id",
]

IVR, QUEUED, RINGING, CONNECTED, CALLBACK, LEAVING, ENDED = (
    "ivr", "queued", "ringing", "connected", "callback", "leaving", "ended",
)


DISPOSABLE_CALLS = 50_000


class BoundedDict(OrderedDict):
    """A dict that forgets its oldest entries beyond ``limit`` (a long-running server's per-call notes)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


@dataclass
class OwedDisposition:
    """A conversation an agent handled and has not given a disposition yet: what their console lists."""

    call_id: str
    ani: str | None
    display_name: str | None
    queue: str | None
    customer_id: int | None
    direction: str
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    engine_id: str = ""  # the ACD's id of the call (a kept-place callback's differs from call_id)

    def __post_init__(self) -> None:
        self.engine_id = self.engine_id or self.call_id

    def to_wire(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "ani": self.ani, "display_name": self.display_name, "queue": self.queue,
                "customer_id": self.customer_id, "direction": self.direction,
                "answered_at": self.answered_at.isoformat() if self.answered_at else None,
                "ended_at": self.ended_at.isoformat() if self.ended_at else None}


OFFER_RETRY_SECONDS = 1.0  # an offer that could not be dialled goes back to the queue after this
OWED_PER_AGENT = 500  # a console's list of dispositions owed; beyond this the oldest are dropped (and logged)
OWED_LOOKBACK = dt.timedelta(days=2)  # owed dispositions reloaded from the records at start-up


def new_call_id() -> str:
    """A fresh id for a contact (interaction row, queue_log, consoles)."""
    return uuid.uuid4().hex


def dialable(number: str | None) -> bool:
    """A number the center may dial back: digits only (E.164 or national), never a SIP user part."""
    return bool(number) and re.fullmatch(r"\+?\d{3,20}", number) is not None


@dataclass
class Call:
    """One contact as the control process sees it (the interaction row's live twin)."""

    call_id: str
    leg: str | None
    ani: str
    dnis: str
    display_name: str
    arrived_at: dt.datetime
    language: str
    session: ivr.IvrSession | None = None
    phase: str = IVR
    customer_id: int | None = None
    queue: str | None = None
    priority: int = 0
    queued_at: dt.datetime | None = None
    agent_id: str | None = None
    agent_leg: str | None = None
    customer_leg: str | None = None
    offered_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    callback_number: str | None = None
    outcome: str | None = None
    playback: str | None = None
    announcing: bool = False
    on_hold: bool = False
    hangup_after_playback: bool = False
    outbound: bool = False  # an agent's dial-now: the agent's phone first, then the customer
    callback_id: int | None = None  # the callback row a dial-now works
    ivr_plays: dict[str, int] = field(default_factory=dict)
    timers: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    # The contact the records (interaction row, queue_log, dispositions, consoles) are about. The
    # same as call_id, except for a kept-place callback: the caller's own call is closed when they
    # hang up, and the callback is a contact of its own while the ACD keeps its place (call_id).
    record: str = ""
    inbound_record: str | None = None  # the caller's call, still open until their leg ends
    kept: bool = False  # a kept-place callback: the ACD holds it after the caller has left
    caller_leaving: bool = False  # the caller's leg of a kept-place callback is being hung up

    def __post_init__(self) -> None:
        self.record = self.record or self.call_id

    @property
    def caller_on_line(self) -> bool:
        """The caller who left a kept-place callback is still listening (their leg is up and not being hung up)."""
        return self.leg is not None and not self.caller_leaving

    def legs(self) -> list[str]:
        return [leg for leg in (self.leg, self.agent_leg, self.customer_leg) if leg]
