"""The messages between the control process and a media worker, and their wire format.

Commands go down to a worker (imperative names), events come up (past tense). On the wire every
message is one JSON object on one line (ASCII only, ``\\n`` terminated) with a ``"type"`` field
naming the class. Commands carry an ``"id"`` the worker echoes in :class:`CommandFailed` and
:class:`Pong`; events carry the ``"worker"`` they come from.

Every string that can come from the network (display names, numbers, URIs, header values, reason
phrases) is data: events clip it to a fixed length and drop control characters when they are
built, whether by the worker or by :func:`decode`, so nothing downstream has to guess how long or
how clean it is. Commands come from our own control process: an over-long or malformed value there
is a programming error and raises :class:`MalformedMessage` instead of being silently cut.

This module is stdlib only, so the control process and the pure layers may import it freely.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar

from callcenter.core.errors import CoreError

__all__ = [
    "PROTOCOL_VERSION", "MAX_LINE", "MalformedMessage", "Message", "Command", "Event",
    "AnswerCall", "RejectCall", "PlayPrompts", "StopPlayback", "Dial", "Bridge", "StartRecording",
    "StopRecording", "Hangup", "Ping", "Shutdown",
    "WorkerStarted", "CapacityChanged", "CallArrived", "CallRefused", "LegRinging", "LegAnswered",
    "LegFailed", "LegEnded", "DigitReceived", "PlaybackFinished", "Bridged", "RecordingStarted",
    "RecordingFinished", "CommandFailed", "Pong", "WorkerDied",
    "COMMANDS", "EVENTS", "encode", "decode", "clean_text", "valid_leg_id", "parse_name_addr",
    "LEG_ID_RE", "DTMF_DIGITS",
]

PROTOCOL_VERSION = 1
MAX_LINE = 256 * 1024
"""Longest accepted wire line in bytes; longer input is refused, never buffered without bound."""

# Length limits (characters) of text fields.
SHORT = 64      # ids, numbers, methods, header names
NAME = 128      # display names
TEXT = 256      # URIs, reasons, header values
PATH = 1024     # file paths
MAX_FILES = 64
MAX_HEADERS = 16
MAX_LEGS = 16

LEG_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
DTMF_DIGITS = frozenset("0123456789*#ABCD")
_URI_RE = re.compile(r"^sips?:[^\s<>\"]{1,250}$", re.IGNORECASE)
_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!%*_+`'~.-]{1,64}$")


class MalformedMessage(CoreError):
    """A line or a message that does not follow this protocol."""


def clean_text(value: object, limit: int = TEXT) -> str:
    """``value`` as a string of at most ``limit`` characters with no control characters.

    Control characters (C0, C1, DEL, line and paragraph separators) and lone surrogates are
    dropped; everything else, ``<script>``, quotes and any script of the world, stays as it was.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 4:
        text = text[: limit * 4]
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Zl", "Zp"):
            continue
        out.append(ch)
        if len(out) >= limit:
            break
    return "".join(out)


def valid_leg_id(value: object) -> bool:
    return isinstance(value, str) and LEG_ID_RE.match(value) is not None


def parse_name_addr(value: str) -> tuple[str, str, str]:
    """Split a From/To header value into ``(display_name, user, uri)``; never raises.

    Accepts ``"Display" <sip:user@host>;tag=x``, ``Display <sip:user@host>`` and a bare
    ``sip:user@host;tag=x``. Quoted-pair escapes in the display name are undone. Unparseable input
    gives empty parts rather than an exception; the caller clips the results.
    """
    text = value.strip() if isinstance(value, str) else ""
    display = ""
    uri = ""
    if text.startswith('"'):
        i, chars = 1, []
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                chars.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                break
            chars.append(ch)
            i += 1
        display = "".join(chars)
        rest = text[i + 1:]
        lt = rest.find("<")
        if lt >= 0:
            gt = rest.find(">", lt)
            uri = rest[lt + 1: gt if gt >= 0 else len(rest)]
    else:
        lt = text.find("<")
        if lt >= 0:
            display = text[:lt].strip()
            gt = text.find(">", lt)
            uri = text[lt + 1: gt if gt >= 0 else len(text)]
        else:
            uri = text.split(";", 1)[0]
    uri = uri.strip()
    user = ""
    scheme, sep, rest = uri.partition(":")
    if sep and scheme.lower() in ("sip", "sips", "tel"):
        if scheme.lower() == "tel":
            user = rest.split(";", 1)[0]
        elif "@" in rest:
            user = rest.split("@", 1)[0].split(";", 1)[0].split(":", 1)[0]
    return display, _unescape(user), uri


