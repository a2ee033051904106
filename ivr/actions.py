"""What an IVR session asks the driver to do: actions, named in the imperative.

The driver carries them out in list order. ``Play`` is asynchronous: the driver answers with
``PromptFinished(play_id)`` when the audio ends. ``StartTimer`` replaces any timer the
session started before; the driver answers with ``TimedOut(timer_id)`` at the deadline.
``RouteToQueue``, ``Transfer`` and ``Hangup`` end the session; the driver lets prompts of the
same action list finish playing before carrying them out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Play:
    """Play prompt files in order from ``<prompts_dir>/<language>/<prompt>.wav``.

    ``text`` is what the prompts say, for simulators and logs. With ``barge_in`` the driver stops
    the playback as soon as the caller presses a key.
    """

    play_id: int
    prompts: tuple[str, ...]
    language: str
    text: str = ""
    barge_in: bool = False


@dataclass(frozen=True, slots=True)
class Collect:
    """The session now wants keys; the driver should pass every DTMF key on as ``DigitReceived``."""

    variable: str | None
    min_length: int = 1
    max_length: int = 1
    terminator: str | None = None
    first_digit_timeout: float = 0.0
    inter_digit_timeout: float = 0.0


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Send ``TimedOut(timer_id)`` at ``deadline`` (``seconds`` after the event that asked)."""

    timer_id: int
    seconds: float
    deadline: dt.datetime


@dataclass(frozen=True, slots=True)
class SetLanguage:
    """From now on prompts are in ``language``; record it on the interaction."""

    language: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """Ask the self-service port; answer with ``LookupCompleted(request_id, ...)``.

    ``kind`` is ``caller`` (key: E.164), ``order_status`` (key: order number), ``warranty``
    (key: serial or order number, see ``by``) or ``balance`` (``customer_id``).
    """

    request_id: int
    kind: str
    key: str | None = None
    by: str | None = None
    customer_id: int | None = None


@dataclass(frozen=True, slots=True)
class RouteToQueue:
    """Put the call in ``queue``; a higher ``priority`` is served first. Ends the session."""

    queue: str
    priority: int = 5
    skills: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestCallback:
    """Record a callback to ``number``.

    ``keep_place``: the caller keeps their place in ``queue`` and is called when it comes up.
    Otherwise ``due`` is the moment the caller chose (timezone-aware).
    """

    queue: str
    number: str
    keep_place: bool = False
    due: dt.datetime | None = None
    customer_id: int | None = None
    priority: int = 5


@dataclass(frozen=True, slots=True)
class Transfer:
    """Blind-transfer the call to ``destination`` (a SIP URI or a number). Ends the session."""

    destination: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call. ``reason`` is the interaction outcome (``self_service``, ``closed``, ...)."""

    reason: str = "self_service"


Action = Play | Collect | StartTimer | SetLanguage | Lookup | RouteToQueue | RequestCallback | Transfer | Hangup
TERMINAL_ACTIONS = (RouteToQueue, Transfer, Hangup)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, dates and decimals as plain JSON values (dataclasses get a ``type`` key)."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for item in fields(value):
            out[item.name] = to_jsonable(getattr(value, item.name))
        return out
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def describe(action: Action) -> str:
    """A one-line, human description of an action (for simulators and logs)."""
    data = asdict(action)
    if isinstance(action, Play):
        return f"Play {', '.join(action.prompts)} [{action.language}]"
    parts = ", ".join(f"{k}={to_jsonable(v)!r}" for k, v in data.items() if v not in (None, {}, ()))
    return f"{type(action).__name__}({parts})"
