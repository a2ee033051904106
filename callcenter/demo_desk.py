"""Simulated agent desks for ``callcenter demo-calls``.

An agent whose phone is a SIPp UAS has nobody at a console, yet a queue whose after-call work is
``until_disposed`` keeps the agent in wrap-up until the call's disposition is saved. A simulated
desk logs in over CTI as that agent and, a moment after each ``call.ended``, saves a plausible
disposition for that event's ``call_id`` (never for "the latest call": calls overlap). It also
counts what its screen pops showed, for the end-of-demo summary.

When a person logs in as the agent from a real console, the server closes the desk's session
("logged in elsewhere") and the desk stops for good: the agent's calls are that person's now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.cti.client import AgentLink
from callcenter.cti.errors import CtiConnectionError, CtiRequestError

log = logging.getLogger("callcenter.demo_desk")

CLIENT = "callcenter-demo-desk"
HANDED_OVER = "logged in from another console"  # AgentLink's detail when the server replaced the session
# How often a desk picks a code, by the code's outcome; every configured code is possible.
OUTCOME_WEIGHTS = {"resolved": 60, "sale": 12, "no_sale": 6, "callback": 10, "unresolved": 5, "other": 3}
NOTES = {
    "resolved": ["explained the settings", "walked through a reset", "confirmed the order status",
                 "sent a copy of the invoice", "booked the installation"],
    "sale": ["sold an extended warranty", "upgraded to the larger model", "bundle discount applied"],
    "no_sale": ["price too high", "will compare with other brands", "waiting for a promotion"],
    "callback": ["call back with the technician's availability", "customer busy, call back tomorrow"],
    "unresolved": ["escalated to the team lead", "waiting for a spare part", "refund requested"],
    "other": ["wrong number", "asked for the nearest store", "bad line, the caller hung up"],
}
E164 = re.compile(r"\+\d{6,15}")


@dataclass
class PopSeen:
    """The facts of one screen pop that the summary counts (no caller text is kept)."""

    kind: str  # customer (one customer), choose (several share the number), new (nobody has it)
    orders: int = 0
    open_cases: int = 0
    vip: bool = False
    blacklisted: bool = False


@dataclass
class DeskTally:
    """What the simulated desks saw and did, shared by all of them."""

    pops: dict[str, PopSeen] = field(default_factory=dict)  # by call id: a call offered twice counts once
    dispositions: Counter = field(default_factory=Counter)  # saved for calls offered to the desks, by code
    callbacks: int = 0
    earlier: int = 0  # calls still owed from before the desks started (e.g. a previous run), disposed at login
    refused: int = 0  # saves the server refused (e.g. already saved from a console)

    def count(self, **facts: Any) -> int:
        return sum(1 for pop in self.pops.values() if all(getattr(pop, k) == v for k, v in facts.items()))

    @property
    def known(self) -> int:
        return self.count(kind="customer")

    @property
    def with_orders(self) -> int:
        return sum(1 for pop in self.pops.values() if pop.kind == "customer" and pop.orders > 0)


def pop_facts(pop: dict[str, Any]) -> PopSeen:
    profile = pop.get("profile") if isinstance(pop.get("profile"), dict) else {}
    orders = profile.get("order_count")
    if not isinstance(orders, int):
        orders = len(profile.get("orders") or ())
    cases = [c for c in profile.get("cases") or () if isinstance(c, dict) and c.get("status") in ("open", "pending")]
    return PopSeen(kind=str(pop.get("kind") or "new"), orders=orders, open_cases=len(cases),
                   vip=profile.get("tier") == "vip", blacklisted=bool(profile.get("blacklisted")))


class SimulatedDesk:
    """One agent's desk: an :class:`AgentLink` that saves a disposition 1-3 s after each call ends."""

    def __init__(self, url: str, agent_id: str, pin: str, tally: DeskTally, *, rng: random.Random,
                 delay: tuple[float, float] = (1.0, 3.0)) -> None:
        self.agent_id = agent_id
        self.tally = tally
        self.rng = rng
        self.delay = delay
        self.state = "starting"  # then AgentLink's statuses; "handed over" or "failed" are final
        self.detail = ""
        self._codes: list[dict[str, Any]] = []
        self._zone: dt.tzinfo = dt.UTC
        self._calls: dict[str, dict[str, Any]] = {}  # call id -> {"ani", "pop"}: what the desk was shown
        self._disposing: dict[str, asyncio.Task] = {}
        self._task: asyncio.Task | None = None
        self.link = AgentLink(url, agent_id, pin, client=CLIENT, on_event=self._on_event, on_login=self._on_login,
                              on_status=self._on_status, backoff=(0.3, 1.0, 2.0))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.link.run(), name=f"desk-{self.agent_id}")

    @property
    def active(self) -> bool:
        """Still driving the agent (not handed over to a person, not refused)."""
        return self.state not in ("handed over", "failed")

    @property
    def busy(self) -> bool:
        """A disposition is about to be saved."""
        return any(not task.done() for task in self._disposing.values())

    async def stop(self) -> None:
        for task in self._disposing.values():
            task.cancel()
        await self.link.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    # ------------------------------------------------------------------ link callbacks

    def _on_status(self, status: str, detail: str) -> None:
        if not self.active:
            return
        if status == "failed":
            self.state = "handed over" if detail == HANDED_OVER else "failed"
            for task in self._disposing.values():  # the person at the console disposes from now on
                task.cancel()
            log.info("desk %s: %s (%s)", self.agent_id, self.state, detail)
        else:
            self.state = status
        self.detail = detail

    def _on_login(self, data: dict[str, Any]) -> None:
        self._codes = [d for d in data.get("dispositions") or () if isinstance(d, dict) and d.get("code")]
        try:
            self._zone = ZoneInfo(str(data.get("timezone") or "UTC"))
        except (ValueError, KeyError):
            self._zone = dt.UTC
        # Calls still owed (ended while the link was down, or before the desk started) are each named.
        for owed in (data.get("snapshot") or {}).get("owed") or ():
            if isinstance(owed, dict) and owed.get("call_id"):
                self._calls.setdefault(str(owed["call_id"]), {"ani": owed.get("ani")})
                self._schedule(str(owed["call_id"]))

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        call_id = message.get("call_id")
        if not isinstance(call_id, str):
            return
        if kind == "call.offered":
            self._calls[call_id] = {"ani": message.get("ani")}
        elif kind == "call.pop" and isinstance(message.get("pop"), dict):
            self._calls.setdefault(call_id, {})["pop"] = message["pop"]
            self.tally.pops[call_id] = pop_facts(message["pop"])
        elif kind == "call.ended":
            self._schedule(call_id)

    # ------------------------------------------------------------------ dispositions

    def _schedule(self, call_id: str) -> None:
        if call_id not in self._disposing and self.active:
            self._disposing[call_id] = asyncio.get_running_loop().create_task(self._dispose(call_id))

    async def _dispose(self, call_id: str) -> None:
        await asyncio.sleep(self.rng.uniform(*self.delay))
        fields = self.choose(call_id)
        for _ in range(40):  # the link may be reconnecting: the call stays owed meanwhile
            if not self.active:
                return
            try:
                reply = await self.link.request("disposition.save", **fields)
            except CtiConnectionError:
                await asyncio.sleep(0.5)
                continue
            except CtiRequestError as exc:
                self.tally.refused += 1
                log.warning("desk %s: disposition %s of call %s refused: %s", self.agent_id, fields["code"], call_id,
                            exc.message)
                plain = self._plain_code()
                if exc.code != "refused" or plain is None or fields["code"] == plain:
                    return
                fields = {"call_id": call_id, "code": plain, "notes": fields.get("notes", "")}
                continue
            if call_id in self.tally.pops:
                self.tally.dispositions[fields["code"]] += 1
            else:
                self.tally.earlier += 1
            if reply.get("callback"):
                self.tally.callbacks += 1
            self._calls.pop(call_id, None)
            return

    def _plain_code(self) -> str | None:
        for code in self._codes:
            if not code.get("requires_callback"):
                return str(code["code"])
        return None

    def choose(self, call_id: str) -> dict[str, Any]:
        """A plausible disposition for the call: a weighted code, notes, and a callback when the code needs one."""
        seen = self._calls.get(call_id, {})
        pop = seen.get("pop") or {}
        number = pop.get("number") or seen.get("ani")
        number = number if isinstance(number, str) and E164.fullmatch(number) else None
        codes = [c for c in self._codes if number or not c.get("requires_callback")] or \
            [{"code": "resolved", "outcome": "resolved"}]
        weights = [OUTCOME_WEIGHTS.get(str(c.get("outcome")), OUTCOME_WEIGHTS["other"]) for c in codes]
        code = self.rng.choices(codes, weights=weights)[0]
        outcome = str(code.get("outcome") or "other")
        notes = self.rng.choice(NOTES.get(outcome, NOTES["other"]))
        case = next((c for c in ((pop.get("profile") or {}).get("cases") or ())
                     if isinstance(c, dict) and c.get("status") in ("open", "pending")), None)
        if case is not None and case.get("case_id") is not None:
            notes += f"; followed up open {case.get('kind', '')} case #{case['case_id']}"
        fields: dict[str, Any] = {"call_id": call_id, "code": str(code["code"]), "notes": notes}
        if code.get("requires_callback") and number:
            now = dt.datetime.now(self._zone)
            due = (now + dt.timedelta(days=1)).replace(hour=self.rng.choice((10, 11, 14, 15, 16)), minute=0,
                                                       second=0, microsecond=0)
            fields["callback"] = {"number": number, "due_from": due.isoformat(),
                                  "due_until": (due + dt.timedelta(hours=2)).isoformat(),
                                  "owner": self.rng.choice(("me", "anyone")), "notes": notes}
        return fields