def _unescape(user: str) -> str:
    if "%" not in user:
        return user
    try:
        from urllib.parse import unquote

        return unquote(user, errors="replace")
    except Exception:  # noqa: BLE001 - data, never a reason to fail
        return user


# ----------------------------------------------------------------------------------------- base


def _limit(n: int) -> dict[str, int]:
    return {"limit": n}


@dataclass(frozen=True, kw_only=True)
class Message:
    """Base of every IPC message; ``type`` on the wire is the class name."""

    TYPE: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            data[f.name] = value
        return data


@dataclass(frozen=True, kw_only=True)
class Command(Message):
    """Control process → worker. ``id`` correlates :class:`CommandFailed` / :class:`Pong`."""

    id: str = field(default="", metadata=_limit(SHORT))

    def __post_init__(self) -> None:
        _check(self, strict=True)


@dataclass(frozen=True, kw_only=True)
class Event(Message):
    """Worker (or pool) → control process. ``worker`` names the worker it concerns."""

    worker: str = field(default="", metadata=_limit(SHORT))

    def __post_init__(self) -> None:
        _check(self, strict=False)


# ------------------------------------------------------------------------------------- commands


@dataclass(frozen=True, kw_only=True)
class AnswerCall(Command):
    """Answer an arrived call with 200 OK; :class:`LegAnswered` follows."""

    leg: str


@dataclass(frozen=True, kw_only=True)
class RejectCall(Command):
    """Refuse an arrived, unanswered call with a final status (4xx-6xx), optionally Retry-After."""

    leg: str
    status: int = 503
    reason: str = field(default="", metadata=_limit(TEXT))
    retry_after: int | None = None


@dataclass(frozen=True, kw_only=True)
class PlayPrompts(Command):
    """Play WAV files in order on an answered leg (replacing what plays); ``loop`` repeats them.

    :class:`PlaybackFinished` with ``playback`` = this command's id follows when the list ends
    (never, for a loop) or when it is stopped.
    """

    leg: str
    files: tuple[str, ...] = field(metadata=_limit(PATH))
    loop: bool = False


@dataclass(frozen=True, kw_only=True)
class StopPlayback(Command):
    leg: str


@dataclass(frozen=True, kw_only=True)
class Dial(Command):
    """Call ``uri`` from this worker as a new leg ``leg``.

    ``peer`` is the leg this one is for (the waiting caller): the new leg then takes the slot
    the caller reserved. Without ``peer`` the leg is a conversation of its own (an outbound
    callback) and needs two free legs, like an arriving caller. ``caller_id`` / ``display_name``
    set the From user and display name (e.g. the caller's number and name for the agent's phone).
    No answer within ``timeout`` seconds: the leg is cancelled, :class:`LegFailed` status 408.
    """

    leg: str
    uri: str = field(metadata=_limit(TEXT))
    caller_id: str = field(default="", metadata=_limit(SHORT))
    display_name: str = field(default="", metadata=_limit(NAME))
    timeout: float = 30.0
    peer: str | None = None


@dataclass(frozen=True, kw_only=True)
class Bridge(Command):
    """Connect the audio of two answered legs both ways (their prompts stop first)."""

    a: str
    b: str


@dataclass(frozen=True, kw_only=True)
class Unbridge(Command):
    """Disconnect the audio of two bridged legs (hold, transfer); both legs stay up."""

    a: str
    b: str


@dataclass(frozen=True, kw_only=True)
class StartRecording(Command):
    """Record the mix of ``legs`` (both parties of a conversation) to one mono WAV at ``path``.

    It stops with :class:`RecordingFinished` on :class:`StopRecording` or when one of the legs
    ends. ``conversation`` is the control process's name for it.
    """

    conversation: str = field(metadata=_limit(SHORT))
    legs: tuple[str, ...]
    path: str = field(metadata=_limit(PATH))


