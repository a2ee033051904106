"""Agent phones registered at the SIP front (pure: no I/O, no clock).

Phones REGISTER at the front with digest authentication; Kamailio keeps the bindings in memory
(usrloc) and pushes every change to the control process over evapi (TCP on 127.0.0.1, netstrings).
This module holds what both sides agree on without running anything:

- :class:`PhonesPlan`, the phone part of :class:`~callcenter.front.plan.FrontPlan`;
- the credentials: :func:`ha1`, :func:`check_credentials` and :func:`credentials_table` (the
  db_text file Kamailio's htable loads at start);
- the events: :func:`parse_phone_event` reads one evapi message into a :class:`PhoneEvent`;
  :class:`NetstringDecoder` splits the evapi stream into messages;
- the truth: :func:`parse_ul_aors` and :func:`parse_ul_bindings` read the ``ul.dump brief`` and
  ``ul.lookup`` RPC results into :class:`Binding` lists.

Values that come from the network (user, contact, user agent, received address) travel
hex-encoded in events, so a hostile value cannot add fields; they are decoded here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "CREDENTIALS_TABLE", "EVENT_KINDS", "EVENT_TAG", "Binding", "NetstringDecoder", "PhoneEvent", "PhonesPlan",
    "check_credentials", "credentials_table", "encode_netstring", "ha1", "parse_phone_event", "parse_ul_aors",
    "parse_ul_bindings",
]

CREDENTIALS_TABLE = "phones.htable"
"""db_text table (a file in the run directory) the credentials htable is loaded from at start."""
EVENT_TAG = "ccfront"
"""evapi tag of the clients that sent the token: the only ones events are sent to."""
EVENT_KINDS = ("registered", "unregistered", "expired", "blocked")
MAX_EVENT = 16384
"""Longest evapi message accepted (bytes): the script's events are far shorter."""

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
"""Usernames a phone may authenticate as: no ':' or '\\' (the db_text file), no '%' (an escaped To
user would name another AOR than the one authenticated), no '@' (digest username ``user@domain``)."""
_HA1 = re.compile(r"[0-9a-f]{32}")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True)
class PhonesPlan:
    """Agent phones registering at the front: who may, how long bindings last, how they are watched."""

    domain: str
    """Digest realm and the AOR domain (``sip:USER@domain``); any host in the To URI is accepted."""
    event_port: int
    """TCP port evapi listens on (127.0.0.1 only)."""
    event_token: str = ""
    """Secret a client sends first to receive events; empty: :class:`KamailioFront` draws one at start."""
    allow: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    """Networks phones may register from (the trunk allow-list does not apply to REGISTER)."""
    min_expires: int = 60
    max_expires: int = 3600
    max_contacts: int = 3
    keepalive_interval: int = 20
    """Seconds between the OPTIONS sent to every registered contact."""
    keepalive_timeout: int = 60
    """Seconds without an answer to those OPTIONS after which a binding is dropped (about 10 s more
    pass in usrloc before it is gone and the ``expired`` event is sent)."""
    auth_failures: int = 5
    """Failed authentications for one username within ``auth_block_seconds`` before it is blocked."""
    auth_block_seconds: int = 60
    source_auth_failures: int = 0
    """The same per source address; 0: ``auth_failures``. Raise it when many phones share one NAT
    address: one agent mistyping a password would otherwise lock out the whole office."""

    def __post_init__(self) -> None:
        if not _DOMAIN.fullmatch(self.domain):
            raise ValueError(f"phone domain {self.domain!r} must be a host name (letters, digits, '.', '-')")
        if not 1 <= self.event_port <= 65535:
            raise ValueError(f"event_port {self.event_port} is not a TCP port")
        if self.event_token and not _TOKEN.fullmatch(self.event_token):
            raise ValueError("event_token must be 16-128 letters, digits, '_' or '-'")
        if not self.allow:
            raise ValueError("phones.allow is empty: no phone could register")
        for item in self.allow:
            ipaddress.ip_network(item, strict=False)
        if not 1 <= self.min_expires <= self.max_expires <= 86400:
            raise ValueError("expires bounds must satisfy 1 <= min_expires <= max_expires <= 86400")
        if not 1 <= self.max_contacts <= 20:
            raise ValueError("max_contacts must be 1-20")
        if not 1 <= self.keepalive_interval <= 600:
            raise ValueError("keepalive_interval must be 1-600 s")
        if not self.keepalive_interval < self.keepalive_timeout <= 86400:
            raise ValueError("keepalive_timeout must be longer than keepalive_interval (a few intervals)")
        if not 1 <= self.auth_failures <= 1000 or not 0 <= self.source_auth_failures <= 100000:
            raise ValueError("auth_failures must be 1-1000 (source_auth_failures 0-100000)")
        if not 1 <= self.auth_block_seconds <= 86400:
            raise ValueError("auth_block_seconds must be 1-86400")

    @property
    def source_limit(self) -> int:
        return self.source_auth_failures or self.auth_failures

    @property
    def keepalive_from(self) -> str:
        """From URI of the keep-alive OPTIONS (nathelper ``sipping_from``)."""
        return f"sip:keepalive@{self.domain}"


