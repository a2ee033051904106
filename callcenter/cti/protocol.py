"""The CTI wire protocol, version 1: message names, envelopes, limits, error codes, request validation.

One JSON object per WebSocket text frame. Every frame has ``type`` and ``id``. A client's
request carries an ``id`` of its choosing (string or integer) and gets exactly one reply with
the same ``id``: ``{"type": "result", ...}`` or ``{"type": "error", ...}``. Everything else the
server sends is an event with a server-assigned ``id`` (``"e1"``, ``"e2"``...). The full reference
is ``docs/cti-protocol.md``; this module is its executable half and has no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from callcenter.cti.errors import CtiError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

MAX_FRAME_BYTES = 64 * 1024
"""Larger requests get a ``too_large`` error and the connection stays open."""
HARD_FRAME_BYTES = 1024 * 1024
"""Frames above this are not read at all: the connection is closed with status 1009."""
MAX_ID_CHARS = 64
MAX_NOTE_CHARS = 4000
MAX_INT = 2**63 - 1
"""The largest integer any field takes (and ``-MAX_INT - 1`` the smallest): SQL BIGINT holds no more."""

# ----------------------------------------------------------------------------- error codes

BAD_JSON = "bad_json"                   # the frame is not a JSON object
BAD_FRAME = "bad_frame"                 # a binary frame
TOO_LARGE = "too_large"                 # above MAX_FRAME_BYTES
BAD_REQUEST = "bad_request"             # a field is missing, of the wrong type, or out of range
UNKNOWN_TYPE = "unknown_type"           # no such request
NOT_LOGGED_IN = "not_logged_in"         # anything but login/ping before login
ALREADY_LOGGED_IN = "already_logged_in"
AUTH_FAILED = "auth_failed"             # unknown agent or wrong PIN (never says which)
RATE_LIMITED = "rate_limited"           # too many failed logins; retry_after seconds
UNSUPPORTED_PROTOCOL = "unsupported_protocol"
FORBIDDEN = "forbidden"                 # not yours (another agent's call or state), or not your role
NOT_AVAILABLE = "not_available"         # this server does not offer the feature (yet)
REFUSED = "refused"                     # valid, but not now (e.g. ready while on a call; rule of a disposition)
NOT_FOUND = "not_found"
INTERNAL = "internal"                   # the server failed; the connection stays

ERROR_CODES = (BAD_JSON, BAD_FRAME, TOO_LARGE, BAD_REQUEST, UNKNOWN_TYPE, NOT_LOGGED_IN, ALREADY_LOGGED_IN, AUTH_FAILED,
               RATE_LIMITED, UNSUPPORTED_PROTOCOL, FORBIDDEN, NOT_AVAILABLE, REFUSED, NOT_FOUND, INTERNAL)

# WebSocket close codes the server uses (besides 1000 normal, 1001 going away, 1009 too big).
CLOSE_POLICY = 1008          # abuse: too many bad frames, login timeout, too many failed logins
CLOSE_REPLACED = 4001        # the same agent logged in from another console
CLOSE_SLOW_CONSUMER = 4002   # the console did not read its events fast enough

# ----------------------------------------------------------------------------- requests

_AGENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}\Z")  # \Z: "$" would let a trailing newline through
_SIP_URI = re.compile(r"sips?:[^\s@]+@[^\s]+\Z")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL (PostgreSQL refuses it in text) and unpaired surrogates (JSON lets ``\\ud800`` in; UTF-8 has no form for it)."""