@dataclass(frozen=True, kw_only=True)
class StopRecording(Command):
    conversation: str = field(metadata=_limit(SHORT))


@dataclass(frozen=True, kw_only=True)
class Hangup(Command):
    """End a leg: BYE when answered, CANCEL when dialling, else the final ``status`` (default 480)."""

    leg: str
    status: int | None = None
    reason: str = field(default="", metadata=_limit(TEXT))


@dataclass(frozen=True, kw_only=True)
class Ping(Command):
    """Liveness probe; answered by :class:`Pong` from the worker's SIP thread.

    With ``legs`` the Pong lists every leg the worker holds and its SIP state, so the control
    process can compare it with what it believes (a reconciliation sweep).
    """

    legs: bool = False


@dataclass(frozen=True, kw_only=True)
class Shutdown(Command):
    """Hang up every leg (LegEnded cause ``shutdown``) and exit within ``grace`` seconds."""

    grace: float = 3.0


# --------------------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class WorkerStarted(Event):
    pid: int
    address: str = field(metadata=_limit(SHORT))
    port: int
    rtp_start: int
    rtp_end: int
    legs: int
    max_rate: float
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, kw_only=True)
class CapacityChanged(Event):
    """Free legs changed. ``free_legs`` counts slots neither in use nor reserved for an agent leg."""

    free_legs: int
    in_use: int
    reserved: int


@dataclass(frozen=True, kw_only=True)
class CallArrived(Event):
    """An INVITE was admitted (two legs held for it); answer or reject it within the decision time."""

    leg: str
    call_id: str = field(metadata=_limit(TEXT))
    ani: str = field(metadata=_limit(SHORT))
    dnis: str = field(metadata=_limit(SHORT))
    display_name: str = field(metadata=_limit(NAME))
    from_uri: str = field(default="", metadata=_limit(TEXT))
    to_uri: str = field(default="", metadata=_limit(TEXT))
    remote_address: str = field(default="", metadata=_limit(SHORT))
    headers: dict[str, str] = field(default_factory=dict, metadata=_limit(TEXT))


@dataclass(frozen=True, kw_only=True)
class CallRefused(Event):
    """The worker refused an INVITE itself (no room, rate limit, shutting down); no leg exists."""

    call_id: str = field(metadata=_limit(TEXT))
    ani: str = field(metadata=_limit(SHORT))
    dnis: str = field(metadata=_limit(SHORT))
    remote_address: str = field(default="", metadata=_limit(SHORT))
    status: int
    reason: str = field(metadata=_limit(TEXT))


@dataclass(frozen=True, kw_only=True)
class LegRinging(Event):
    leg: str
    status: int = 180


@dataclass(frozen=True, kw_only=True)
class LegAnswered(Event):
    leg: str


@dataclass(frozen=True, kw_only=True)
class LegFailed(Event):
    """A dialled leg ended without being answered (busy, rejected, timed out, cancelled)."""

    leg: str
    status: int
    reason: str = field(metadata=_limit(TEXT))


@dataclass(frozen=True, kw_only=True)
class LegEnded(Event):
    """Any other leg end. ``cause``: remote, local, rejected, abandoned, timeout, shutdown, error,
    or one of the dead-call causes, where the far end vanished without a BYE and the worker ended
    the call itself: ``rtp_timeout`` (no RTP for the worker's ``--rtp-timeout``) and
    ``session_timer`` (the SIP session timer expired or its refresh got no answer).

    ``duration`` is seconds since the answer (0 when never answered).
    """

    leg: str
    cause: str = field(metadata=_limit(SHORT))
    status: int = 0
    reason: str = field(default="", metadata=_limit(TEXT))
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class DigitReceived(Event):
    leg: str
    digit: str = field(metadata=_limit(1))
    method: str = field(metadata=_limit(SHORT))  # "rfc4733" | "info"


@dataclass(frozen=True, kw_only=True)
class PlaybackFinished(Event):
    """``completed`` is False when stopped (StopPlayback, a new PlayPrompts, Bridge, hangup)."""

    leg: str
    playback: str = field(metadata=_limit(SHORT))
    completed: bool


@dataclass(frozen=True, kw_only=True)
class Bridged(Event):
    a: str
    b: str


