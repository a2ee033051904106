"""One console connection, and the listening address and TLS the CTI server serves them on."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection

from callcenter.cti import protocol as p
from callcenter.cti.errors import CtiServerError

__all__ = ["Session", "parse_listen", "server_ssl_context"]

log = logging.getLogger("callcenter.cti")


def parse_listen(url: str) -> tuple[str, str, int]:
    """``ws://host:port`` or ``wss://host:port`` as (scheme, host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise CtiServerError(f"cti.listen = {url!r}: write it as ws://HOST:PORT (or wss:// with a certificate)")
    try:
        port = parts.port if parts.port is not None else (443 if parts.scheme == "wss" else 80)
    except ValueError:
        raise CtiServerError(f"cti.listen = {url!r}: the port is not a number from 0 to 65535") from None
    return parts.scheme, parts.hostname, port


def server_ssl_context(certificate: str | None, private_key: str | None) -> ssl.SSLContext | None:
    if not certificate:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate, private_key or None)
    except (OSError, ssl.SSLError) as exc:
        raise CtiServerError(f"cti.certificate/cti.private_key: cannot load {certificate!r}: {exc}") from None
    return context


@dataclass(eq=False)
class Session:
    """One console connection."""

    ws: ServerConnection
    address: str
    outbox: asyncio.Queue
    number: int
    agent_id: str | None = None
    role: str | None = None
    client: str = ""
    failed_logins: int = 0
    closing: bool = False
    sender: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self._seq = itertools.count(1)
        self.errors: list[float] = []

    @property
    def who(self) -> str:
        return f"{self.role or 'console'} {self.agent_id or '(not logged in)'} from {self.address}"

    def push(self, message: dict[str, Any]) -> bool:
        """Queue a frame; a console that lets its queue fill up is disconnected (it will resync on reconnect)."""
        if self.closing:
            return False
        try:
            self.outbox.put_nowait(message)
            return True
        except asyncio.QueueFull:
            log.warning("CTI %s does not read its events: disconnecting it", self.who)
            self.close(p.CLOSE_SLOW_CONSUMER, "too slow")
            return False

    def event(self, message: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
        return {**message, "id": f"e{next(self._seq)}", "at": at.isoformat()}

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        # Frames already queued go out first; then the sender closes the connection.
        try:
            self.outbox.put_nowait(("close", code, reason))
        except asyncio.QueueFull:
            asyncio.get_running_loop().create_task(self.ws.close(code, reason))
