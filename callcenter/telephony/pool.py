"""The worker pool (asyncio): starts media workers, routes commands to them, supervises them.

:class:`WorkerPool` has N worker slots (``python -m callcenter.telephony.worker``), slot *i* on SIP
port ``base_port + i`` with its own RTP range (``rtp_ports`` ports, then a gap, because pjsua's
range includes its end port); a slot keeps its ports for the pool's life. Every event of every
worker lands in one :class:`asyncio.Queue` (``pool.events``), stamped with the worker's name.
Commands go to the worker that owns the leg they name. A worker that dies (or stops answering
pings) is restarted with backoff, and the pool puts
:class:`~callcenter.core.telephony_protocol.WorkerDied` listing the legs lost with it in the queue, so
the control process can close those calls and free their agents. No other worker notices.

Without ``sizing`` every slot runs a worker (a fixed pool). With it the pool is elastic: the pure
policy in :mod:`callcenter.telephony.sizing` decides, on every leg event and every
``sizing_interval``, which slots to start and which idle worker to retire. A retiring worker first
stops taking calls (``on_retiring`` takes it out of the SIP front's list), waits ``retire_grace``
for INVITEs already on their way (one that lands calls the retirement off), then shuts down. That
is no death: no :class:`WorkerDied`, no restart; the slot can be started again later under a new
generation, so leg ids stay unique.

:meth:`WorkerPool.live_legs` asks every worker which legs it holds (a reconciliation sweep compares
them with what the control process believes); :meth:`WorkerPool.drop_next` loses one event on
purpose (a test hook).

:class:`FakeTelephony` is the in-memory twin with the same interface: it records commands and
lets a test inject events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path


from callcenter.logsafe import log_safe
from callcenter.core import telephony_protocol as p
from callcenter.core.ports import Telephony
from callcenter.telephony.admission import LegBudget
from callcenter.telephony.errors import TelephonyError
from callcenter.telephony.sizing import (
    CancelRetirement, DemandMeter, Phase, RetireWorker, SizingRules, SlotState, StartWorkers, decide, describe_slots,
    target_free_legs,
)

__all__ = ["Telephony", "WorkerPool", "WorkerInfo", "WorkerStartError", "FakeTelephony"]

log = logging.getLogger("callcenter.telephony.pool")


class WorkerStartError(TelephonyError, RuntimeError):
    """A worker could not be started (port in use, pjsua2 missing...); the message has its log.

    Also a :class:`RuntimeError`, so callers that catch ``RuntimeError`` around a pool start keep
    working.
    """


@dataclass(frozen=True)
class WorkerInfo:
    """A snapshot of one worker for supervision screens and the SIP front's configuration."""

    name: str
    address: str
    port: int
    rtp_start: int
    rtp_end: int
    legs: int
    alive: bool
    pid: int | None
    generation: int
    free_legs: int
    in_use: int
    restarts: int
    state: str = "running"
    """:class:`~callcenter.telephony.sizing.Phase`: only ``running`` workers take new calls."""


@dataclass
class _Worker:
    name: str
    port: int
    rtp_start: int
    rtp_end: int
    generation: int = 0
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    phase: Phase = Phase.STOPPED
    free: int = 0
    in_use: int = 0
    reserved: int = 0
    idle_since: float | None = None  # no leg and no reservation since (monotonic)
    retire_epoch: int = 0  # bumped by every retirement and call-back: a stale retirement stops
    restarts: int = 0
    started_at: float = 0.0
    last_seen: float = 0.0
    backoff: float = 0.0
    tasks: list[asyncio.Task] = field(default_factory=list)
    stderr_tail: deque = field(default_factory=lambda: deque(maxlen=60))
    started: asyncio.Future | None = None
    watcher: asyncio.Task | None = None


