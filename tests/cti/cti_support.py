"""A whole contact center on loopback for CTI and console tests.

Real pieces: the ContactCenter call flow, the CTI server on 127.0.0.1 (a free port), an SQLite
database migrated with Alembic, the SQL interaction store and customer directory. Only the
telephony is the in-memory twin (FakeTelephony): a test makes callers arrive and phones answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

from callcenter.config import load
from callcenter.core.contact_center import ContactCenter
from callcenter.cti.auth import LoginPolicy
from callcenter.cti.client import CtiClient
from callcenter.cti.server import CtiServer
from callcenter.db import Database, upgrade
from callcenter.db.directory import SqlCustomerDirectory
from callcenter.db.agents import sync_agents
from callcenter.db.interactions import SqlInteractionStore
from callcenter.db.models import Callback, Customer, Disposition, Interaction, Order, OrderItem, PhoneNumber, Product
from callcenter.prompts import load_menu
from callcenter.core import telephony_protocol as tp
from callcenter.telephony.pool import FakeTelephony
from ivr.ports import InMemorySelfService
from tests.conftest import SAMPLE_CONFIG

REPO = Path(__file__).resolve().parents[2]
# A Monday morning in the center's zone (Asia/Shanghai), as UTC: the IVR is open.
OPEN = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
PINS = {"1001": "1234", "1002": "2345", "1003": "3456", "1004": "4567", "1005": "5678", "9001": "9999"}
FAST_POLICY = LoginPolicy(max_failures=3, max_failures_per_address=50, window=60, lockout=30, failure_delay=0,
                          max_failures_per_connection=10)


def moving_clock(start: dt.datetime):
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


class Stack:
    """Contact center + CTI server + SQLite; ``await start()`` / ``await stop()``."""

    def __init__(self, tmp_path: Path, *, policy: LoginPolicy = FAST_POLICY, ssl_context=None,
                 overrides: tuple[str, ...] = (), start_at: dt.datetime = OPEN, **server_options) -> None:
        self.db_path = tmp_path / "cc.db"
        self.settings = load(SAMPLE_CONFIG, environ={}, overrides=[
            "cti.listen=ws://127.0.0.1:0", f"database.url=sqlite:///{self.db_path}", *overrides]).settings
        self.db = Database(self.settings.database.url)
        upgrade(self.db)
        sync_agents(self.db, self.settings.agents)
        self.clock = moving_clock(start_at)
        self.fake = FakeTelephony(workers=2)
        self.store = SqlInteractionStore(self.db)
        self.directory = SqlCustomerDirectory(self.db, region=self.settings.center.default_region)
        self.cti = CtiServer(self.settings, directory=self.directory, login_policy=policy, clock=self.clock,
                             ssl_context=ssl_context, **server_options)
        self.center = ContactCenter(
            settings=self.settings, menu=load_menu(REPO / "config/ivr.toml").menu, telephony=self.fake,
            store=self.store, selfservice=InMemorySelfService(), prompts_dir=Path("/prompts"), notifier=self.cti,
            clock=self.clock,
        )
        self.cti.bind(self.center)
        self._finished: set[str] = set()

    @property
    def url(self) -> str:
        return self.cti.url

    async def start(self) -> None:
        await self.center.start()
        await self.cti.start()

    async def stop(self) -> None:
        await self.cti.stop()
        await self.center.stop()
        self.db.dispose()

    async def settle(self, rounds: int = 20) -> None:
        """Let the loop run, finishing every prompt that is not hold music (a caller who listens)."""
        for _ in range(rounds):
            await asyncio.sleep(0.003)
            for command in self.fake.sent(tp.PlayPrompts):
                if not command.loop and command.id not in self._finished:
                    self._finished.add(command.id)
                    self.fake.inject(tp.PlaybackFinished(leg=command.leg, playback=command.id, completed=True))
        await self.center.drain()

    async def caller_to_queue(self, ani: str = "13912345678", display_name: str = "Zhang San") -> str:
        """A caller arrives, picks Mandarin (1) and asks for an agent (0): the general queue."""
        leg = self.fake.arrive(ani=ani, display_name=display_name, remote_address="127.0.0.1:5099")
        await self.settle()
        for digit in "10":
            self.fake.inject(tp.DigitReceived(leg=leg, digit=digit, method="rfc4733"))
            await self.settle()
        return leg

    def only_agent(self, agent_id: str) -> None:
        """Make ``agent_id`` the only available agent (the others auto-logged-in go on break)."""
        for other in ("1001", "1002"):
            if other != agent_id:
                self.center.not_ready(other, "break")

    def agent_leg(self, agent_id: str) -> str:
        uri = self.settings.agents[agent_id].phone
        return [d for d in self.fake.sent(tp.Dial) if d.uri == uri][-1].leg

    async def answer(self, agent_id: str) -> str:
        leg = self.agent_leg(agent_id)
        self.fake.inject(tp.LegAnswered(leg=leg))
        await self.settle()
        return leg

    async def caller_hangs_up(self, caller_leg: str, agent_id: str) -> None:
        self.fake.inject(tp.LegEnded(leg=caller_leg, cause="remote_bye"))
        await self.settle()
        self.fake.inject(tp.LegEnded(leg=self.agent_leg(agent_id), cause="local_hangup"))
        await self.settle()

    async def client(self, **kwargs) -> CtiClient:
        client = CtiClient(self.url, **kwargs)
        await client.connect()
        return client

    async def logged_in(self, agent_id: str, **kwargs) -> tuple[CtiClient, list[dict], dict]:
        events: list[dict] = []
        client = await self.client(on_event=events.append, **kwargs)
        data = await client.login(agent_id, PINS[agent_id])
        return client, events, data

    def add_customer(self, name: str, number: str, *, tier: str = "standard", company: str | None = None,
                     blacklisted: bool = False, notes: str | None = None, with_history: bool = False) -> int:
        """A customer with one number (E.164), optionally an order, a case-free contact with a disposition."""
        with self.db.session() as s:
            customer = Customer(name=name, company=company, tier=tier, blacklisted=blacklisted,
                                blacklist_reason="chargeback fraud" if blacklisted else None, notes=notes,
                                credit_limit=Decimal("20000"), balance=Decimal("0"), language="zh")
            customer.phones.append(PhoneNumber(e164=number, kind="mobile", raw=number))
            s.add(customer)
            s.flush()
            if with_history:
                product = Product(sku=f"AC-{customer.id}", name="Inverter air conditioner", price=Decimal("3299"),
                                  warranty_months=36)
                order = Order(order_number=f"SO-T{customer.id}", customer_id=customer.id,
                              ordered_at=OPEN - dt.timedelta(days=40), amount=Decimal("3299.00"), status="delivered")
                order.items.append(OrderItem(product=product, quantity=1, unit_price=Decimal("3299"),
                                             serial_number="AC0001", warranty_end=(OPEN + dt.timedelta(days=700)).date()))
                s.add(order)
                earlier = Interaction(call_id=f"old-{customer.id}", direction="inbound", ani=number,
                                      customer_id=customer.id, queue="general", agent_id="1002",
                                      arrived_at=OPEN - dt.timedelta(days=3), ended_at=OPEN - dt.timedelta(days=3),
                                      outcome="answered", ivr_path=[])
                s.add(earlier)
                s.flush()
                s.add(Disposition(interaction_id=earlier.id, code="repair", notes="technician visit booked",
                                  agent_id="1002", created_at=OPEN - dt.timedelta(days=3)))
            return customer.id

    def callbacks(self) -> list[Callback]:
        with self.db.session() as s:
            return list(s.query(Callback).order_by(Callback.id))

    def dispositions(self, call_id: str) -> list[tuple[str, str | None, str | None]]:
        with self.db.session() as s:
            return [(d.code, d.notes, d.agent_id) for d in s.query(Disposition).join(Interaction)
                    .filter(Interaction.call_id == call_id)]


async def wait_for(predicate, timeout: float = 3.0, interval: float = 0.01):
    """Poll ``predicate`` (for tests only) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("type") == kind]
