"""CTI clients: :class:`CtiClient` (one connection, request/reply and pushed events) and
:class:`AgentLink` (log in, stay logged in: reconnects with backoff and logs in again).

Both run on the caller's asyncio loop; callbacks are called on that loop, in the order the
frames arrived.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import math
import logging
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from callcenter import __version__
from callcenter.cti import protocol as p
from callcenter.cti.errors import CtiAuthError, CtiConnectionError, CtiRequestError

log = logging.getLogger("callcenter.cti.client")

__all__ = ["CtiClient", "AgentLink", "client_ssl_context", "default_url"]

EventHandler = Callable[[dict[str, Any]], Any]


def client_ssl_context(url: str, ca_file: str | None = None) -> ssl.SSLContext | None:
    """For ``wss://``: the system's trusted CAs, or only ``ca_file`` (a private CA or a self-signed cert)."""
    if urlsplit(url).scheme != "wss":
        return None
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def default_url(settings: Any) -> str:
    """Where a console on the server's own box connects: ``cti.listen``, wss when a certificate is set."""
    parts = urlsplit(settings.cti.listen)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "wss" if settings.cti.certificate or parts.scheme == "wss" else "ws"
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme}://{host}{port}"


class CtiClient:
    """One CTI connection. ``await connect()``, ``await login(...)``, then ``await request(type, **fields)``.

    Pushed events go to ``on_event(message)``; ``on_close(reason)`` is called once when the
    connection ends for any reason.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        on_event: EventHandler | None = None,
        on_close: Callable[[str], Any] | None = None,
        open_timeout: float = 5.0,
        request_timeout: float = 15.0,
    ) -> None:
        self.url = url
        self.ssl_context = ssl_context if ssl_context is not None else client_ssl_context(url)
        self.on_event = on_event
        self.on_close = on_close
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        self.hello: dict[str, Any] | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._hello: asyncio.Future | None = None
        self._closed = asyncio.Event()
        self.close_reason = ""

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._closed.is_set()

    async def connect(self) -> dict[str, Any]:
        """Open the connection and wait for the server's ``hello``; returns it."""
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        try:
            self._ws = await connect(
                self.url, ssl=self.ssl_context, open_timeout=self.open_timeout, max_size=p.HARD_FRAME_BYTES * 8,
                compression=None, proxy=None, user_agent_header=f"callcenter-cti/{__version__}",
                ping_interval=20, ping_timeout=20, close_timeout=3,
            )
        except (OSError, asyncio.TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise CtiConnectionError(f"cannot reach the CTI server at {self.url}: {exc}") from None
        self._reader = loop.create_task(self._read())
        try:
            self.hello = await asyncio.wait_for(asyncio.shield(self._hello), self.open_timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise CtiConnectionError(f"{self.url} did not greet (is it a CTI server?)") from None
        if p.PROTOCOL_VERSION not in self.hello.get("versions", [self.hello.get("protocol")]):
            await self.close()
            raise CtiConnectionError(f"{self.url} speaks CTI protocol {self.hello.get('versions')}, "
                                     f"this console speaks {p.PROTOCOL_VERSION}")
        return self.hello

    async def login(self, agent_id: str, pin: str, *, client: str | None = None, phone: str | None = None,
                    not_ready_reason: str | None = None, role: str | None = None) -> dict[str, Any]:
        """``role``: refuse the login unless the account has this role (the supervisor dashboard asks for it)."""
        fields: dict[str, Any] = {"agent_id": agent_id, "pin": pin, "protocol": p.PROTOCOL_VERSION,
                                  "client": client or f"callcenter-agent/{__version__}"}
        if phone:
            fields["phone"] = phone
        if not_ready_reason:
            fields["not_ready_reason"] = not_ready_reason
        if role:
            fields["role"] = role
        try:
            return await self.request("login", **fields)
        except CtiRequestError as exc:
            if exc.code in (p.AUTH_FAILED, p.RATE_LIMITED, p.UNSUPPORTED_PROTOCOL) or (role and exc.code == p.FORBIDDEN):
                raise CtiAuthError(exc.code, exc.message, exc.data) from None
            raise

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; returns the reply's ``data``; raises :class:`CtiRequestError`."""
        if not self.connected:
            raise CtiConnectionError("not connected to the CTI server")
        request_id = str(next(self._ids))
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(p.encode({"type": kind, "id": request_id, **fields}))
            return await asyncio.wait_for(future, self.request_timeout)
        except ConnectionClosed:
            raise CtiConnectionError("the connection to the CTI server was lost") from None
        except asyncio.TimeoutError:
            raise CtiConnectionError(f"no answer to {kind} within {self.request_timeout:g} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame as is (tests and diagnostics)."""
        if not self.connected:
            raise CtiConnectionError("not connected to the CTI server")
        await self._ws.send(frame)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return self.close_reason

    async def _read(self) -> None:
        reason = "closed"
        try:
            async for raw in self._ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.warning("CTI server sent a frame that is not JSON; ignored")
                    continue
                if not isinstance(message, dict):
                    continue
                await self._dispatch(message)
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd and exc.rcvd.reason else "connection lost"
        except Exception:
            log.exception("CTI client reader failed")
            reason = "client error"
        finally:
            if self._ws is not None and self._ws.close_code is not None:
                rcvd = getattr(self._ws, "close_reason", "") or ""
                reason = rcvd or reason
            self.close_reason = reason
            self._closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CtiConnectionError(f"the connection to the CTI server was lost ({reason})"))
            if self._hello is not None and not self._hello.done():
                self._hello.set_exception(CtiConnectionError(f"the CTI server closed the connection ({reason})"))
            if self.on_close is not None:
                outcome = self.on_close(reason)
                if inspect.isawaitable(outcome):
                    await outcome

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("result", "error"):
            future = self._pending.get(str(message.get("id")))
            if future is not None and not future.done():
                if kind == "result":
                    future.set_result(message.get("data") or {})
                else:
                    extra = {k: v for k, v in message.items() if k not in ("type", "id", "request", "code", "message")}
                    future.set_exception(CtiRequestError(str(message.get("code")), str(message.get("message")), extra))
                return
        if kind == "hello" and self._hello is not None and not self._hello.done():
            self._hello.set_result(message)
            return
        if self.on_event is not None:
            outcome = self.on_event(message)
            if inspect.isawaitable(outcome):
                await outcome


class AgentLink:
    """Keeps an agent logged in over CTI: connects, logs in, and after a drop reconnects and logs in again.

    ``on_login(data)`` gets every login reply (with the agent's current state and call: the
    snapshot), ``on_event(message)`` every pushed event, ``on_status(status, detail)`` the link's
    ups and downs: ``connecting``, ``up``, ``down``, ``failed`` (wrong PIN or locked: no retry).
    """

    BACKOFF = (0.3, 1.0, 2.0, 4.0, 8.0)

    def __init__(
        self,
        url: str,
        agent_id: str,
        pin: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        on_event: EventHandler | None = None,
        on_login: Callable[[dict[str, Any]], Any] | None = None,
        on_status: Callable[[str, str], Any] | None = None,
        not_ready_reason: str | None = None,
        phone: str | None = None,
        client: str | None = None,
        backoff: tuple[float, ...] = BACKOFF,
        role: str | None = None,
    ) -> None:
        self.role = role
        self.url = url
        self.agent_id = agent_id
        self._pin = pin
        self.ssl_context = ssl_context
        self.on_event = on_event
        self.on_login = on_login
        self.on_status = on_status
        self.not_ready_reason = not_ready_reason
        self.phone = phone
        self.client_name = client
        self.backoff = backoff
        self.client: CtiClient | None = None
        self.login_data: dict[str, Any] | None = None
        self.logins = 0
        self._stopping = False

    @property
    def up(self) -> bool:
        return self.client is not None and self.client.connected and self.login_data is not None

    def _status(self, status: str, detail: str = "") -> None:
        if self.on_status is not None:
            self.on_status(status, detail)

    async def run(self) -> None:
        """Until :meth:`stop` (or a refused login): connect, log in, wait for a drop, repeat."""
        attempt = 0
        while not self._stopping:
            self._status("connecting", self.url)
            held: list[dict[str, Any]] = []  # events that overtake the login reply wait for it

            def deliver(message: dict[str, Any], held: list[dict[str, Any]] = held) -> Any:
                if self.login_data is None or held:
                    held.append(message)
                    return None
                return self.on_event(message) if self.on_event is not None else None

            client = CtiClient(self.url, ssl_context=self.ssl_context, on_event=deliver)
            try:
                await client.connect()
                data = await client.login(self.agent_id, self._pin, client=self.client_name, phone=self.phone,
                                          not_ready_reason=self.not_ready_reason if self.logins == 0 else None,
                                          role=self.role)
            except CtiAuthError as exc:
                await client.close()
                if exc.code == p.RATE_LIMITED:
                    wait = float(exc.data.get("retry_after") or 30)
                    await self._count_down(wait, "too many failed logins for this agent or address")
                    continue
                self._status("failed", exc.message)
                return
            except (CtiConnectionError, CtiRequestError) as exc:
                await client.close()
                detail = str(exc)
                if self.logins == 0 and isinstance(exc, CtiConnectionError):
                    detail = (f"no CTI server answers at {self.url}: start it with 'callcenter serve' "
                              "(or give the right address with --server); retrying")
                self._status("down", detail)
                await asyncio.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
                attempt += 1
                continue
            attempt = 0
            self.client = client
            self.login_data = data
            self.logins += 1
            if self.on_login is not None:
                self.on_login(data)
            while held:  # in the order they came, after the state they apply to
                message = held.pop(0)
                if self.on_event is not None:
                    outcome = self.on_event(message)
                    if inspect.isawaitable(outcome):
                        await outcome
            self._status("up", data.get("server", ""))
            reason = await client.wait_closed()
            self.login_data = None
            if self._stopping:
                break
            if reason in ("logged in elsewhere", "logged out"):
                self._status("failed", "logged in from another console" if reason == "logged in elsewhere" else reason)
                return
            self._status("down", reason)
            await asyncio.sleep(self.backoff[0])
        self._status("down", "stopped")

    async def _count_down(self, wait: float, why: str) -> None:
        """Wait, telling the console each second how long is left (a lockout that never moves looks stuck)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while not self._stopping:
            left = end - loop.time()
            if left <= 0:
                return
            self._status("down", f"{why}; trying again in {math.ceil(left)} s")
            await asyncio.sleep(min(1.0, left))

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        if not self.up:
            raise CtiConnectionError("the CTI link is down; reconnecting")
        return await self.client.request(kind, **fields)

    async def stop(self) -> None:
        self._stopping = True
        if self.client is not None:
            await self.client.close()

    async def drop(self) -> None:
        """Close the current connection as if the network had dropped it (the link reconnects)."""
        if self.client is not None:
            await self.client.close()
