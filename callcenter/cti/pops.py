"""Screen-pop assembly: what the agent sees the moment a call is offered, looked up in a worker thread.

The pop is built from the offer (number, IVR path, queue, wait) and the customer directory; a
caller identified by number alone is recorded on the call once the pop is on its way. Assembled
pops are kept for a while so a console that reconnects mid-call gets the same one at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from callcenter.config import Settings
from callcenter.core.ports import CenterPort
from screenpop.numbers import normalize
from screenpop.pop import CallContext, ScreenPop
from screenpop.wire import to_wire

__all__ = ["CustomerDirectory", "PopAssembler"]

log = logging.getLogger("callcenter.cti")

POPS_KEPT = 200  # assembled pops kept for consoles that reconnect mid-call


class CustomerDirectory(Protocol):
    """The customer database as the CTI server uses it (``callcenter.db.directory.SqlCustomerDirectory``).

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


class PopAssembler:
    """Builds ``call.pop`` messages and hands them to ``deliver(agent_id, message)``."""

    def __init__(self, settings: Settings, directory: CustomerDirectory | None, *,
                 center: Callable[[], CenterPort | None], clock: Callable[[], dt.datetime], repeat_hours: float,
                 deliver: Callable[[str, dict[str, Any]], None],
                 spawn: Callable[[Coroutine[Any, Any, None]], Any]) -> None:
        self.settings = settings
        self.directory = directory
        self._center = center
        self.clock = clock
        self.repeat_hours = repeat_hours
        self.deliver = deliver
        self.spawn = spawn
        self._pops: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def forget(self, call_id: str) -> None:
        """The call's customer changed (linked or created): the next pop is assembled anew."""
        self._pops.pop(call_id, None)

    def context(self, offer: dict[str, Any]) -> CallContext:
        path = offer.get("ivr_path") or []
        queue = offer.get("queue")
        return CallContext(
            call_id=offer["call_id"], ani=offer.get("ani"), display_name=offer.get("display_name"), queue=queue,
            queue_name=self.settings.queue_display_name(queue) if queue else None,
            waited_seconds=offer.get("waited"),
            ivr_path=tuple(step for step in path if isinstance(step, dict)),
            callback_number=offer.get("callback"),
        )

    async def resend(self, agent_id: str, call: dict[str, Any]) -> None:
        """A console that reconnects mid-call gets the pop again (kept, or assembled anew from the snapshot)."""
        kept = self._pops.get(call["call_id"])
        if kept is not None:
            self.deliver(agent_id, kept)
            return
        await self.send(agent_id, {"type": "call.offered", **call})

    async def send(self, agent_id: str, offer: dict[str, Any]) -> None:
        call_id = offer["call_id"]
        context = self.context(offer)
        number = offer.get("callback") or offer.get("ani")
        parsed = normalize(number, self.settings.center.default_region, strict=False) if number else None
        customer_id = offer.get("customer_id")
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
                    center = self._center()
                    if center is not None:
                        center.link_customer(call_id, pop.customer_id)
                    self.spawn(self._link_quietly(call_id, pop.customer_id))
            except Exception as exc:
                log.exception("screen pop for call %s failed", call_id)
                message.update(pop=to_wire(ScreenPop(kind="new", number=parsed.e164 if parsed else None, call=context)),
                               error=f"customer look-up failed: {type(exc).__name__}")
        self._pops[call_id] = message
        self._pops.move_to_end(call_id)
        while len(self._pops) > POPS_KEPT:
            self._pops.popitem(last=False)
        self.deliver(agent_id, message)

    async def _link_quietly(self, call_id: str, customer_id: int) -> None:
        try:
            await asyncio.to_thread(self.directory.link, call_id, customer_id)
        except Exception:
            log.exception("could not record customer %s on call %s", customer_id, call_id)
