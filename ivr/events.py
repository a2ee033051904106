"""What the driver tells an IVR session: events, named in the past tense.

Every event is a frozen dataclass. The time of the event is passed beside it
(``session.handle(event, now)``), never read from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTMF_KEYS = "0123456789*#"


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The call the session serves. ``caller`` is E.164 when the caller ID could be read, else None."""

    call_id: str
    caller: str | None = None
    dialed: str | None = None
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The call was answered and the IVR may begin (same as ``session.start(now)``)."""


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """One DTMF key (``0-9 * #``), from RFC 4733 or SIP INFO."""

    digit: str


@dataclass(frozen=True, slots=True)
class DigitsEntered:
    """Several keys at once (a SIP INFO burst, a test); handled as one ``DigitReceived`` per key."""

    digits: str


@dataclass(frozen=True, slots=True)
class PromptFinished:
    """The playback started by ``Play(play_id=...)`` reached its end (or was stopped by barge-in)."""

    play_id: int


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The timer started by ``StartTimer(timer_id=...)`` expired."""

    timer_id: int


@dataclass(frozen=True, slots=True)
class LookupCompleted:
    """The answer to ``Lookup(request_id=...)``.

    ``result`` is one of the records in :mod:`ivr.ports` (``CallerRecord``, ``OrderStatus``,
    ``WarrantyStatus``, ``AccountBalance``) or None when nothing matched. ``error`` is set
    when the lookup itself failed (database down); the menu's ``failed`` branch is taken.
    """

    request_id: int
    result: Any = None
    error: str | None = None

    @property
    def found(self) -> bool:
        return self.error is None and self.result is not None


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller went away while still in the IVR."""


Event = CallStarted | DigitReceived | DigitsEntered | PromptFinished | TimedOut | LookupCompleted | CallerHungUp