@dataclass(frozen=True, kw_only=True)
class RecordingStarted(Event):
    conversation: str = field(metadata=_limit(SHORT))
    path: str = field(metadata=_limit(PATH))


@dataclass(frozen=True, kw_only=True)
class RecordingFinished(Event):
    conversation: str = field(metadata=_limit(SHORT))
    path: str = field(metadata=_limit(PATH))
    duration: float


@dataclass(frozen=True, kw_only=True)
class CommandFailed(Event):
    command_id: str = field(metadata=_limit(SHORT))
    command: str = field(metadata=_limit(SHORT))
    reason: str = field(metadata=_limit(TEXT))
    leg: str | None = None


@dataclass(frozen=True, kw_only=True)
class Pong(Event):
    """The answer to Ping; ``media_ports`` is the worker's conference ports in use (leak checks).

    ``legs`` (only when the Ping asked for it): every leg the worker holds → its state, named after
    pjsip's INVITE session states: ``incoming`` (arrived, not answered), ``connecting`` (answered,
    no ACK yet), ``calling`` (dialled, no provisional response), ``early`` (dialled, ringing),
    ``confirmed`` and ``disconnecting`` (ended by the worker, the stack still closing it).
    """

    command_id: str = field(metadata=_limit(SHORT))
    media_ports: int | None = None
    legs: dict[str, str] | None = field(default=None, metadata=_limit(SHORT))


@dataclass(frozen=True, kw_only=True)
class WorkerDied(Event):
    """Emitted by the pool, not a worker: ``legs`` were lost with the process; it restarts."""

    legs: tuple[str, ...]
    returncode: int | None = None
    restarting: bool = True


COMMANDS: dict[str, type[Command]] = {
    c.__name__: c
    for c in (AnswerCall, RejectCall, PlayPrompts, StopPlayback, Dial, Bridge, Unbridge, StartRecording,
              StopRecording, Hangup, Ping, Shutdown)
}
EVENTS: dict[str, type[Event]] = {
    c.__name__: c
    for c in (WorkerStarted, CapacityChanged, CallArrived, CallRefused, LegRinging, LegAnswered,
              LegFailed, LegEnded, DigitReceived, PlaybackFinished, Bridged, RecordingStarted,
              RecordingFinished, CommandFailed, Pong, WorkerDied)
}
_ALL: dict[str, type[Message]] = {**COMMANDS, **EVENTS}


# ----------------------------------------------------------------------------------- validation

_HINTS: dict[type, dict[str, Any]] = {}
_LEG_FIELDS = {"leg", "a", "b", "peer"}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return True, args[0]
    return False, tp


def _check(msg: Message, *, strict: bool) -> None:
    """Type-check every field; strings: reject (commands) or clip and clean (events)."""
    hints = _hints(type(msg))
    for f in dataclasses.fields(msg):
        name = f.name
        value = getattr(msg, name)
        optional, tp = _is_optional(hints[name])
        if value is None:
            if optional:
                continue
            raise MalformedMessage(f"{type(msg).__name__}.{name} must not be null")
        limit = f.metadata.get("limit", SHORT if name in _LEG_FIELDS else TEXT)
        new = _coerce(type(msg).__name__, name, tp, value, limit, strict)
        if name in _LEG_FIELDS and not valid_leg_id(new):
            raise MalformedMessage(f"{type(msg).__name__}.{name}: {new!r} is not a leg id")
        if name == "legs" and isinstance(new, dict) and not all(valid_leg_id(x) for x in new):
            if strict:
                raise MalformedMessage(f"{type(msg).__name__}.legs: not a map of leg ids")
            new = {k: v for k, v in new.items() if valid_leg_id(k)}  # an event keeps what it can
        if name == "legs" and isinstance(new, tuple):
            if len(new) > (MAX_LEGS if strict else 4096) or not all(valid_leg_id(x) for x in new):
                raise MalformedMessage(f"{type(msg).__name__}.legs: not a list of leg ids")
        if new is not value:
            object.__setattr__(msg, name, new)
    if strict:
        _check_command(msg)