class WorkerPool:
    """N media worker slots behind one event queue. Use ``await start()`` then ``send``/``dial``.

    ``legs`` is each worker's leg budget (default 4, what the installed pjsua2 build allows).
    ``max_rate`` is each worker's new-leg rate limit per second. Workers are named ``w1``..``wN``;
    leg ids look like ``w1.2-17`` (worker, generation, sequence), unique for the pool's lifetime.
    ``sizing`` makes the pool elastic (see the module doc); ``on_retiring(name)`` is awaited when a
    worker starts retiring, before its grace period (the SIP front takes it out of its list).
    ``rtp_timeout`` (seconds, 0: off) and ``session_expires`` (seconds, 0: off, else at least 90)
    are each worker's dead-call detection: ``--rtp-timeout`` and ``--session-expires``.
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        address: str = "127.0.0.1",
        base_port: int = 5070,
        rtp_start: int = 20000,
        rtp_ports: int = 64,
        rtp_gap: int = 16,
        legs: int = 4,
        max_rate: float = 20.0,
        decide_timeout: float = 5.0,
        python: str = sys.executable,
        restart_backoff: tuple[float, float] = (0.5, 30.0),
        ping_interval: float = 5.0,
        hang_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        worker_args: tuple[str, ...] = (),
        sizing: SizingRules | None = None,
        sizing_interval: float = 0.5,
        retire_grace: float = 2.0,
        on_retiring: Callable[[str], Awaitable[None]] | None = None,
        rtp_timeout: float = 30.0,
        session_expires: int = 90,
    ) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        if not 0 <= rtp_timeout <= 86400:
            raise ValueError("rtp_timeout must be 0 (off) to 86400 seconds")
        if not (session_expires == 0 or 90 <= session_expires <= 86400):
            raise ValueError("session_expires must be 0 (off) or 90-86400 seconds (pjsip refuses less than 90)")
        if rtp_ports < 4 * legs:
            raise ValueError("rtp_ports must give each leg at least 4 ports")
        last = rtp_start + workers * (rtp_ports + rtp_gap)
        if last > 65535 or base_port + workers - 1 > 65535:
            raise ValueError("the port ranges of the workers do not fit below 65536")
        self.address = address
        self.legs = legs
        self.max_rate = max_rate
        self.decide_timeout = decide_timeout
        self.python = python
        self.restart_backoff = restart_backoff
        self.ping_interval = ping_interval
        self.hang_timeout = hang_timeout
        self.stop_timeout = stop_timeout
        self.worker_args = tuple(worker_args)
        self.rtp_timeout = rtp_timeout
        self.session_expires = int(session_expires)
        self.events: asyncio.Queue[p.Event] = asyncio.Queue()
        self._leg_queries: dict[str, asyncio.Future] = {}  # Ping(legs=True) id -> its Pong's legs
        self._drops: list[tuple[type, str | None]] = []  # drop_next(): events to lose on purpose
        self.dropped: list[tuple[float, p.Event]] = []  # drop_next(): what was lost, when (epoch seconds)
        self._workers: dict[str, _Worker] = {}
        for i in range(workers):
            start = rtp_start + i * (rtp_ports + rtp_gap)
            name = f"w{i + 1}"
            self._workers[name] = _Worker(name, base_port + i, start, start + rtp_ports - 1)
        self._leg_worker: dict[str, str] = {}
        self._dialled: dict[str, str] = {}  # Dial command id -> leg, until the worker accepts it
        self._recording_worker: dict[str, str] = {}  # conversation -> worker, while it records
        self._ids = itertools.count(1)
        self._leg_seq = itertools.count(1)
        self._stopping = False
        self._started = False
        self._background: set[asyncio.Task] = set()
        self.sizing = (dataclasses.replace(sizing, legs_per_worker=legs,
                                           max_workers=min(workers, sizing.max_workers or workers))
                       if sizing is not None else None)
        self.sizing_interval = sizing_interval
        self.retire_grace = retire_grace
        self.on_retiring = on_retiring
        self._demand = DemandMeter()
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self, timeout: float = 30.0) -> None:
        """Start every worker (elastic: those the floor needs) and wait for each :class:`WorkerStarted`."""
        if self._started:
            return
        self._started = True
        try:
            if self.sizing is None:
                await asyncio.gather(*(self._spawn(w, timeout) for w in self._workers.values()))
                return
            while True:
                now = time.monotonic()
                starts = [d for d in decide(self._slot_states(now), 0.0, self.sizing, now) if isinstance(d, StartWorkers)]
                if not starts:
                    break
                await asyncio.gather(*(self._spawn(self._workers[name], timeout) for name in starts[0].slots))
        except BaseException:
            await self.stop()
            raise
        self._keep(self._size_loop(), "pool-sizing")

    async def stop(self) -> None:
        """Shutdown command to each worker, then SIGTERM, then SIGKILL after ``stop_timeout``."""
        self._stopping = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(self._stop_worker(w) for w in self._workers.values()), return_exceptions=True)

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------- queries

    @property
    def elastic(self) -> bool:
        return self.sizing is not None

    @property
    def workers(self) -> list[WorkerInfo]:
        """The workers: every slot of a fixed pool; an elastic pool's slots that have (or are getting)
        a process. Only those in state ``running`` take new calls."""
        return [self._info(w) for w in self._workers.values() if self.sizing is None or w.phase is not Phase.STOPPED]

    @property
    def slots(self) -> list[WorkerInfo]:
        """Every slot, stopped ones included."""
        return [self._info(w) for w in self._workers.values()]

    def describe(self) -> str:
        """``"3 running, 1 retiring, 12 stopped (elastic)"``."""
        return describe_slots((self._phase(w) for w in self._workers.values()), elastic=self.elastic)

    def _info(self, w: _Worker) -> WorkerInfo:
        return WorkerInfo(w.name, self.address, w.port, w.rtp_start, w.rtp_end, self.legs,
                          self._alive(w), w.proc.pid if w.proc and w.phase is not Phase.STOPPED else None, w.generation,
                          w.free if self._serving(w) else 0, w.in_use, w.restarts, self._phase(w).value)

    def free_legs(self, worker: str | None = None) -> int:
        """Free legs of one worker, or of the whole pool; workers not taking calls count 0."""
        chosen = [self._workers[worker]] if worker else self._workers.values()
        return sum(w.free for w in chosen if self._serving(w))

    def worker_of(self, leg: str) -> str | None:
        return self._leg_worker.get(leg)

    def legs_of(self, worker: str) -> list[str]:
        return sorted(leg for leg, w in self._leg_worker.items() if w == worker)

    def worker_log(self, worker: str) -> str:
        """The last lines the worker wrote to stderr (for diagnostics)."""
        return "\n".join(self._workers[worker].stderr_tail)

    async def live_legs(self, timeout: float = 1.0) -> dict[str, dict[str, str] | None]:
        """What every worker holds, asked now: worker → {leg: SIP state} (states: see
        :class:`~callcenter.core.telephony_protocol.Pong`), for a reconciliation sweep.

        Every worker with a live process is asked (running, retiring or stopping: a leg can be on any
        of them). A worker that does not answer within ``timeout``, or whose process is gone while
        legs are still listed for it, maps to ``None``: nothing can be concluded about its legs. The
        events a worker wrote before its answer are in :attr:`events` by then (perhaps not yet read),
        so a leg that just arrived or ended may differ for a moment: compare with some grace.
        """
        loop = asyncio.get_running_loop()
        asked: dict[str, asyncio.Future | None] = {}
        mine: list[str] = []
        for w in self._workers.values():
            if not self._alive(w) or w.proc is None or w.proc.stdin is None:
                if self.legs_of(w.name):
                    asked[w.name] = None
                continue
            query_id = f"legs-{next(self._ids)}"
            mine.append(query_id)
            future = self._leg_queries[query_id] = loop.create_future()
            try:
                w.proc.stdin.write(p.encode(p.Ping(id=query_id, legs=True)))
            except (ConnectionError, RuntimeError, OSError):
                future.cancel()
            asked[w.name] = future
        try:
            pending = [f for f in asked.values() if f is not None and not f.done()]
            if pending:
                await asyncio.wait(pending, timeout=timeout)
        finally:
            for query_id in mine:
                self._leg_queries.pop(query_id, None)
        return {name: (f.result() if f is not None and f.done() and not f.cancelled() else None)
                for name, f in asked.items()}

    def drop_next(self, event_type: type[p.Event], leg: str | None = None) -> None:
        """Test hook: lose the next event of ``event_type`` (for ``leg``, if given) from any worker.

        It never reaches :attr:`events`, as if the IPC had lost it (the fault-mix bench, the
        reconciliation tests). The pool's own bookkeeping still sees it: only the control process
        misses it. Each call loses exactly one event; calls queue up. Every event lost is appended
        to :attr:`dropped` with the time it was lost (``time.time()``), so a test or bench can time
        what repairs it.
        """
        self._drops.append((event_type, leg))

    def _drop(self, w: _Worker, event: p.Event) -> bool:
        for i, (kind, leg) in enumerate(self._drops):
            if isinstance(event, kind) and (leg is None or getattr(event, "leg", None) == leg):
                del self._drops[i]
                self.dropped.append((time.time(), event))
                log.warning("%s: %s dropped on purpose (drop_next test hook)", w.name, type(event).__name__)
                return True
        return False

    def pick_worker(self, need: int = 2) -> str | None:
        """The running worker with the most free legs, if it has ``need`` of them."""
        best = max((w for w in self._workers.values() if self._serving(w)), key=lambda w: w.free, default=None)
        return best.name if best is not None and best.free >= need else None

    # ------------------------------------------------------------------------------ commands

    def send(self, command: p.Command, *, worker: str | None = None) -> str:
        """Send a command to the worker owning its leg (or to ``worker``); returns its id.

        Problems (unknown leg, legs on different workers, dead worker) come back as
        :class:`CommandFailed` events, like failures inside the worker, never as exceptions.
        """
        if not command.id:
            command = dataclasses.replace(command, id=f"c{next(self._ids)}")
        target = worker or self._route(command)
        if isinstance(target, _Failure):
            self._fail_locally(command, target.reason)
            return command.id
        w = self._workers.get(target)
        if w is None or not self._alive(w) or w.proc is None or w.proc.stdin is None:
            self._fail_locally(command, f"worker {target} is not running")
            return command.id
        if isinstance(command, p.Dial):
            self._leg_worker[command.leg] = target
            self._dialled[command.id] = command.leg
        elif isinstance(command, p.StartRecording):
            self._recording_worker[command.conversation] = target
        try:
            w.proc.stdin.write(p.encode(command))
        except (ConnectionError, RuntimeError, OSError) as exc:
            self._fail_locally(command, f"worker {target} unreachable: {exc}")
        return command.id

    def dial(self, uri: str, *, peer: str | None = None, caller_id: str = "", display_name: str = "",
             timeout: float = 30.0, worker: str | None = None) -> str:
        """Dial ``uri`` as a new leg and return its id (outcome: LegRinging/LegAnswered/LegFailed).

        With ``peer`` (the waiting caller) the leg goes to the caller's worker and uses the slot
        reserved for it. Without, it starts a conversation of its own (outbound callback) on
        ``worker`` or on the worker with the most free legs.
        """
        target = worker or (self._leg_worker.get(peer) if peer else self.pick_worker(2))
        if peer is None:
            self._note_demand(2)  # an outbound call is a conversation of its own
        w = self._workers.get(target) if target else None
        prefix = f"{w.name}.{w.generation}" if w else "none"
        leg = f"{prefix}-d{next(self._leg_seq)}"
        command = p.Dial(leg=leg, uri=uri, caller_id=caller_id, display_name=display_name,
                         timeout=timeout, peer=peer)
        if target is None:
            self._fail_locally(dataclasses.replace(command, id=f"c{next(self._ids)}"),
                               "no worker has room" if not peer else f"unknown leg {peer!r}")
            return leg
        self.send(command, worker=target)
        return leg

    def _route(self, command: p.Command) -> str | _Failure:
        if isinstance(command, (p.Bridge, p.Unbridge)):
            wa, wb = self._leg_worker.get(command.a), self._leg_worker.get(command.b)
            if wa is None or wb is None:
                return _Failure(f"unknown leg {command.a if wa is None else command.b!r}")
            if wa != wb:
                return _Failure(f"legs {command.a} and {command.b} are on different workers")
            return wa
        if isinstance(command, p.StartRecording):
            owners = {self._leg_worker.get(leg) for leg in command.legs}
            if None in owners or len(owners) != 1:
                return _Failure("recorded legs must all be live on one worker")
            return owners.pop()
        if isinstance(command, p.StopRecording):
            owner = self._recording_worker.get(command.conversation)
            return owner if owner else _Failure(f"no recording {command.conversation!r}")
        if isinstance(command, p.Dial):
            owner = self._leg_worker.get(command.peer) if command.peer else None
            return owner if owner else _Failure("Dial needs a peer leg or worker=... (use dial())")
        leg = getattr(command, "leg", None)
        if leg is None:
            return _Failure(f"{type(command).__name__} needs worker=...")
        owner = self._leg_worker.get(leg)
        return owner if owner else _Failure(f"unknown leg {leg!r}")

    def _fail_locally(self, command: p.Command, reason: str) -> None:
        leg = getattr(command, "leg", None) or getattr(command, "a", None)
        self.events.put_nowait(p.CommandFailed(command_id=command.id, command=type(command).__name__,
                                               reason=reason, leg=leg))

    # ------------------------------------------------------------------------ worker processes

    @staticmethod
    def _alive(w: _Worker) -> bool:
        return w.ready and w.proc is not None and w.proc.returncode is None

    @classmethod
    def _serving(cls, w: _Worker) -> bool:
        """Up and taking new calls (not starting, retiring or stopping)."""
        return w.phase is Phase.RUNNING and cls._alive(w)

    @classmethod
    def _phase(cls, w: _Worker) -> Phase:
        if w.phase in (Phase.RUNNING, Phase.RETIRING) and not cls._alive(w):
            return Phase.DOWN  # exited; its watcher has not caught up yet
        return w.phase

    def _command_line(self, w: _Worker) -> list[str]:
        return [
            self.python, "-m", "callcenter.telephony.worker",
            "--id", w.name, "--leg-prefix", f"{w.name}.{w.generation}",
            "--address", self.address, "--port", str(w.port),
            "--rtp-start", str(w.rtp_start), "--rtp-end", str(w.rtp_end),
            "--legs", str(self.legs), "--max-rate", f"{self.max_rate:g}",
            "--decide-timeout", f"{self.decide_timeout:g}", "--rtp-timeout", f"{self.rtp_timeout:g}",
            "--session-expires", str(self.session_expires), *self.worker_args,
        ]

    async def _spawn(self, w: _Worker, timeout: float) -> None:
        w.generation += 1
        w.ready = False
        w.phase = Phase.STARTING
        w.stderr_tail.clear()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        w.started = asyncio.get_running_loop().create_future()
        w.last_seen = time.monotonic()
        w.proc = await asyncio.create_subprocess_exec(
            *self._command_line(w), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True, limit=p.MAX_LINE + 4096,
        )
        proc = w.proc
        reader = asyncio.create_task(self._read_events(w, proc), name=f"{w.name}-events")
        errors = asyncio.create_task(self._read_stderr(w, proc), name=f"{w.name}-stderr")
        w.watcher = asyncio.create_task(self._watch(w, proc, reader, errors), name=f"{w.name}-watch")
        w.tasks = [reader, errors, w.watcher]
        try:
            await asyncio.wait_for(asyncio.shield(w.started), timeout)
        except (asyncio.TimeoutError, WorkerStartError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.gather(*w.tasks, return_exceptions=True)
            raise WorkerStartError(f"worker {w.name} (SIP port {w.port}) did not start:\n{self.worker_log(w.name)}") from None
        w.tasks.append(asyncio.create_task(self._pinger(w, proc), name=f"{w.name}-ping"))

    async def _read_events(self, w: _Worker, proc) -> None:
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:
                log.error("%s: over-long event line dropped", w.name)
                continue
            if not line:
                return
            w.last_seen = time.monotonic()
            try:
                event = p.decode(line)
            except p.MalformedMessage as exc:
                log.error("%s: bad event line: %s", w.name, log_safe(exc))
                continue
            if not isinstance(event, p.Event) or isinstance(event, p.WorkerDied):
                log.error("%s: unexpected message %s", w.name, type(event).__name__)
                continue
            if event.worker != w.name:
                event = dataclasses.replace(event, worker=w.name)
            self._track(w, event)
            if isinstance(event, p.Pong) and event.command_id.startswith(("ping-", "legs-")):
                query = self._leg_queries.get(event.command_id)
                if query is not None and not query.done():
                    query.set_result(dict(event.legs or {}))
                continue  # the pool's own pings (liveness, live_legs); a Ping sent with send() gets its Pong
            if self._drops and self._drop(w, event):
                continue
            self.events.put_nowait(event)
            if self.sizing is not None:
                self._wake.set()

    def _track(self, w: _Worker, event: p.Event) -> None:
        if isinstance(event, p.WorkerStarted):
            w.ready = True
            w.phase = Phase.RUNNING
            w.free = event.legs
            w.in_use = w.reserved = 0
            w.started_at = w.idle_since = time.monotonic()
            if w.started is not None and not w.started.done():
                w.started.set_result(None)
        elif isinstance(event, p.CapacityChanged):
            w.free = event.free_legs
            w.in_use = event.in_use
            w.reserved = event.reserved
            if w.in_use or w.reserved:
                w.idle_since = None
            elif w.idle_since is None:
                w.idle_since = time.monotonic()
        elif isinstance(event, p.CallArrived):
            self._leg_worker[event.leg] = w.name
            w.idle_since = None
            self._note_demand(2)
        elif isinstance(event, p.CallRefused):
            self._note_demand(2)  # demand all the same: it is why workers are started ahead
        elif isinstance(event, (p.LegEnded, p.LegFailed, p.LegRinging, p.LegAnswered)):
            if isinstance(event, (p.LegEnded, p.LegFailed)):
                self._leg_worker.pop(event.leg, None)
            if self._dialled:
                for cid in [c for c, leg in self._dialled.items() if leg == event.leg]:
                    del self._dialled[cid]  # the worker took the Dial
        elif isinstance(event, p.RecordingFinished):
            self._recording_worker.pop(event.conversation, None)
        elif isinstance(event, p.CommandFailed):
            leg = self._dialled.pop(event.command_id, None)
            if leg is not None and event.command == "Dial":
                self._leg_worker.pop(leg, None)  # the leg was never created

    async def _read_stderr(self, w: _Worker, proc) -> None:
        wlog = logging.getLogger(f"callcenter.telephony.worker.{w.name}")
        while True:
            try:
                line = await proc.stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            text = log_safe(line.rstrip(b"\r\n"))  # pjsip quotes packets it cannot parse
            w.stderr_tail.append(text)
            wlog.info("%s", text)

    async def _pinger(self, w: _Worker, proc) -> None:
        while proc.returncode is None:
            await asyncio.sleep(self.ping_interval)
            if proc.returncode is not None or self._stopping:
                return
            if time.monotonic() - w.last_seen > self.hang_timeout:
                log.error("%s: no event for %.0f s: killing it", w.name, self.hang_timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return
            try:
                proc.stdin.write(p.encode(p.Ping(id=f"ping-{next(self._ids)}")))
            except (ConnectionError, RuntimeError, OSError):
                return

    async def _watch(self, w: _Worker, proc, reader: asyncio.Task, errors: asyncio.Task) -> None:
        code = await proc.wait()
        await asyncio.gather(reader, errors, return_exceptions=True)  # every event it sent first
        was_ready = w.ready
        w.ready = False
        if w.started is not None and not w.started.done():
            w.started.set_exception(WorkerStartError(f"exited with {code}"))
            w.started.exception()  # retrieved: the starter reports it
        lost = self.legs_of(w.name)
        for leg in lost:
            self._leg_worker.pop(leg, None)
        for conversation, owner in list(self._recording_worker.items()):
            if owner == w.name:
                del self._recording_worker[conversation]
        for cid, leg in list(self._dialled.items()):
            if leg in lost:
                self._dialled.pop(cid, None)
        if self._stopping:
            w.phase = Phase.STOPPED
            return
        if w.phase is Phase.STOPPING:  # retired: no death, nothing to restart
            w.phase = Phase.STOPPED
            w.idle_since = None
            log.info("%s (pid %s) retired, exit code %s", w.name, proc.pid, code)
            if lost:  # nothing should be left: a leg that came during the shutdown ended with it
                log.error("%s: %d leg(s) still listed when it retired", w.name, len(lost))
                self.events.put_nowait(p.WorkerDied(worker=w.name, legs=tuple(lost), returncode=code,
                                                    restarting=False))
            self._wake.set()
            return
        w.phase = Phase.DOWN
        if not was_ready:
            return  # never came up: whoever spawned it (start(), _restart, _start_slot) deals with that
        log.error("%s (pid %s) exited with %s; %d leg(s) lost", w.name, proc.pid, code, len(lost))
        self.events.put_nowait(p.WorkerDied(worker=w.name, legs=tuple(lost), returncode=code, restarting=True))
        self._keep(self._restart(w), f"{w.name}-restart")
        self._wake.set()

    async def _restart(self, w: _Worker) -> None:
        low, high = self.restart_backoff
        lived = time.monotonic() - w.started_at if w.started_at else 0.0
        w.backoff = low if lived > 60 or w.backoff == 0 else min(high, w.backoff * 2)
        await asyncio.sleep(w.backoff)
        while not self._stopping:
            w.restarts += 1
            try:
                await self._spawn(w, timeout=30.0)
                log.warning("%s restarted (generation %d)", w.name, w.generation)
                return
            except WorkerStartError as exc:
                log.error("%s", exc)
                w.backoff = min(high, max(low, w.backoff * 2))
                await asyncio.sleep(w.backoff)

    async def _stop_worker(self, w: _Worker) -> None:
        proc = w.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                proc.stdin.write(p.encode(p.Shutdown(id="shutdown", grace=max(0.5, self.stop_timeout - 1.5))))
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 2.0)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        for task in w.tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*w.tasks, return_exceptions=True)
        w.tasks = []
        w.ready = False
        w.phase = Phase.STOPPED

    # ------------------------------------------------------------------------- elastic sizing

    def _keep(self, coro, name: str) -> asyncio.Task:
        """A background task of the pool, cancelled by :meth:`stop`."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _note_demand(self, legs: int) -> None:
        if self.sizing is not None:
            self._demand.note(time.monotonic(), legs)
            self._wake.set()

    def note_turned_away(self) -> None:
        """A caller the SIP front turned away (every worker full): demand the pool did not see."""
        self._note_demand(2)

    def _slot_states(self, now: float) -> list[SlotState]:
        legs_on: dict[str, int] = {}
        for owner in itertools.chain(self._leg_worker.values(), self._recording_worker.values()):
            legs_on[owner] = legs_on.get(owner, 0) + 1
        states = []
        for w in self._workers.values():
            known = legs_on.get(w.name, 0)
            states.append(SlotState(w.name, self._phase(w), free=w.free, in_use=max(w.in_use, known),
                                    reserved=w.reserved, idle_since=None if known else w.idle_since))
        return states

    async def _size_loop(self) -> None:
        assert self.sizing is not None
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sizing_interval)
            self._wake.clear()
            try:
                self._resize(time.monotonic())
            except Exception:  # noqa: BLE001 - sizing must go on whatever one decision did
                log.exception("worker pool sizing failed")
            await asyncio.sleep(0.05)  # a burst of events costs one decision per 50 ms

    def _resize(self, now: float) -> None:
        assert self.sizing is not None
        demand = self._demand.rate(now)
        for decision in decide(self._slot_states(now), demand, self.sizing, now):
            if isinstance(decision, StartWorkers):
                for name in decision.slots:
                    w = self._workers[name]
                    if w.phase is Phase.STOPPED:
                        w.phase = Phase.STARTING  # counted as coming room from now on
                        self._keep(self._start_slot(w), f"{name}-start")
                log.info("starting %s: %d free legs wanted (demand %.1f legs/s)", ", ".join(decision.slots),
                         target_free_legs(demand, self.sizing), demand)
            elif isinstance(decision, RetireWorker):
                w = self._workers[decision.slot]
                if w.phase is Phase.RUNNING:
                    w.phase = Phase.RETIRING
                    w.retire_epoch += 1
                    log.info("retiring %s: idle for %.0f s", w.name, now - (w.idle_since or now))
                    self._keep(self._retire(w, w.retire_epoch), f"{w.name}-retire")
            elif isinstance(decision, CancelRetirement):
                self._call_back(self._workers[decision.slot], now)

    def _call_back(self, w: _Worker, now: float) -> None:
        """A retiring worker back in service; its idle clock starts again (no quick second retirement)."""
        if w.phase is not Phase.RETIRING:
            return
        w.phase = Phase.RUNNING
        w.retire_epoch += 1
        if w.idle_since is not None:
            w.idle_since = now
        log.info("%s back in service (retirement called off)", w.name)

    async def _start_slot(self, w: _Worker) -> None:
        low, high = self.restart_backoff
        try:
            await self._spawn(w, timeout=30.0)
            w.backoff = 0.0
            log.info("%s started (generation %d)", w.name, w.generation)
        except WorkerStartError as exc:
            w.phase = Phase.DOWN
            w.backoff = min(high, max(low, w.backoff * 2))
            log.error("%s; tried again in %.1f s at the earliest", exc, w.backoff)
            await asyncio.sleep(w.backoff)
            if w.phase is Phase.DOWN and not self._stopping:
                w.phase = Phase.STOPPED

    async def _retire(self, w: _Worker, epoch: int) -> None:
        """Out of the front's list, a grace period for INVITEs on their way, then Shutdown."""

        def still() -> bool:
            return w.phase is Phase.RETIRING and w.retire_epoch == epoch and not self._stopping

        if self.on_retiring is not None:
            try:
                await asyncio.wait_for(self.on_retiring(w.name), 5.0)
            except Exception as exc:  # noqa: BLE001 - the front's own poll takes it out anyway
                log.warning("%s: taking it out of the SIP front's list failed: %s", w.name, exc)
        await asyncio.sleep(self.retire_grace)
        if not still():
            return
        states = {s.name: s for s in self._slot_states(time.monotonic())}
        if states[w.name].busy:
            self._call_back(w, time.monotonic())  # a call landed after all: it stays
            return
        proc, watcher = w.proc, w.watcher
        if proc is None or watcher is None or proc.returncode is not None:
            return  # gone meanwhile: its watcher took care of it
        w.phase = Phase.STOPPING
        with contextlib.suppress(Exception):
            proc.stdin.write(p.encode(p.Shutdown(id=f"retire-{w.name}", grace=max(0.5, self.stop_timeout - 1.5))))
        try:
            await asyncio.wait_for(asyncio.shield(watcher), self.stop_timeout)
        except asyncio.TimeoutError:
            for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    await asyncio.wait_for(asyncio.shield(watcher), wait)
                    break
                except asyncio.TimeoutError:
                    continue
        tasks, w.tasks = w.tasks, []
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class _Failure:
    reason: str


