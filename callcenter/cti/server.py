"""The CTI server: consoles log in over WebSocket, get their events pushed and send requests.

It is the contact center's :class:`~callcenter.core.ports.Notifier`: the call flow calls
:meth:`CtiServer.to_agent` and :meth:`CtiServer.to_supervisors` on the event loop, and those only
queue frames (each connection has its own sender task), so a slow or dead console never holds the
loop up. Requests are carried out on the same loop by calling the :class:`ContactCenter`'s
methods; customer look-ups (the screen pop, search, history) run in worker threads.

Security: agents log in with id + PIN (scrypt; checked in a thread), failed PINs are throttled per
agent id and per address (:mod:`callcenter.cti.auth`) and logged without the PIN; an agent can
only see and act on its own state and calls, anything else is refused and logged; supervisors
get the supervisors' feed and read-only requests. TLS (``wss://``) when ``cti.certificate`` is set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from callcenter import __version__
from callcenter.config import Settings
from callcenter.cti import protocol as p
from callcenter.logsafe import log_safe
from callcenter.cti.auth import DUMMY_PIN_HASH, LoginLimiter, LoginPolicy, check_pin
from callcenter.cti.errors import CtiServerError
from callcenter.cti.supervision import SupervisorFeed
from screenpop.numbers import normalize
from screenpop.pop import CallContext
from screenpop.wire import to_wire

log = logging.getLogger("callcenter.cti")

__all__ = ["CtiServer", "CtiServerError", "CustomerDirectory", "parse_listen", "server_ssl_context"]


class CustomerDirectory(Protocol):
    """The customer database as the CTI server uses it (``callcenter.db.customers.SqlCustomerDirectory``).

    Every method blocks; the server calls them in worker threads.
    """

    def screen_pop(self, *, number: str | None, customer_id: int | None, call: CallContext | None,
                   now: dt.datetime, repeat_hours: float | None = None) -> Any: ...

    def profile(self, customer_id: int) -> Any: ...

    def search(self, query: str, *, limit: int = 20) -> list[Any]: ...

    def create(self, *, actor: str, call_id: str | None, **fields: Any) -> int: ...

    def link(self, call_id: str, customer_id: int) -> bool: ...

    def recent_contacts(self, agent_id: str, *, limit: int = 20) -> list[Any]: ...

    def callbacks(self, agent_id: str, *, limit: int = 50) -> list[Any]: ...

    def callback(self, callback_id: int, agent_id: str) -> Any: ...


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
class _Session:
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


class CtiServer:
    """WebSocket CTI server; also the contact center's notifier. ``bind(center)`` before ``start()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        directory: CustomerDirectory | None = None,
        center: Any = None,
        listen: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        login_policy: LoginPolicy | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        login_timeout: float = 30.0,
        outbox_size: int = 1000,
        max_errors_per_minute: int = 30,
        repeat_hours: float | None = None,
        zone: str | None = None,
        supervisor_interval: float | None = None,
        sample_every: float = 5.0,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.center = center
        self.listen = listen or settings.cti.listen
        self._ssl = ssl_context if ssl_context is not None else server_ssl_context(
            settings.cti.certificate, settings.cti.private_key)
        self.limiter = LoginLimiter(login_policy)
        self.clock = clock
        self.monotonic = monotonic
        self.login_timeout = login_timeout
        self.outbox_size = outbox_size
        self.max_errors_per_minute = max_errors_per_minute
        self.repeat_hours = repeat_hours if repeat_hours is not None else settings.center.repeat_caller_hours
        self.zone = zone or settings.hours.timezone
        self._server: Server | None = None
        self._sessions: set[_Session] = set()
        self._agents: dict[str, _Session] = {}
        self._supervisors: set[_Session] = set()
        self._tasks: set[asyncio.Task] = set()
        self._numbers = itertools.count(1)
        self._since: dict[str, dt.datetime] = {}
        self._offers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._pops: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._linked: OrderedDict[str, int] = OrderedDict()
        self._notes: OrderedDict[tuple[str, str], str] = OrderedDict()  # drafts until the disposition
        self._held: set[str] = set()
        self._watching: list[tuple[str | None, str | None]] | None = None
        self.feed = SupervisorFeed(settings, push=self._push_supervisors, listening=lambda: bool(self._supervisors),
                                   connected_agents=lambda: self._agents, interval=supervisor_interval,
                                   sample_every=sample_every, monotonic=monotonic)
        if center is not None:
            self.feed.bind(center)

    # ------------------------------------------------------------------ lifecycle

    def bind(self, center: Any) -> None:
        self.center = center
        self.feed.bind(center)

    async def start(self) -> None:
        if self.center is None:
            raise CtiServerError("the CTI server needs the contact center: call bind(center) first")
        scheme, host, port = parse_listen(self.listen)
        if scheme == "wss" and self._ssl is None:
            raise CtiServerError(f"cti.listen = {self.listen!r} asks for TLS: set cti.certificate and cti.private_key")
        if scheme == "ws" and self._ssl is not None:
            log.info("cti.certificate is set: serving wss:// on %s:%s", host, port)
        try:
            self._server = await serve(
                self._handle, host, port, ssl=self._ssl, max_size=p.HARD_FRAME_BYTES, max_queue=8,
                ping_interval=20, ping_timeout=20, close_timeout=5, compression=None,
                server_header=f"callcenter/{__version__}",
            )
        except OSError as exc:
            raise CtiServerError(f"the CTI server cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        warm_up = getattr(self.directory, "warm_up", None)
        if callable(warm_up):  # the first caller should not pay for preparing the pop's queries
            try:
                await asyncio.to_thread(warm_up)
            except Exception:
                log.exception("preparing the customer look-ups failed")
        self.feed.start()
        log.info("CTI server listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is None:
            return
        self.feed.stop()
        for session in list(self._sessions):
            session.push(session.event({"type": "session.closed", "reason": "server_stopping"}, self.clock()))
            session.close(1001, "server stopping")
        self._server.close(close_connections=False)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 5)
        except asyncio.TimeoutError:
            self._server.close(close_connections=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise CtiServerError("the CTI server is not listening")
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The URL consoles use (a wildcard listen address becomes the loopback one)."""
        _, host, _ = parse_listen(self.listen)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'wss' if self._ssl else 'ws'}://{host}:{self.port}"

    def connected_agents(self) -> list[str]:
        return sorted(self._agents)

    # ------------------------------------------------------------------ Notifier (called on the loop)

    def to_agent(self, agent_id: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self._watching is not None:
            self._watching.append((kind, message.get("call_id")))
        now = self.clock()
        if kind == "agent.state":
            self._since[agent_id] = now
        elif kind == "call.offered":
            self._remember(self._offers, message["call_id"], dict(message))
        elif kind == "call.ended":
            self._held.discard(message.get("call_id"))
        session = self._agents.get(agent_id)
        if session is not None:
            session.push(session.event(message, now))
        if kind == "call.offered":
            self._spawn(self._send_pop(agent_id, message))

    def to_supervisors(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "acd.changed":  # internal: which rows to refresh; the feed coalesces these
            self.feed.changed(message.get("queues") or (), message.get("agents") or ())
            return
        if kind == "agent.state":
            self.feed.changed((), (message["agent_id"],))
        elif kind == "call.blocked":
            self.feed.changed(counters=True)
        self._push_supervisors(message)

    def _push_supervisors(self, message: dict[str, Any]) -> None:
        now = self.clock()
        for session in list(self._supervisors):
            session.push(session.event(message, now))

    # ------------------------------------------------------------------ connections

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _remember(store: OrderedDict, key: str, value: Any, limit: int = 500) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > limit:
            store.popitem(last=False)

    async def _handle(self, ws: ServerConnection) -> None:
        peer = ws.remote_address
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        session = _Session(ws=ws, address=address, outbox=asyncio.Queue(self.outbox_size), number=next(self._numbers))
        self._sessions.add(session)
        session.sender = self._spawn(self._sender(session))
        session.push(session.event({"type": "hello", "protocol": p.PROTOCOL_VERSION,
                                    "versions": list(p.SUPPORTED_VERSIONS), "server": f"callcenter/{__version__}",
                                    "login_timeout": self.login_timeout}, self.clock()))
        deadline = asyncio.get_running_loop().call_later(self.login_timeout, self._login_timeout, session)
        try:
            async for raw in ws:
                if session.closing:
                    continue  # keep reading until the close handshake completes; ignore the rest
                await self._frame(session, raw)
                if session.agent_id is not None:
                    deadline.cancel()
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("CTI connection %s failed", session.who)
        finally:
            deadline.cancel()
            self._forget(session)
            if session.sender is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(session.sender), 2)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    session.sender.cancel()

    def _forget(self, session: _Session) -> None:
        session.closing = True
        self._sessions.discard(session)
        self.limiter.maybe_prune(self.monotonic())  # keys of failed logins go once their window is over
        self._supervisors.discard(session)
        if session.agent_id and self._agents.get(session.agent_id) is session:
            del self._agents[session.agent_id]
            log.info("CTI %s disconnected (calls and state are unaffected)", session.who)
        try:
            session.outbox.put_nowait(None)
        except asyncio.QueueFull:
            if session.sender is not None:
                session.sender.cancel()

    async def _sender(self, session: _Session) -> None:
        ws = session.ws
        try:
            while True:
                item = await session.outbox.get()
                if item is None:
                    return
                if isinstance(item, tuple):
                    _, code, reason = item
                    await ws.close(code, reason)
                    return
                await ws.send(p.encode(item))
        except ConnectionClosed:
            return

    def _login_timeout(self, session: _Session) -> None:
        if session.agent_id is None and not session.closing:
            log.warning("CTI connection from %s did not log in within %gs: closing it", session.address,
                        self.login_timeout)
            session.close(p.CLOSE_POLICY, "login timeout")

    def _count_error(self, session: _Session) -> None:
        now = self.monotonic()
        session.errors = [t for t in session.errors if t > now - 60] + [now]
        if len(session.errors) > self.max_errors_per_minute:
            log.warning("CTI %s sent too many bad requests: closing it", session.who)
            session.close(p.CLOSE_POLICY, "too many bad requests")

    def _reply_error(self, session: _Session, request_id: Any, request: str | None, exc: p.ProtocolError) -> None:
        extra = {k: v for k, v in exc.extra.items() if k != "id"}
        session.push(p.error(request_id, request, exc.code, exc.message, **extra))
        if exc.code in (p.BAD_JSON, p.BAD_FRAME, p.TOO_LARGE, p.BAD_REQUEST, p.UNKNOWN_TYPE, p.NOT_LOGGED_IN,
                        p.FORBIDDEN):
            self._count_error(session)

    async def _frame(self, session: _Session, raw: str | bytes) -> None:
        try:
            message = p.parse_frame(raw)
        except p.ProtocolError as exc:
            self._reply_error(session, exc.extra.get("id"), None, exc)
            return
        kind, request_id = message["type"], message["id"]
        try:
            if session.agent_id is None and kind not in p.PUBLIC_REQUESTS:
                raise p.ProtocolError(p.NOT_LOGGED_IN, "log in first (request 'login' with agent_id, pin, protocol)")
            handler = getattr(self, "_r_" + kind.replace(".", "_"))
            if kind != "login":
                self._authorize(session, kind, message)
            data = await handler(session, message)
            session.push(p.result(request_id, kind, data))
        except p.ProtocolError as exc:
            self._reply_error(session, request_id, kind, exc)
        except Exception:
            log.exception("CTI request %s from %s failed", kind, session.who)
            session.push(p.error(request_id, kind, p.INTERNAL, "the server could not carry out this request"))

    def _refuse(self, session: _Session, kind: str, why: str) -> p.ProtocolError:
        log.warning("CTI refused %s from %s: %s", kind, session.who, log_safe(why))
        return p.ProtocolError(p.FORBIDDEN, why)

    def _authorize(self, session: _Session, kind: str, message: dict[str, Any]) -> None:
        """Role and ownership checks common to every request (call ownership is checked per request)."""
        if session.role == "supervisor":
            if kind not in p.SUPERVISOR_REQUESTS:
                raise self._refuse(session, kind, f"'{kind}' is an agent request; supervisors take no calls")
            return
        target = message.get("agent_id")
        if target is not None and target != session.agent_id:
            raise self._refuse(session, kind, f"agent {session.agent_id} may not act for agent {target!r}")
        if kind in p.SUPERVISOR_ONLY_REQUESTS:
            raise self._refuse(session, kind, f"'{kind}' is for supervisors")

    # ------------------------------------------------------------------ login

    async def _r_login(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        if session.agent_id is not None:
            raise p.ProtocolError(p.ALREADY_LOGGED_IN, f"this connection is already logged in as {session.agent_id}")
        version = message["protocol"]
        if version not in p.SUPPORTED_VERSIONS:
            raise p.ProtocolError(p.UNSUPPORTED_PROTOCOL, f"protocol {version} is not supported",
                                  supported=list(p.SUPPORTED_VERSIONS))
        agent_id = message["agent_id"]
        keys = (f"agent:{agent_id}", f"addr:{session.address}")
        # The slot is taken before the first await: parallel guesses cannot all be checked before one fails.
        now = self.monotonic()
        wait = self.limiter.acquire(keys, now)
        if wait > 0:
            locked = any(self.limiter.retry_after(key, now) > 0 for key in keys)
            log.warning("CTI login for agent %r from %s refused: %s", agent_id, session.address,
                        f"locked for {wait:.0f}s after repeated wrong PINs" if locked else
                        "as many PIN checks under way as failures are allowed")
            raise p.ProtocolError(p.RATE_LIMITED, f"too many failed logins; try again in {wait:.0f} s",
                                  retry_after=round(wait, 1))
        agent = self.settings.agents.get(agent_id)
        stored = agent.pin_hash if agent is not None else DUMMY_PIN_HASH
        try:
            good = await check_pin(message["pin"], stored)
        finally:
            self.limiter.release(keys, self.monotonic())
        if not good or agent is None:
            locked = max(self.limiter.failure(key, self.monotonic()) for key in keys)
            session.failed_logins += 1
            log.warning("CTI login failed for agent %r from %s: %s (%d recent failure(s) for this agent)%s",
                        agent_id, session.address, "unknown agent" if agent is None else "wrong PIN",
                        self.limiter.failures(keys[0], self.monotonic()),
                        f"; locked for {locked:.0f}s" if locked else "")
            policy = self.limiter.policy
            if policy.failure_delay:
                await asyncio.sleep(policy.failure_delay)
            if session.failed_logins >= policy.max_failures_per_connection:
                # after the reply below has been queued
                asyncio.get_running_loop().call_soon(session.close, p.CLOSE_POLICY, "too many failed logins")
            raise p.ProtocolError(p.AUTH_FAILED, "unknown agent or wrong PIN")
        self.limiter.success(keys[0])
        wanted = message.get("role")
        if wanted is not None and wanted != agent.role:
            # Before the ACD login: an agent who opens the dashboard by mistake is not made available.
            log.warning("CTI login of %s %s from %s refused: the console needs the %s role", agent.role, agent_id,
                        session.address, wanted)
            raise p.ProtocolError(p.FORBIDDEN, f"{agent_id} has the {agent.role} role, not {wanted}",
                                  role=agent.role)
        phone = message.get("phone")
        if phone is not None and not p.valid_sip_uri(phone):
            raise p.ProtocolError(p.BAD_REQUEST, "login: 'phone' must be a SIP URI such as sip:1001@10.0.0.5")
        reason = message.get("not_ready_reason")
        if reason is not None and reason not in self.settings.acd.not_ready_reasons:
            raise p.ProtocolError(p.BAD_REQUEST, f"login: unknown not-ready reason {reason!r}")

        previous = self._agents.get(agent_id)
        if previous is not None and previous is not session:
            log.info("CTI agent %s logged in again from %s: closing the console at %s", agent_id, session.address,
                     previous.address)
            previous.push(previous.event({"type": "session.closed", "reason": "replaced"}, self.clock()))
            previous.close(p.CLOSE_REPLACED, "logged in elsewhere")
            self._agents.pop(agent_id, None)
        session.agent_id = agent_id
        session.role = agent.role
        session.client = str(message.get("client") or "")[:100]
        if agent.role == "supervisor":
            self._supervisors.add(session)
        else:
            self._agents[agent_id] = session
            state = self.center.agent_snapshot(agent_id)["state"]
            if state == "logged_out":
                self.center.login(agent_id, phone=phone, not_ready_reason=reason)
        log.info("CTI %s logged in (%s)", session.who, log_safe(session.client or "unknown client", 100))
        data = self._login_data(agent_id, agent)
        if agent.role == "agent":
            call = data["snapshot"].get("call")
            if call is not None:
                self._spawn(self._resend_call(agent_id, call))
        return data

    def _features(self) -> dict[str, bool]:
        return {name: callable(getattr(self.center, method, None))
                for name, method in (("hold", "hold"), ("transfer", "transfer"), ("dial", "dial"))}

    def _login_data(self, agent_id: str, agent: Any) -> dict[str, Any]:
        s = self.settings
        return {
            "protocol": p.PROTOCOL_VERSION,
            "server": f"callcenter/{__version__}",
            "agent": {"id": agent_id, "name": agent.name, "role": agent.role},
            "session": secrets.token_hex(8),
            "center": s.center.name,
            "region": s.center.default_region,
            "timezone": self.zone,
            "repeat_hours": self.repeat_hours,
            "dispositions": [
                {"code": code, "label": d.label, "requires_note": d.requires_note,
                 "requires_callback": d.requires_callback, "outcome": d.outcome}
                for code, d in s.dispositions.items()
            ],
            "not_ready_reasons": list(s.acd.not_ready_reasons),
            "queues": [{"id": qid, "name": s.queue_display_name(qid)} for qid in s.queues],
            "agents": [{"id": aid, "name": a.name} for aid, a in s.agents.items() if a.role == "agent"],
            "features": self._features(),
            "limits": {"max_frame_bytes": p.MAX_FRAME_BYTES, "max_note_chars": p.MAX_NOTE_CHARS},
            "snapshot": self._snapshot(agent_id) if agent.role == "agent" else None,
        }

    def _snapshot(self, agent_id: str) -> dict[str, Any]:
        snapshot = dict(self.center.agent_snapshot(agent_id))
        since = self._since.get(agent_id)
        snapshot["since"] = since.isoformat() if since else None
        snapshot["server_time"] = self.clock().isoformat()
        call = snapshot.get("call")
        if call is not None:
            call = dict(call)
            offer = self._offers.get(call["call_id"], {})
            call["waited"] = offer.get("waited")
            call["callback"] = offer.get("callback")
            call["held"] = call["call_id"] in self._held
            call["notes"] = self._notes.get((agent_id, call["call_id"]), "")
            snapshot["call"] = call
        last = snapshot.get("last_call_id")
        snapshot["last_call_notes"] = self._notes.get((agent_id, last), "") if last else ""
        snapshot["owed"] = [{**item, "notes": self._notes.get((agent_id, item["call_id"]), "")}
                            for item in snapshot.get("owed") or ()]
        return snapshot

    async def _resend_call(self, agent_id: str, call: dict[str, Any]) -> None:
        """A console that reconnects mid-call gets the pop again (from the cache, or assembled anew)."""
        cached = self._pops.get(call["call_id"])
        session = self._agents.get(agent_id)
        if cached is not None and session is not None:
            session.push(session.event(cached, self.clock()))
            return
        offer = self._offers.get(call["call_id"]) or {
            "type": "call.offered", "call_id": call["call_id"], "queue": call.get("queue"), "ani": call.get("ani"),
            "display_name": call.get("display_name"), "customer_id": call.get("customer_id"),
            "ivr_path": call.get("ivr_path") or [], "waited": None, "callback": None,
        }
        await self._send_pop(agent_id, offer)

    # ------------------------------------------------------------------ the screen pop

    def _call_context(self, offer: dict[str, Any]) -> CallContext:
        path = offer.get("ivr_path") or []
        queue = offer.get("queue")
        return CallContext(
            call_id=offer["call_id"], ani=offer.get("ani"), display_name=offer.get("display_name"), queue=queue,
            queue_name=self.settings.queue_display_name(queue) if queue else None,
            waited_seconds=offer.get("waited"),
            ivr_path=tuple(step for step in path if isinstance(step, dict)),
            callback_number=offer.get("callback"),
        )

    async def _send_pop(self, agent_id: str, offer: dict[str, Any]) -> None:
        call_id = offer["call_id"]
        context = self._call_context(offer)
        number = offer.get("callback") or offer.get("ani")
        parsed = normalize(number, self.settings.center.default_region, strict=False) if number else None
        customer_id = self._linked.get(call_id, offer.get("customer_id"))
        message: dict[str, Any] = {"type": "call.pop", "call_id": call_id}
        if self.directory is None:
            message.update(pop=None, error="no customer database is configured")
        else:
            try:
                pop = await asyncio.to_thread(self.directory.screen_pop, number=parsed.e164 if parsed else None,
                                              customer_id=customer_id, call=context, now=self.clock(),
                                              repeat_hours=self.repeat_hours)
                message["pop"] = to_wire(pop)
                if customer_id is None and pop.kind == "customer" and pop.customer_id is not None:
                    # identified by number alone: record who called, after the pop is on its way
                    self._remember(self._linked, call_id, pop.customer_id)
                    self._spawn(self._link_quietly(call_id, pop.customer_id))
            except Exception as exc:
                log.exception("screen pop for call %s failed", call_id)
                message.update(pop=to_wire(_empty_pop(context, parsed.e164 if parsed else None)),
                               error=f"customer look-up failed: {type(exc).__name__}")
        self._remember(self._pops, call_id, message, limit=200)
        session = self._agents.get(agent_id)
        if session is not None:
            session.push(session.event(message, self.clock()))

    async def _link_quietly(self, call_id: str, customer_id: int) -> None:
        try:
            await asyncio.to_thread(self.directory.link, call_id, customer_id)
        except Exception:
            log.exception("could not record customer %s on call %s", customer_id, call_id)

    # ------------------------------------------------------------------ helpers for requests

    def _state(self, agent_id: str) -> str:
        return self.center.agent_snapshot(agent_id)["state"]

    def _current_call(self, session: _Session, kind: str, call_id: str | None) -> str:
        """The agent's connected call; ``call_id``, if given, must be it."""
        snapshot = self.center.agent_snapshot(session.agent_id)
        call = snapshot.get("call")
        current = call["call_id"] if call and call.get("phase") == "connected" else None
        if call_id is not None and call_id != current:
            if self._handled_by_other(session.agent_id, call_id):
                raise self._refuse(session, kind, f"call {call_id} is not agent {session.agent_id}'s call")
            raise p.ProtocolError(p.REFUSED, f"call {call_id} is not your connected call")
        if current is None:
            raise p.ProtocolError(p.REFUSED, "you have no connected call")
        return current

    def _handled_by_other(self, agent_id: str, call_id: str) -> bool:
        handled = self.center.handled_by.get(call_id)
        if handled is not None and handled != agent_id:
            return True
        live = self.center.calls.get(call_id)
        return live is not None and live.agent_id not in (None, agent_id)

    def _own_call(self, session: _Session, kind: str, call_id: str) -> None:
        """The call is the agent's: ringing or connected for them, or handled by them and still remembered."""
        if not self.center.owns_call(session.agent_id, call_id):
            raise self._refuse(session, kind, f"call {call_id} is not agent {session.agent_id}'s call")

    async def _in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.directory is None:
            raise p.ProtocolError(p.NOT_AVAILABLE, "no customer database is configured on this server")
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ------------------------------------------------------------------ requests: session

    async def _r_ping(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        return {"server_time": self.clock().isoformat()}

    async def _r_logout(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        state = "logged_out"
        if session.role == "agent":
            self.center.logout(session.agent_id)
            state = self._state(session.agent_id)
            if state != "logged_out":
                raise p.ProtocolError(p.REFUSED, f"cannot log out while {state}", state=state)
        log.info("CTI %s logged out", session.who)
        if self._agents.get(session.agent_id) is session:
            del self._agents[session.agent_id]
        asyncio.get_running_loop().call_soon(session.close, 1000, "logged out")
        return {"state": state}

    async def _r_agent_snapshot(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        target = message.get("agent_id") or session.agent_id
        if target not in self.settings.agents or self.settings.agents[target].role != "agent":
            raise p.ProtocolError(p.NOT_FOUND, f"no agent {target!r}")
        return {"snapshot": self._snapshot(target)}

    async def _r_agents_list(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        agents = []
        for agent_id, agent in self.settings.agents.items():
            if agent.role != "agent":
                continue
            snapshot = self.center.agent_snapshot(agent_id)
            agents.append({"agent_id": agent_id, "name": agent.name, "state": snapshot["state"],
                           "reason": snapshot["reason"], "call": snapshot["call"],
                           "console": agent_id in self._agents})
        return {"agents": agents}

    # ------------------------------------------------------------------ requests: state

    async def _r_state_ready(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        from callcenter.core.contact_center import RequestRefused

        before = self._state(session.agent_id)
        try:
            self.center.ready(session.agent_id)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), state=before) from None
        after = self._state(session.agent_id)
        if after == "on_call":  # the ACD keeps the agent on the call and drops a pending not-ready
            return {"state": after, "pending": None}
        if after == before and after != "available":
            raise p.ProtocolError(p.REFUSED, f"cannot become available while {before.replace('_', ' ')}", state=after)
        return {"state": after}

    async def _r_state_not_ready(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        reason = message["reason"]
        if reason not in self.settings.acd.not_ready_reasons:
            raise p.ProtocolError(p.BAD_REQUEST, f"unknown not-ready reason {reason[:40]!r}; known: "
                                  + ", ".join(self.settings.acd.not_ready_reasons))
        before = self._state(session.agent_id)
        self.center.not_ready(session.agent_id, reason)
        snapshot = self.center.agent_snapshot(session.agent_id)
        if before in ("on_call", "wrap_up") and snapshot["state"] == before:  # after this call (and its wrap-up)
            return {"state": before, "pending": reason}
        if snapshot["state"] != "not_ready" or snapshot["reason"] != reason:
            raise p.ProtocolError(p.REFUSED, f"cannot go not ready while {before.replace('_', ' ')}",
                                  state=snapshot["state"])
        return {"state": "not_ready", "reason": reason}

    async def _r_state_end_wrap_up(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        from callcenter.core.contact_center import RequestRefused

        before = self._state(session.agent_id)
        if before != "wrap_up":
            raise p.ProtocolError(p.REFUSED, "you are not in wrap-up", state=before)
        try:
            self.center.end_wrap_up(session.agent_id)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), state=before) from None
        return {"state": self._state(session.agent_id)}

    async def _r_state_extend_wrap_up(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        from callcenter.core.contact_center import RequestRefused

        try:
            wrap = self.center.extend_wrap_up(session.agent_id)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), state=self._state(session.agent_id)) from None
        return {"state": "wrap_up", "wrap": wrap}

    # ------------------------------------------------------------------ requests: calls

    async def _r_call_hangup(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = self._current_call(session, "call.hangup", message.get("call_id"))
        if not self.center.hang_up(session.agent_id):
            raise p.ProtocolError(p.REFUSED, "the call could not be hung up (it is no longer connected)")
        return {"call_id": call_id}

    def _optional(self, session: _Session, kind: str, method: str, *args: Any) -> tuple[bool, list]:
        """Call an optional method of the center; returns its answer and the events it pushed meanwhile."""
        fn = getattr(self.center, method, None)
        if not callable(fn):
            raise p.ProtocolError(p.NOT_AVAILABLE, f"'{kind}' is not available on this server yet")
        self._watching = []
        try:
            done = bool(fn(session.agent_id, *args))
        finally:
            pushed, self._watching = self._watching, None
        return done, pushed

    def _make_sure_pushed(self, session: _Session, pushed: list, event: dict[str, Any]) -> None:
        """Push ``event`` unless the center already did (it tells consoles itself once it supports the feature)."""
        if (event["type"], event["call_id"]) not in pushed:
            session.push(session.event(event, self.clock()))

    async def _r_call_hold(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = self._current_call(session, "call.hold", message.get("call_id"))
        done, pushed = self._optional(session, "call.hold", "hold")
        if not done:
            raise p.ProtocolError(p.REFUSED, "the call could not be put on hold (already held?)")
        self._held.add(call_id)
        self._make_sure_pushed(session, pushed, {"type": "call.held", "call_id": call_id})
        return {"call_id": call_id, "held": True}

    async def _r_call_unhold(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = self._current_call(session, "call.unhold", message.get("call_id"))
        done, pushed = self._optional(session, "call.unhold", "unhold")
        if not done:
            raise p.ProtocolError(p.REFUSED, "the call could not be taken off hold (not held?)")
        self._held.discard(call_id)
        self._make_sure_pushed(session, pushed, {"type": "call.resumed", "call_id": call_id})
        return {"call_id": call_id, "held": False}

    async def _r_call_transfer(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        target = message["target"]
        kind, _, ident = target.partition(":")
        if kind == "queue" and ident in self.settings.queues:
            pass
        elif kind == "agent" and ident in self.settings.agents and self.settings.agents[ident].role == "agent":
            if ident == session.agent_id:
                raise p.ProtocolError(p.BAD_REQUEST, "call.transfer: you cannot transfer a call to yourself")
        else:
            raise p.ProtocolError(p.BAD_REQUEST, "call.transfer: 'target' must be queue:ID or agent:ID of a "
                                  f"configured queue or agent, not {target[:40]!r}")
        call_id = self._current_call(session, "call.transfer", message.get("call_id"))
        from callcenter.core.contact_center import RequestRefused

        try:
            done, pushed = self._optional(session, "call.transfer", "transfer", target)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc)) from None
        if not done:
            raise p.ProtocolError(p.REFUSED, f"the call could not be transferred to {target}")
        self._held.discard(call_id)
        self._make_sure_pushed(session, pushed, {"type": "call.transferred", "call_id": call_id, "target": target})
        return {"call_id": call_id, "target": target}

    async def _r_call_notes(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = message["call_id"]
        self._own_call(session, "call.notes", call_id)
        self._remember(self._notes, (session.agent_id, call_id), message["text"], limit=2000)
        return {"call_id": call_id, "chars": len(message["text"])}

    async def _r_call_dial(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        number = message.get("number")
        callback_id = message.get("callback_id")
        callback = None
        if callback_id is not None:
            callback = await self._in_thread(self.directory.callback, callback_id, session.agent_id)
            if callback is None:
                raise self._refuse(session, "call.dial", f"callback {callback_id} is not one agent "
                                   f"{session.agent_id} may work")
            number = number or callback.number
        if not number:
            raise p.ProtocolError(p.BAD_REQUEST, "call.dial: give 'number' or 'callback_id'")
        parsed = normalize(number, self.settings.center.default_region, strict=False)
        if parsed is None:
            raise p.ProtocolError(p.BAD_REQUEST, f"call.dial: {number[:40]!r} is not a phone number")
        fn = getattr(self.center, "dial", None)
        if not callable(fn):
            raise p.ProtocolError(p.NOT_AVAILABLE, "dialling out ('call.dial') is not available on this server yet")
        from callcenter.core.contact_center import RequestRefused

        extra = {} if callback is None else {"customer_id": callback.customer_id, "queue": callback.queue,
                                             "display_name": callback.customer_name}
        try:
            done = fn(session.agent_id, parsed.e164, callback_id=callback_id, **extra)
        except RequestRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc)) from None
        if not done:
            raise p.ProtocolError(p.REFUSED, f"{parsed.e164} could not be dialled now")
        return {"number": parsed.e164, "callback_id": callback_id}

    # ------------------------------------------------------------------ requests: disposition

    def _callback(self, session: _Session, raw: dict[str, Any]) -> dict[str, Any]:
        p.check_fields(raw, p.CALLBACK_FIELDS, "disposition.save callback")
        number = normalize(raw["number"], self.settings.center.default_region, strict=False)
        if number is None:
            raise p.ProtocolError(p.BAD_REQUEST, f"callback: {raw['number'][:40]!r} is not a phone number")
        due_from = p.parse_time(raw["due_from"], "callback due_from")
        due_until = p.parse_time(raw["due_until"], "callback due_until") if raw.get("due_until") else None
        if due_until is not None and due_until <= due_from:
            raise p.ProtocolError(p.BAD_REQUEST, "callback: due_until must be after due_from")
        if due_from < self.clock() - dt.timedelta(minutes=5):
            raise p.ProtocolError(p.REFUSED, "callback: the time is in the past")
        owner = raw.get("owner") or "me"
        if owner not in ("me", "anyone"):
            raise p.ProtocolError(p.BAD_REQUEST, "callback: 'owner' must be 'me' or 'anyone'")
        return {"number": number.e164, "due_from": due_from.astimezone(dt.UTC),
                "due_until": due_until.astimezone(dt.UTC) if due_until else None,
                "owner_agent_id": session.agent_id if owner == "me" else None,
                "notes": (raw.get("notes") or None)}

    async def _r_disposition_save(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        """The disposition of the one call named in the request: never "the agent's latest call"."""
        from callcenter.core.contact_center import DispositionRefused

        call_id, code = message["call_id"], message["code"]
        agent_id = session.agent_id
        if self.settings.dispositions.get(code) is None:
            raise p.ProtocolError(p.BAD_REQUEST, f"unknown disposition code {code[:32]!r}")
        if not self.center.may_dispose(agent_id, call_id) and not self.center.owns_call(agent_id, call_id):
            raise self._refuse(session, "disposition.save", f"call {call_id} was not handled by agent {agent_id}")
        callback = self._callback(session, message["callback"]) if message.get("callback") else None
        notes = message.get("notes")
        try:
            self.center.dispose(agent_id, call_id, code, notes=notes, callback=callback)
        except DispositionRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc), call_id=call_id) from None
        await self.center.drain()
        self._notes.pop((agent_id, call_id), None)
        state = self._state(agent_id)
        wrap = self.center.wrap_up_of(agent_id)
        # Saving ends the wrap-up this call put the agent in (not one of a later call).
        if message.get("end_wrap_up", True) and state == "wrap_up" and \
                self.center.last_call_of_agent.get(agent_id) == call_id and not (wrap or {}).get("owed_call"):
            self.center.end_wrap_up(agent_id)
            state = self._state(agent_id)
        log.info("CTI agent %s disposed call %s as %s%s", agent_id, call_id, code,
                 " with a callback" if callback else "")
        return {"call_id": call_id, "code": code, "state": state, "callback": callback is not None,
                "owed": self.center.owed_list(agent_id)}

    # ------------------------------------------------------------------ requests: customers

    async def _r_customer_search(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        found = await self._in_thread(self.directory.search, message["query"], limit=message.get("limit") or 20)
        return {"customers": [to_wire(c) for c in found]}

    async def _r_customer_get(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        profile = await self._in_thread(self.directory.profile, message["customer_id"])
        if profile is None:
            raise p.ProtocolError(p.NOT_FOUND, f"no customer {message['customer_id']}")
        return {"profile": to_wire(profile)}

    async def _r_customer_link(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id, customer_id = message["call_id"], message["customer_id"]
        self._own_call(session, "customer.link", call_id)
        if not await self._in_thread(self.directory.link, call_id, customer_id):
            raise p.ProtocolError(p.NOT_FOUND, f"no customer {customer_id} or no record of call {call_id}")
        self._remember(self._linked, call_id, customer_id)
        self._pops.pop(call_id, None)
        profile = await self._in_thread(self.directory.profile, customer_id)
        return {"call_id": call_id, "customer_id": customer_id, "profile": to_wire(profile)}

    async def _r_customer_create(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        call_id = message.get("call_id")
        if call_id is not None:
            self._own_call(session, "customer.create", call_id)
        fields = {k: message.get(k) for k in ("name", "number", "company", "email", "language")}
        try:
            customer_id = await self._in_thread(self.directory.create, actor=session.agent_id, call_id=call_id, **fields)
        except ValueError as exc:  # the directory's input errors; the message is for the agent
            raise p.ProtocolError(p.BAD_REQUEST, str(exc)) from None
        if call_id is not None:
            self._remember(self._linked, call_id, customer_id)
            self._pops.pop(call_id, None)
        profile = await self._in_thread(self.directory.profile, customer_id)
        log.info("CTI agent %s created customer %s", session.agent_id, customer_id)
        return {"customer_id": customer_id, "profile": to_wire(profile)}

    async def _r_contacts_recent(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        found = await self._in_thread(self.directory.recent_contacts, session.agent_id, limit=message.get("limit") or 20)
        return {"contacts": [to_wire(c) for c in found]}

    async def _r_callbacks_list(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        found = await self._in_thread(self.directory.callbacks, session.agent_id, limit=message.get("limit") or 50)
        return {"callbacks": [to_wire(c) for c in found], "server_time": self.clock().isoformat()}

    # ------------------------------------------------------------------ requests: supervisors (the dashboard)

    async def _r_supervisor_snapshot(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        return self.feed.snapshot()

    async def _r_supervisor_trends(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        queue = message.get("queue")
        if queue is not None and queue not in self.settings.queues:
            raise p.ProtocolError(p.NOT_FOUND, f"no queue {queue[:32]!r}")
        return self.feed.trends(queue)

    async def _r_queue_detail(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        queue = message["queue"]
        if queue not in self.settings.queues:
            raise p.ProtocolError(p.NOT_FOUND, f"no queue {queue[:32]!r}; known: " + ", ".join(self.settings.queues))
        return self.feed.queue_detail(queue, message.get("limit") or 100)

    def _supervised_agent(self, message: dict[str, Any]) -> str:
        agent_id = message["agent_id"]
        agent = self.settings.agents.get(agent_id)
        if agent is None or agent.role != "agent":
            raise p.ProtocolError(p.NOT_FOUND, f"no agent {agent_id[:32]!r}")
        return agent_id

    async def _r_agent_force_state(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        from callcenter.core.contact_center import SupervisorActionRefused

        agent_id = self._supervised_agent(message)
        state, reason = message["state"], message.get("reason")
        if state not in p.FORCE_STATES:
            raise p.ProtocolError(p.BAD_REQUEST, f"agent.force_state: 'state' must be one of {', '.join(p.FORCE_STATES)}")
        if state == "not_ready" and not reason:
            raise p.ProtocolError(p.BAD_REQUEST, "agent.force_state: give a 'reason' for not_ready; known: "
                                  + ", ".join(self.settings.acd.not_ready_reasons))
        try:
            done = self.center.force_state(session.agent_id, agent_id, state, reason if state == "not_ready" else None)
        except SupervisorActionRefused as exc:
            log.info("CTI supervisor %s: %s %s refused: %s", session.agent_id, state, agent_id, exc)
            raise p.ProtocolError(p.REFUSED, str(exc), state=self._state(agent_id)) from None
        await self.center.drain()  # the audit row is written before the supervisor hears it is done
        return done

    async def _r_agent_set_skills(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        from callcenter.core.contact_center import SupervisorActionRefused

        agent_id = self._supervised_agent(message)
        try:
            done = self.center.set_skills(session.agent_id, agent_id, message["skills"])
        except SupervisorActionRefused as exc:
            raise p.ProtocolError(p.REFUSED, str(exc)) from None
        await self.center.drain()
        return done


def _empty_pop(call: CallContext, number: str | None):
    from screenpop.pop import ScreenPop

    return ScreenPop(kind="new", number=number, call=call)