# ------------------------------------------------------------------------------- credentials


def ha1(user: str, realm: str, password: str) -> str:
    """Digest HA1: md5(user:realm:password), hex; what the front stores instead of passwords."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def check_credentials(credentials: Mapping[str, str]) -> dict[str, str]:
    """``credentials`` (user -> HA1) validated, HA1 lower-cased; ValueError names the first bad entry."""
    checked: dict[str, str] = {}
    for user, digest in credentials.items():
        if not isinstance(user, str) or not _USER.fullmatch(user):
            raise ValueError(f"phone username {user!r}: 1-64 letters, digits, '_', '.', '+', '-'")
        value = digest.lower() if isinstance(digest, str) else ""
        if not _HA1.fullmatch(value):
            raise ValueError(f"phone {user}: the HA1 must be 32 hex digits (md5 of user:realm:password)")
        checked[user] = value
    return checked


def credentials_table(credentials: Mapping[str, str]) -> str:
    """The db_text file htable loads ``ccphones`` from: one ``user:0:0:ha1`` row per phone."""
    rows = ["key_name(str) key_type(int) value_type(int) key_value(str)"]
    rows += [f"{user}:0:0:{digest}" for user, digest in sorted(check_credentials(credentials).items())]
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class PhoneEvent:
    """A change in the location table, as the front reported it.

    ``kind``: ``registered`` (a binding added or refreshed), ``unregistered`` (removed by its phone),
    ``expired`` (not refreshed in time, or its phone stopped answering keep-alives), ``blocked``
    (a username or source address blocked after failed authentications; ``received`` is the source
    address, ``expires`` the seconds the block lasts).
    """

    kind: str
    user: str
    contact: str
    received: str
    """``ip:port`` the binding is reached at (where its REGISTER came from)."""
    expires: int
    user_agent: str


@dataclass(frozen=True)
class Binding:
    """One registered contact of a user, from the location table."""

    user: str
    contact: str
    received: str
    expires: int | None
    """Seconds left; None for a permanent binding, 0 for one expired but not yet removed."""
    user_agent: str
    call_id: str = ""
    last_keepalive: int = 0
    """Unix time of the last keep-alive answer (or registration)."""


_EVENT_FIELD = re.compile(r"^([a-z_]+)=([0-9a-f]*|-?\d+)$")
_HEX_FIELDS = {"user", "contact", "received", "ua"}


def _unhex(text: str) -> str:
    try:
        return bytes.fromhex(text).decode("utf-8", "replace")
    except ValueError:
        return ""


_NO_USER_AGENT = "n/a"
"""What the registrar stores for a REGISTER without User-Agent."""


def _user_agent(value: str) -> str:
    return "" if value == _NO_USER_AGENT else value


def received_address(value: str) -> str:
    """``ip:port`` from a received URI (``sip:1.2.3.4:5060;transport=udp``); other text as it is."""
    if value.startswith("sip:"):
        return value[4:].split(";", 1)[0]
    return value


def parse_phone_event(message: bytes | str) -> PhoneEvent | None:
    """The event in one evapi message (``kind key=value ...``), or None if it is not one."""
    if isinstance(message, bytes):
        message = message.decode("ascii", "replace")
    kind, _, rest = message.partition(" ")
    if kind not in EVENT_KINDS:
        return None
    fields: dict[str, str] = {}
    for item in rest.split():
        match = _EVENT_FIELD.match(item)
        if not match:
            return None
        key, value = match.groups()
        fields[key] = _unhex(value) if key in _HEX_FIELDS else value
    if "user" not in fields or not re.fullmatch(r"-?\d+", fields.get("expires", "")):
        return None
    return PhoneEvent(kind=kind, user=fields["user"], contact=fields.get("contact", ""),
                      received=received_address(fields.get("received", "")), expires=max(int(fields["expires"]), 0),
                      user_agent=_user_agent(fields.get("ua", "")))


def encode_netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


class NetstringDecoder:
    """Splits a byte stream into netstrings (``len:data,``); ValueError when the stream is broken."""

    def __init__(self, limit: int = MAX_EVENT) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while True:
            start = 0
            while start < len(self._buffer) and self._buffer[start] in b" \t\r\n":
                start += 1
            colon = self._buffer.find(b":", start)
            if colon < 0:
                if len(self._buffer) - start > 10:
                    raise ValueError("netstring length too long")
                del self._buffer[:start]
                return out
            digits = bytes(self._buffer[start:colon])
            if not digits.isdigit() or len(digits) > 10:
                raise ValueError(f"bad netstring length {digits[:20]!r}")
            size = int(digits)
            if size > self.limit:
                raise ValueError(f"netstring of {size} bytes is over the limit")
            end = colon + 1 + size
            if len(self._buffer) <= end:
                return out
            if self._buffer[end:end + 1] != b",":
                raise ValueError("netstring not terminated by ','")
            out.append(bytes(self._buffer[colon + 1:end]))
            del self._buffer[:end + 1]


# ------------------------------------------------------------------------- location table


def _walk(node: object, key: str) -> Iterable[object]:
    """Every value under ``key`` in nested dicts and lists (Kamailio's RPC structs nest variously)."""
    if isinstance(node, dict):
        for k, value in node.items():
            if k == key:
                yield value
            else:
                yield from _walk(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, key)


def parse_ul_aors(result: object) -> list[str]:
    """The AORs in a ``ul.dump brief`` result."""
    return [aor for aor in _walk(result, "AoR") if isinstance(aor, str)]


def _field(contact: dict, key: str) -> str:
    value = contact.get(key, "")
    return "" if value in (None, "[not set]") else str(value)


def parse_ul_bindings(user: str, result: object) -> list[Binding]:
    """The bindings in a ``ul.lookup location USER`` result (deleted ones left out)."""
    bindings: list[Binding] = []
    for contact in _walk(result, "Contact"):
        if not isinstance(contact, dict) or "Address" not in contact:
            continue
        raw = contact.get("Expires")
        if raw == "deleted":
            continue
        if raw == "permanent":
            expires: int | None = None
        elif raw == "expired":
            expires = 0
        else:
            try:
                expires = max(int(raw), 0)
            except (TypeError, ValueError):
                expires = 0
        try:
            keepalive = int(contact.get("Last-Keepalive") or 0)
        except (TypeError, ValueError):
            keepalive = 0
        bindings.append(Binding(user=user, contact=_field(contact, "Address"),
                                received=received_address(_field(contact, "Received")), expires=expires,
                                user_agent=_user_agent(_field(contact, "User-Agent")),
                                call_id=_field(contact, "Call-ID"),
                                last_keepalive=keepalive))
    return bindings