# ------------------------------------------------------------------------------ in-memory twin


class FakeTelephony:
    """The in-memory twin of :class:`WorkerPool` for control-process tests.

    ``commands`` lists every command sent (with its id). :meth:`inject` feeds an event as if a
    worker had sent it (and keeps the leg bookkeeping and free legs like the real pool);
    :meth:`arrive` makes a caller arrive. Nothing is dialled or played for real. :meth:`live_legs`
    lists the legs it keeps, in ``leg_states`` (``incoming`` until answered, ``early`` when dialled,
    ``confirmed`` once answered, as a worker would say); workers in ``silent`` do
    not answer.
    """

    def __init__(self, workers: int = 1, *, legs: int = 4) -> None:
        self.events: asyncio.Queue[p.Event] = asyncio.Queue()
        self.commands: list[tuple[str, p.Command]] = []
        self.started = False
        self.stopped = False
        self._budgets = {f"w{i + 1}": LegBudget(legs) for i in range(workers)}
        self._leg_worker: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self.leg_states: dict[str, str] = {}
        self.silent: set[str] = set()
        self._drops: list[tuple[type, str | None]] = []

    async def start(self) -> None:
        self.started = True

    async def live_legs(self, timeout: float = 1.0) -> dict[str, dict[str, str] | None]:
        legs: dict[str, dict[str, str] | None] = {name: {} for name in self._budgets}
        for leg, worker in self._leg_worker.items():
            legs.setdefault(worker, {})[leg] = self.leg_states.get(leg, "confirmed")
        return {name: None if name in self.silent else held for name, held in legs.items()}

    def drop_next(self, event_type: type[p.Event], leg: str | None = None) -> None:
        """Lose the next injected event of ``event_type`` (for ``leg``): bookkept, never delivered."""
        self._drops.append((event_type, leg))

    async def stop(self) -> None:
        self.stopped = True

    def free_legs(self, worker: str | None = None) -> int:
        chosen = [self._budgets[worker]] if worker else self._budgets.values()
        return sum(b.free for b in chosen)

    def worker_of(self, leg: str) -> str | None:
        return self._leg_worker.get(leg)

    def pick_worker(self, need: int = 2) -> str | None:
        name = max(self._budgets, key=lambda n: self._budgets[n].free)
        return name if self._budgets[name].free >= need else None

    def send(self, command: p.Command, *, worker: str | None = None) -> str:
        if not command.id:
            command = dataclasses.replace(command, id=f"c{next(self._ids)}")
        leg = getattr(command, "leg", None) or getattr(command, "a", None)
        target = worker or (self._leg_worker.get(leg) if leg else None) or "w1"
        self.commands.append((target, command))
        if isinstance(command, p.AnswerCall):
            self.leg_states[command.leg] = "confirmed"
        return command.id

    def dial(self, uri: str, *, peer: str | None = None, caller_id: str = "", display_name: str = "",
             timeout: float = 30.0, worker: str | None = None) -> str:
        target = worker or (self._leg_worker.get(peer) if peer else self.pick_worker(2))
        leg = f"{target or 'none'}.1-d{next(self._seq)}"
        command = p.Dial(id=f"c{next(self._ids)}", leg=leg, uri=uri, caller_id=caller_id,
                         display_name=display_name, timeout=timeout, peer=peer)
        self.commands.append((target or "", command))
        budget = self._budgets.get(target) if target else None
        ok = budget is not None and (budget.attach(leg, peer) if peer else budget.admit(leg))
        if ok:
            self._leg_worker[leg] = target
            self.leg_states[leg] = "early"  # ringing until a LegAnswered is injected
        else:
            self.events.put_nowait(p.CommandFailed(command_id=command.id, command="Dial",
                                                   reason="no free leg", leg=leg))
        return leg

    def sent(self, kind: type[p.Command] | None = None) -> list[p.Command]:
        """The commands sent so far, optionally only those of one type."""
        return [c for _, c in self.commands if kind is None or isinstance(c, kind)]

    def inject(self, event: p.Event) -> None:
        """Deliver ``event`` as if its worker (default ``w1``) had sent it."""
        if not event.worker:
            event = dataclasses.replace(event, worker="w1")
        budget = self._budgets.setdefault(event.worker, LegBudget(4))
        if isinstance(event, p.CallArrived):
            if not budget.admit(event.leg):
                raise AssertionError(f"{event.worker} has no room for {event.leg}")
            self._leg_worker[event.leg] = event.worker
            self.leg_states[event.leg] = "incoming"
        elif isinstance(event, p.LegAnswered):
            self.leg_states[event.leg] = "confirmed"
        elif isinstance(event, (p.LegEnded, p.LegFailed)):
            budget.release(event.leg)
            self._leg_worker.pop(event.leg, None)
            self.leg_states.pop(event.leg, None)
        elif isinstance(event, p.CommandFailed) and event.command == "Dial" and event.leg:
            owner = self._budgets.get(self._leg_worker.pop(event.leg, "") or "")  # a refused dial holds no leg
            if owner is not None:
                owner.release(event.leg)
        elif isinstance(event, p.WorkerDied):
            for leg in event.legs:
                budget.release(leg)
                self._leg_worker.pop(leg, None)
        for i, (kind, leg) in enumerate(self._drops):
            if isinstance(event, kind) and (leg is None or getattr(event, "leg", None) == leg):
                del self._drops[i]
                return
        self.events.put_nowait(event)

    def arrive(self, ani: str = "13800138000", dnis: str = "4000", display_name: str = "",
               worker: str = "w1", **extra) -> str:
        """A caller arrives: injects :class:`CallArrived` and returns the new leg id."""
        leg = f"{worker}.1-{next(self._seq)}"
        self.inject(p.CallArrived(worker=worker, leg=leg, call_id=f"fake-{leg}", ani=ani, dnis=dnis,
                                  display_name=display_name, **extra))
        return leg
