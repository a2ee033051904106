"""The caller's INVITE as text: the few fields and headers the control process gets, read without ever
raising (the stack has parsed it already; this only picks parts out)."""

from __future__ import annotations

import json
import logging

from callcenter.core import telephony_protocol as p

log = logging.getLogger("callcenter.telephony.worker")

__all__ = ["COMPACT", "HEADERS_KEPT", "MAX_X_HEADERS", "from_uri", "guess_id", "parse_invite"]

HEADERS_KEPT = (
    "user-agent", "p-asserted-identity", "p-preferred-identity", "remote-party-id", "diversion",
    "history-info", "referred-by", "subject", "priority", "organization", "call-info", "alert-info",
)
MAX_X_HEADERS = 6
COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "v": "via", "s": "subject"}


def guess_id(line: bytes) -> str:
    try:
        data = json.loads(line)
        value = data.get("id", "") if isinstance(data, dict) else ""
        return p.clean_text(value, p.SHORT) if isinstance(value, str) else ""
    except Exception:  # noqa: BLE001
        return ""


def parse_invite(raw: str) -> dict:
    """Request-URI user, From, To, Call-ID and a subset of headers of a raw INVITE; never raises."""
    out: dict = {"headers": {}}
    try:
        head = str(raw)[:16384].split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
        lines = head.replace("\r\n", "\n").split("\n")
        parts = lines[0].split(" ")
        if len(parts) >= 2:
            out["ruri_user"] = p.parse_name_addr("<" + parts[1] + ">")[1]
        unfolded: list[str] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and unfolded:
                unfolded[-1] += " " + line.strip()
            else:
                unfolded.append(line)
        xcount = 0
        for line in unfolded[:200]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            key = COMPACT.get(key, key)
            value = value.strip()
            if key in ("from", "to", "call-id") and key not in out:
                out[key] = value
            elif key in HEADERS_KEPT or (key.startswith("x-") and xcount < MAX_X_HEADERS):
                if key.startswith("x-"):
                    xcount += 1
                if len(out["headers"]) < p.MAX_HEADERS:
                    out["headers"][p.clean_text(name.strip(), p.SHORT)] = p.clean_text(value, p.TEXT)
    except Exception:  # noqa: BLE001 - network data never breaks the worker
        log.warning("could not read the INVITE's headers")
    return out


def from_uri(display: str, user: str, address: str, port: int) -> str:
    """A From value for an outgoing leg: the caller's name and number, safely quoted/escaped."""
    user = "".join(ch for ch in user if ch.isascii() and (ch.isalnum() or ch in "+*#._-"))[:32]
    display = "".join(ch for ch in p.clean_text(display, 64) if ch not in '"\\')
    if not user and not display:
        return ""
    uri = f"sip:{user or 'anonymous'}@{address}:{port}"
    return f'"{display}" <{uri}>' if display else f"<{uri}>"