class SimulatedDesks:
    """A simulated desk for each agent driven by a simulated phone."""

    def __init__(self, url: str, agent_ids: Iterable[str], pin: str, *, seed: int = 42) -> None:
        self.tally = DeskTally()
        self.desks = {aid: SimulatedDesk(url, aid, pin, self.tally, rng=random.Random(f"desk:{seed}:{aid}"))
                      for aid in agent_ids}

    def start(self) -> None:
        for desk in self.desks.values():
            desk.start()

    def active_agents(self) -> list[str]:
        return [aid for aid, desk in self.desks.items() if desk.active]

    @property
    def busy(self) -> bool:
        return any(desk.busy for desk in self.desks.values())

    def describe(self) -> str:
        """One line for the live status: who is simulated, who was handed over, what the desks did."""
        said = {"up": "simulated", "down": "reconnecting", "handed over": "handed over to a console",
                "failed": "could not log in"}
        by_state: dict[str, list[str]] = {}
        for aid, desk in self.desks.items():
            by_state.setdefault(said.get(desk.state, desk.state), []).append(aid)
        states = "; ".join(f"{state} {', '.join(ids)}" for state, ids in by_state.items())
        t = self.tally
        return (f"desks: {states} · pops {len(t.pops)} ({t.known} known, {t.count(kind='new')} unknown)"
                f" · dispositions {sum(t.dispositions.values())}, callbacks {t.callbacks}")

    async def stop(self) -> None:
        await asyncio.gather(*(desk.stop() for desk in self.desks.values()), return_exceptions=True)