@dataclass(frozen=True, slots=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = False
    max_chars: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    fields: dict[str, Field] | None = None
    """For an object: the spec of its fields, checked like the request's own."""


def _f(kind, required=False, max_chars=None, minimum=None, maximum=None, fields=None) -> Field:
    return Field(kind, required, max_chars, minimum, maximum, fields)


_CALL_ID = _f(str, max_chars=128)
_OWN_AGENT = _f(str, max_chars=32)

CALLBACK_FIELDS: dict[str, Field] = {
    "number": _f(str, True, 64), "due_from": _f(str, True, 40), "due_until": _f(str, max_chars=40),
    "owner": _f(str, max_chars=8), "notes": _f(str, max_chars=MAX_NOTE_CHARS),
}

REQUESTS: dict[str, dict[str, Field]] = {
    "login": {"agent_id": _f(str, True, 32), "pin": _f(str, True, 64), "protocol": _f(int, True, minimum=1),
              "client": _f(str, max_chars=100), "phone": _f(str, max_chars=200),
              "not_ready_reason": _f(str, max_chars=64), "role": _f(str, max_chars=16)},
    "logout": {"agent_id": _OWN_AGENT},
    "ping": {},
    "agent.snapshot": {"agent_id": _OWN_AGENT},
    "agents.list": {},
    "state.ready": {"agent_id": _OWN_AGENT},
    "state.not_ready": {"reason": _f(str, True, 64), "agent_id": _OWN_AGENT},
    "state.end_wrap_up": {"agent_id": _OWN_AGENT},
    "state.extend_wrap_up": {"agent_id": _OWN_AGENT},
    "call.hangup": {"call_id": _CALL_ID, "agent_id": _OWN_AGENT},
    "call.hold": {"call_id": _CALL_ID, "agent_id": _OWN_AGENT},
    "call.unhold": {"call_id": _CALL_ID, "agent_id": _OWN_AGENT},
    "call.transfer": {"target": _f(str, True, 80), "call_id": _CALL_ID, "agent_id": _OWN_AGENT},
    "call.notes": {"call_id": _f(str, True, 128), "text": _f(str, True, MAX_NOTE_CHARS), "agent_id": _OWN_AGENT},
    "call.dial": {"number": _f(str, False, 64), "callback_id": _f(int, minimum=1), "agent_id": _OWN_AGENT},
    "disposition.save": {"call_id": _f(str, True, 128), "code": _f(str, True, 32), "notes": _f(str, max_chars=MAX_NOTE_CHARS),
                         "callback": _f(dict, fields=CALLBACK_FIELDS), "end_wrap_up": _f(bool), "agent_id": _OWN_AGENT},
    "customer.search": {"query": _f(str, True, 100), "limit": _f(int, minimum=1, maximum=50)},
    "customer.get": {"customer_id": _f(int, True, minimum=1)},
    "customer.link": {"call_id": _f(str, True, 128), "customer_id": _f(int, True, minimum=1), "agent_id": _OWN_AGENT},
    "customer.create": {"name": _f(str, True, 200), "number": _f(str, True, 64), "company": _f(str, max_chars=200),
                        "email": _f(str, max_chars=254), "language": _f(str, max_chars=16), "call_id": _CALL_ID,
                        "agent_id": _OWN_AGENT},
    "contacts.recent": {"limit": _f(int, minimum=1, maximum=100), "agent_id": _OWN_AGENT},
    "callbacks.list": {"limit": _f(int, minimum=1, maximum=200), "agent_id": _OWN_AGENT},
    # supervisors only (the dashboard)
    "supervisor.snapshot": {},
    "supervisor.trends": {"queue": _f(str, max_chars=32)},
    "queue.detail": {"queue": _f(str, True, 32), "limit": _f(int, minimum=1, maximum=500)},
    "agent.force_state": {"agent_id": _f(str, True, 32), "state": _f(str, True, 16), "reason": _f(str, max_chars=64)},
    "agent.set_skills": {"agent_id": _f(str, True, 32), "skills": _f(dict, True)},
}

PUBLIC_REQUESTS = frozenset({"login", "ping"})
"""Allowed before login."""
SUPERVISOR_ONLY_REQUESTS = frozenset({"agents.list", "supervisor.snapshot", "supervisor.trends", "queue.detail",
                                      "agent.force_state", "agent.set_skills"})
"""Refused to agents."""
SUPERVISOR_REQUESTS = frozenset({"logout", "ping", "agent.snapshot", "customer.search", "customer.get"}) \
    | SUPERVISOR_ONLY_REQUESTS
"""What a supervisor may send; everything else is agent-only (supervisors take no calls)."""
FORCE_STATES = ("ready", "not_ready", "logged_out")
"""``agent.force_state`` targets."""

# ----------------------------------------------------------------------------- events

EVENTS = (
    "hello", "agent.state", "call.offered", "call.pop", "call.offer_cancelled", "call.connected", "call.ended",
    "call.held", "call.resumed", "call.transferred", "call.blocked", "session.closed", "agent.wrap_up",
    "disposition.owed", "agent.phone",
    "supervisor.update",
)


class ProtocolError(CtiError):
    """A request the server answers with an error; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def check_fields(values: dict[str, Any], spec: dict[str, Field], where: str) -> None:
    """Raise ``bad_request`` unless every field of ``spec`` is present (when required) and well-formed.

    Handlers then use the values as they are: whatever reaches them fits the database and the
    call flow (types, ranges, lengths, storable text), so a malformed request is answered here,
    naming its field, and never fails deeper down as ``internal``.
    """
    for name, field in spec.items():
        value = values.get(name)
        if value is None:
            if field.required:
                raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' is required")
            continue
        kinds = field.kind if isinstance(field.kind, tuple) else (field.kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' must be {_kind_name(kinds)}")
        if not isinstance(value, kinds):
            raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' must be {_kind_name(kinds)}")
        if not _storable(value):
            raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' contains NUL or an unpaired surrogate")
        if field.max_chars is not None and isinstance(value, str) and len(value) > field.max_chars:
            raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' is longer than {field.max_chars} characters")
        if isinstance(value, str) and field.required and not value.strip():
            raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' is empty")
        if isinstance(value, int) and not isinstance(value, bool):
            minimum = -MAX_INT - 1 if field.minimum is None else field.minimum
            if value < minimum:
                raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' must be at least {minimum}")
            maximum = MAX_INT if field.maximum is None else field.maximum
            if value > maximum:
                raise ProtocolError(BAD_REQUEST, f"{where}: '{name}' must be at most {maximum}")
        if field.fields is not None and isinstance(value, dict):
            check_fields(value, field.fields, f"{where} {name}")


def _storable(value: Any) -> bool:
    """No string anywhere in ``value`` (an object's keys too) has a character no database can store.

    Walked with a stack, not recursion: JSON nested close to the parser's limit must not raise here.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item) is not None:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_frame(raw: str | bytes) -> dict[str, Any]:
    """A text frame as a request dict with a valid ``type`` and ``id``; raises :class:`ProtocolError`.

    The error carries ``id`` in ``extra`` when the frame had a usable one, so the reply can
    name the request it answers.
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raise ProtocolError(BAD_FRAME, "binary frames are not part of the protocol; send JSON text frames")
    if len(raw) > MAX_FRAME_BYTES or len(raw.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise ProtocolError(TOO_LARGE, f"a request may be at most {MAX_FRAME_BYTES} bytes")
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_JSON, "the frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_JSON, "a request must be a JSON object")
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)) or (
        isinstance(request_id, str) and not (0 < len(request_id) <= MAX_ID_CHARS)
    ):
        raise ProtocolError(BAD_REQUEST, f"every request needs an 'id': a string of 1-{MAX_ID_CHARS} characters or an integer")
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError(BAD_REQUEST, "every request needs a 'type'", id=request_id)
    if kind not in REQUESTS:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown request type {kind[:40]!r}", id=request_id)
    try:
        check_fields(message, REQUESTS[kind], kind)
    except ProtocolError as exc:
        exc.extra["id"] = request_id
        raise
    return message


def valid_agent_id(value: str) -> bool:
    return bool(_AGENT_ID.match(value))


def valid_sip_uri(value: str) -> bool:
    return bool(_SIP_URI.match(value))


def parse_time(value: str, field: str) -> dt.datetime:
    """An ISO 8601 time with its UTC offset (a callback time without one would be ambiguous)."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ProtocolError(BAD_REQUEST, f"{field}: {value[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ProtocolError(BAD_REQUEST, f"{field}: give the time with its UTC offset, e.g. 2026-11-24T15:00:00+08:00")
    return moment


# ----------------------------------------------------------------------------- envelopes


def result(request_id: Any, request: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "result", "id": request_id, "request": request, "data": data or {}}


def error(request_id: Any, request: str | None, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "id": request_id, "request": request, "code": code, "message": message, **extra}


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