def _coerce(owner: str, name: str, tp: Any, value: Any, limit: int, strict: bool) -> Any:
    where = f"{owner}.{name}"
    if tp is str:
        if not isinstance(value, str):
            raise MalformedMessage(f"{where} must be a string")
        if strict:
            if len(value) > limit:
                raise MalformedMessage(f"{where} is longer than {limit} characters")
            if clean_text(value, limit) != value:
                raise MalformedMessage(f"{where} contains control characters")
            return value
        cleaned = clean_text(value, limit)
        return value if cleaned == value else cleaned
    if tp is bool:
        if not isinstance(value, bool):
            raise MalformedMessage(f"{where} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedMessage(f"{where} must be an integer")
        if abs(value) > 2**53:
            raise MalformedMessage(f"{where} is out of range")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MalformedMessage(f"{where} must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise MalformedMessage(f"{where} must be finite")
        return value
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise MalformedMessage(f"{where} must be a list")
        if len(value) > MAX_FILES and strict:
            raise MalformedMessage(f"{where} has more than {MAX_FILES} items")
        items = tuple(_coerce(owner, name, str, v, limit, strict) for v in list(value)[:4096])
        return value if isinstance(value, tuple) and items == value else items
    if origin is dict:
        if not isinstance(value, dict):
            raise MalformedMessage(f"{where} must be an object")
        out: dict[str, str] = {}
        for k, v in list(value.items())[: MAX_HEADERS * 4]:
            if not isinstance(k, str) or not isinstance(v, str):
                raise MalformedMessage(f"{where} must map strings to strings")
            key = clean_text(k, SHORT)
            if not key:
                continue
            out[key] = clean_text(v, limit)
            if len(out) >= MAX_HEADERS:
                break
        return out
    raise MalformedMessage(f"{where}: unsupported field type {tp!r}")  # pragma: no cover


def _check_command(cmd: Message) -> None:
    name = type(cmd).__name__
    if isinstance(cmd, (RejectCall, Hangup)) and cmd.status is not None and not 400 <= cmd.status <= 699:
        raise MalformedMessage(f"{name}.status must be a final failure status 400-699, not {cmd.status}")
    if isinstance(cmd, RejectCall) and cmd.retry_after is not None and not 0 <= cmd.retry_after <= 86400:
        raise MalformedMessage(f"{name}.retry_after must be 0-86400 seconds")
    if isinstance(cmd, PlayPrompts) and not cmd.files:
        raise MalformedMessage("PlayPrompts.files must name at least one file")
    if isinstance(cmd, Dial):
        if not _URI_RE.match(cmd.uri):
            raise MalformedMessage(f"Dial.uri {cmd.uri!r} is not a sip: or sips: URI")
        if not 0 < cmd.timeout <= 600:
            raise MalformedMessage("Dial.timeout must be in (0, 600] seconds")
        if cmd.peer is not None and cmd.peer == cmd.leg:
            raise MalformedMessage("Dial.peer must be another leg")
    if isinstance(cmd, Bridge) and cmd.a == cmd.b:
        raise MalformedMessage("Bridge needs two different legs")
    if isinstance(cmd, StartRecording) and not 1 <= len(cmd.legs) <= 4:
        raise MalformedMessage("StartRecording.legs must name 1 to 4 legs")
    if isinstance(cmd, Shutdown) and not 0 <= cmd.grace <= 60:
        raise MalformedMessage("Shutdown.grace must be 0-60 seconds")


# ----------------------------------------------------------------------------------------- wire


def encode(message: Message) -> bytes:
    """One wire line (ASCII JSON + ``\\n``)."""
    return (json.dumps(message.to_dict(), ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def decode(line: bytes | str) -> Message:
    """The message on one wire line; :class:`MalformedMessage` for anything else (never another error)."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE:
            raise MalformedMessage("line too long")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("line is not UTF-8") from exc
    elif len(line) > MAX_LINE:
        raise MalformedMessage("line too long")
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessage("a message is a JSON object")
    kind = data.get("type")
    cls = _ALL.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MalformedMessage(f"unknown message type {str(kind)[:40]!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}  # unknown fields: ignored (newer peer)
    for fname, f in names.items():
        if fname not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise MalformedMessage(f"{kind} lacks field {fname!r}")
    try:
        return cls(**kwargs)
    except MalformedMessage:
        raise
    except (TypeError, ValueError) as exc:  # pragma: no cover - _check covers the known cases
        raise MalformedMessage(f"{kind}: {exc}") from None
