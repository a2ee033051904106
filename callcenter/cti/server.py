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
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from callcenter import __version__
from callcenter.clock import utcnow
from callcenter.config import Settings
from callcenter.cti import protocol as p
from callcenter.logsafe import log_safe
from callcenter.core.ports import CenterPort
from callcenter.cti.agent_requests import AgentRequests
from callcenter.cti.auth import LoginLimiter, LoginPolicy
from callcenter.cti.errors import CtiServerError
from callcenter.cti.pops import CustomerDirectory, PopAssembler
from callcenter.cti.session_requests import SessionRequests
from callcenter.cti.sessions import Session, parse_listen, server_ssl_context
from callcenter.cti.supervision import SupervisorFeed
from callcenter.cti.supervisor_requests import SupervisorRequests

log = logging.getLogger("callcenter.cti")

__all__ = ["CtiServer", "CtiServerError", "CustomerDirectory", "parse_listen", "server_ssl_context"]


class CtiServer(SessionRequests, AgentRequests, SupervisorRequests):
    """WebSocket CTI server; also the contact center's notifier. ``bind(center)`` before ``start()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        directory: CustomerDirectory | None = None,
        center: CenterPort | None = None,
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
        self._sessions: set[Session] = set()
        self._agents: dict[str, Session] = {}
        self._supervisors: set[Session] = set()
        self._tasks: set[asyncio.Task] = set()
        self._numbers = itertools.count(1)
        self.pops = PopAssembler(settings, directory, center=lambda: self.center, clock=clock,
                                 repeat_hours=self.repeat_hours, deliver=self._deliver, spawn=self._spawn)
        self.feed = SupervisorFeed(settings, push=self._push_supervisors, listening=lambda: bool(self._supervisors),
                                   connected_agents=lambda: self._agents, interval=supervisor_interval,
                                   sample_every=sample_every, monotonic=monotonic)
        if center is not None:
            self.feed.bind(center)

    # ------------------------------------------------------------------ lifecycle

    def bind(self, center: CenterPort) -> None:
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
        self._deliver(agent_id, message)
        if message.get("type") == "call.offered":
            self._spawn(self.pops.send(agent_id, message))

    def _deliver(self, agent_id: str, message: dict[str, Any]) -> None:
        session = self._agents.get(agent_id)
        if session is not None:
            session.push(session.event(message, self.clock()))

    def to_supervisors(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "acd.changed":  # internal: which rows to refresh; the feed coalesces these
            self.feed.changed(message.get("queues") or (), message.get("agents") or (),
                              counters=bool(message.get("counters")))
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

    async def _handle(self, ws: ServerConnection) -> None:
        peer = ws.remote_address
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        session = Session(ws=ws, address=address, outbox=asyncio.Queue(self.outbox_size), number=next(self._numbers))
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

    def _forget(self, session: Session) -> None:
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

    async def _sender(self, session: Session) -> None:
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

    def _login_timeout(self, session: Session) -> None:
        if session.agent_id is None and not session.closing:
            log.warning("CTI connection from %s did not log in within %gs: closing it", session.address,
                        self.login_timeout)
            session.close(p.CLOSE_POLICY, "login timeout")

    def _count_error(self, session: Session) -> None:
        now = self.monotonic()
        session.errors = [t for t in session.errors if t > now - 60] + [now]
        if len(session.errors) > self.max_errors_per_minute:
            log.warning("CTI %s sent too many bad requests: closing it", session.who)
            session.close(p.CLOSE_POLICY, "too many bad requests")

    def _reply_error(self, session: Session, request_id: Any, request: str | None, exc: p.ProtocolError) -> None:
        extra = {k: v for k, v in exc.extra.items() if k != "id"}
        session.push(p.error(request_id, request, exc.code, exc.message, **extra))
        if exc.code in (p.BAD_JSON, p.BAD_FRAME, p.TOO_LARGE, p.BAD_REQUEST, p.UNKNOWN_TYPE, p.NOT_LOGGED_IN,
                        p.FORBIDDEN):
            self._count_error(session)

    async def _frame(self, session: Session, raw: str | bytes) -> None:
        try:
            message = p.parse_frame(raw)
        except p.ProtocolError as exc:
            self._reply_error(session, exc.extra.get("id"), None, exc)
            return
        kind, request_id = message["type"], message["id"]
        try:
            if session.agent_id is None and kind not in p.PUBLIC_REQUESTS:
                raise p.ProtocolError(p.NOT_LOGGED_IN, "log in first (request 'login' with agent_id, pin, protocol)")
            handler = self.HANDLERS[kind]
            if kind != "login":
                self._authorize(session, kind, message)
            data = await handler(self, session, message)
            session.push(p.result(request_id, kind, data))
        except p.ProtocolError as exc:
            self._reply_error(session, request_id, kind, exc)
        except Exception:
            log.exception("CTI request %s from %s failed", kind, session.who)
            session.push(p.error(request_id, kind, p.INTERNAL, "the server could not carry out this request"))

    def _refuse(self, session: Session, kind: str, why: str) -> p.ProtocolError:
        log.warning("CTI refused %s from %s: %s", kind, session.who, log_safe(why))
        return p.ProtocolError(p.FORBIDDEN, why)

    def _authorize(self, session: Session, kind: str, message: dict[str, Any]) -> None:
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

    # request type -> handler (every type of ``protocol.REQUESTS``; tests/cti check the two agree)
    HANDLERS: ClassVar[dict[str, Callable[..., Awaitable[dict[str, Any]]]]] = {
        "login": SessionRequests._r_login,
        "logout": SessionRequests._r_logout,
        "ping": SessionRequests._r_ping,
        "agent.snapshot": SessionRequests._r_agent_snapshot,
        "agents.list": SupervisorRequests._r_agents_list,
        "state.ready": AgentRequests._r_state_ready,
        "state.not_ready": AgentRequests._r_state_not_ready,
        "state.end_wrap_up": AgentRequests._r_state_end_wrap_up,
        "state.extend_wrap_up": AgentRequests._r_state_extend_wrap_up,
        "call.hangup": AgentRequests._r_call_hangup,
        "call.hold": AgentRequests._r_call_hold,
        "call.unhold": AgentRequests._r_call_unhold,
        "call.transfer": AgentRequests._r_call_transfer,
        "call.notes": AgentRequests._r_call_notes,
        "call.dial": AgentRequests._r_call_dial,
        "disposition.save": AgentRequests._r_disposition_save,
        "customer.search": AgentRequests._r_customer_search,
        "customer.get": AgentRequests._r_customer_get,
        "customer.link": AgentRequests._r_customer_link,
        "customer.create": AgentRequests._r_customer_create,
        "contacts.recent": AgentRequests._r_contacts_recent,
        "callbacks.list": AgentRequests._r_callbacks_list,
        "supervisor.snapshot": SupervisorRequests._r_supervisor_snapshot,
        "supervisor.trends": SupervisorRequests._r_supervisor_trends,
        "queue.detail": SupervisorRequests._r_queue_detail,
        "agent.force_state": SupervisorRequests._r_agent_force_state,
        "agent.set_skills": SupervisorRequests._r_agent_set_skills,
    }
