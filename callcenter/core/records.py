"""The record writer: every write to the contact store goes through one thread, in order, never
blocking the call flow's loop; and queue_log, where each call that entered a queue ends exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from callcenter.core import queue_log as ql
from callcenter.core.ports import ContactStore, QueueLogSink

__all__ = ["RecordWriter"]

log = logging.getLogger("callcenter.core.contact_center")


class RecordWriter:
    """Ordered, non-blocking record writes; queue_log with its exactly-once closing rule."""

    def __init__(self, store: ContactStore, queue_log: QueueLogSink | None, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.queue_log = queue_log
        self.clock = clock
        # queue_log calls entered and not yet closed -> whether they were connected: every one gets
        # exactly one closing event, on faults too
        self.queue_open: dict[str, bool] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contact-store")
        self._pending: set[asyncio.Future] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the writer thread after every write queued before it, and wait for its result."""
        loop = self._loop or asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, fn)

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue a record write on the writer thread: ordered, and never blocking the loop."""
        loop = self._loop or asyncio.get_running_loop()
        future = loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs))
        self._pending.add(future)

        def done(f: asyncio.Future) -> None:
            self._pending.discard(f)
            if not f.cancelled() and f.exception() is not None:
                log.error("record write %s failed: %s", getattr(fn, "__name__", fn), f.exception())

        future.add_done_callback(done)

    async def drain(self) -> None:
        """Wait until every record write queued so far is done (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def shutdown(self) -> None:
        self._writer.shutdown(wait=True)

    def qlog(self, call_id: str | None, queue: str | None, agent: str | None, event: str, *data: Any,
             extra: dict[str, Any] | None = None) -> None:
        """One queue_log line (file and table); a call enters once and closes once, whatever is asked."""
        if call_id is not None:
            if event == ql.ENTERQUEUE:
                if call_id in self.queue_open:
                    return  # already waiting (a transfer to an agent who became busy): entered once
                self.queue_open[call_id] = False
            elif event == ql.CONNECT and call_id in self.queue_open:
                self.queue_open[call_id] = True
            if event == ql.CONNECT or event in ql.CLOSING:
                if call_id not in self.queue_open:
                    # an agent's own dial (never queued), or a call already closed: no second closing line
                    log.debug("queue_log: no %s for call %s, which is not in a queue", event, call_id)
                    return
                if event != ql.CONNECT:
                    self.queue_open.pop(call_id, None)
        at = self.clock()
        self.write(self.store.log_queue_event, at=at, event=event, queue=queue, call_id=call_id, agent_id=agent,
                   data={"data": [str(d) for d in data], **(extra or {})})
        if self.queue_log is not None:
            try:
                self.queue_log.write(ql.line(at, call_id, queue, agent, event, *data))
            except OSError as exc:
                log.error("queue_log file: %s", exc)

    def close_queue_call(self, record: str, queue: str | None, agent_id: str | None, queued_at: dt.datetime | None,
                         answered_at: dt.datetime | None, reason: str) -> None:
        """A call still open in queue_log when it ends (worker death, shutdown): one closing event with the reason.

        Connected: ``COMPLETECALLER|hold|talk|1`` (Asterisk has no event for a failure; the reason is in
        the queue_events row); never connected: ``ABANDON|1|1|wait``.
        """
        connected = self.queue_open.get(record)
        if connected is None:
            return
        now = self.clock()
        wait = int(((answered_at or now) - queued_at).total_seconds()) if queued_at else 0
        if connected:
            talk = int((now - answered_at).total_seconds()) if answered_at else 0
            self.qlog(record, queue, agent_id, ql.COMPLETECALLER, wait, talk, 1, extra={"reason": reason})
        else:
            self.qlog(record, queue, None, ql.ABANDON, 1, 1, wait, extra={"reason": reason})

    async def close_left_open(self, since: dt.datetime) -> int:
        """At start-up: close every queue_log call a previous run left open (crash), once each."""
        left_open = await self.run(lambda: self.store.open_queue_calls(since=since))
        for entry in left_open:
            self.queue_open[entry["call_id"]] = entry["connected_at"] is not None
            if entry["connected_at"] is not None:
                self.qlog(entry["call_id"], entry["queue"], entry["agent_id"], ql.COMPLETECALLER, 0, 0, 1,
                          extra={"reason": "server_restart"})
            else:
                self.qlog(entry["call_id"], entry["queue"], None, ql.ABANDON, 1, 1, 0,
                          extra={"reason": "server_restart"})
        return len(left_open)
