"""Demo data that looks like a real appliance maker's customer base (Chinese and English speakers).

Deterministic for a seed, and idempotent: customers get external ids ``D<seed>-<n>``, so running
it again adds only the ones not there yet. Customer 0 of a seed is always a VIP with orders and
customer 1 is always blacklisted, so even a small data set shows both screen pops.
:func:`demo_callers` picks the numbers the simulated callers of ``callcenter demo-calls`` use.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from faker import Faker
from sqlalchemy import exists, func, select

from callcenter.db.engine import Database
from callcenter.db.models import (
    Agent,
    Callback,
    Case,
    Customer,
    Disposition,
    Interaction,
    Order,
    OrderItem,
    PhoneNumber,
    Product,
)
from screenpop.numbers import normalize

# (sku, name, category, price, warranty months)
CATALOG = [
    ("AC-1200", "Inverter air conditioner 1.5 HP", "air conditioning", "3299.00", 36),
    ("AC-2400", "Inverter air conditioner 3 HP", "air conditioning", "5999.00", 36),
    ("WM-800", "Front-load washing machine 8 kg", "laundry", "2599.00", 24),
    ("WM-1000", "Washer-dryer 10 kg", "laundry", "4299.00", 24),
    ("RF-450", "French-door refrigerator 450 L", "refrigeration", "4899.00", 24),
    ("RF-230", "Two-door refrigerator 230 L", "refrigeration", "1899.00", 12),
    ("TV-55", "55-inch 4K television", "television", "3599.00", 12),
    ("TV-75", "75-inch mini-LED television", "television", "8999.00", 24),
    ("MW-25", "Microwave oven 25 L", "kitchen", "599.00", 12),
    ("RC-40", "IH rice cooker 4 L", "kitchen", "899.00", 12),
    ("WH-60", "Electric water heater 60 L", "water heating", "1599.00", 36),
    ("PU-500", "Water purifier 500 G", "water heating", "2199.00", 24),
    ("VC-11", "Cordless vacuum cleaner", "cleaning", "1999.00", 12),
    ("RB-20", "Robot vacuum with mop", "cleaning", "2799.00", 12),
    ("EW-1", "Extended warranty, 2 years", "service", "299.00", 24),
]
US_AREA_CODES = ("212", "213", "312", "415", "617", "646", "702", "206", "305", "404", "512", "718")
REPAIR_ISSUES = [
    "unit does not cool", "drum makes a loud noise", "error code E4 on display", "water leaking underneath",
    "does not power on", "remote control not responding", "ice build-up in freezer", "screen flickers",
]
INQUIRIES = [
    "asked about installation date", "asked for invoice copy", "question on energy rating", "trade-in offer",
    "delivery time", "user manual request",
]
ROLES = {0: "vip", 1: "blacklisted"}  # by index within a seed: the pops every demo must be able to show
COMPLAINTS = ["late delivery", "installer was rude", "charged twice", "wrong model delivered", "repair took too long"]
DISPOSITION_NOTES = {
    "resolved": ["explained settings", "walked through reset", "confirmed order status"],
    "sale": ["sold extended warranty", "upsold to larger model", "bundle discount applied"],
    "no_sale": ["price too high", "will compare with other brands", "wants to wait for promotion"],
    "callback": ["call back with technician availability", "customer busy, call tomorrow"],
    "repair": ["technician visit booked", "spare part ordered"],
    "complaint": ["escalated to team lead", "refund requested"],
}


@dataclass
class DemoResult:
    customers: int = 0
    skipped: int = 0
    orders: int = 0
    cases: int = 0
    interactions: int = 0
    callbacks: int = 0


def _us_number(rng: random.Random) -> str:
    while True:
        raw = f"+1{rng.choice(US_AREA_CODES)}{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}{rng.randint(1000, 9999)}"
        if raw[5:8] != "555" and normalize(raw, "US"):
            return raw


def _cn_number(fake: Faker) -> str:
    while True:
        raw = fake.phone_number()
        if normalize(raw, "CN"):
            return raw


def ensure_catalog(session) -> list[Product]:
    have = {p.sku: p for p in session.scalars(select(Product))}
    for sku, name, category, price, months in CATALOG:
        if sku not in have:
            product = Product(sku=sku, name=name, category=category, price=Decimal(price), warranty_months=months)
            session.add(product)
            have[sku] = product
    session.flush()
    return [have[sku] for sku, *_ in CATALOG]


def generate(
    db: Database,
    count: int,
    *,
    seed: int = 42,
    now: dt.datetime,
    agent_ids: Iterable[str] = (),
    queues: Iterable[str] = ("general",),
    dispositions: Iterable[str] = ("resolved",),
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
) -> DemoResult:
    """Create ``count`` demo customers (with history) for ``seed``; existing ones are kept as they are."""
    fakes = {"zh": Faker("zh_CN"), "en": Faker("en_US")}
    for i, fake in enumerate(fakes.values()):
        fake.seed_instance(seed * 10 + i)
    agent_ids = list(agent_ids)
    queues = list(queues)
    codes = [c for c in dispositions if c in DISPOSITION_NOTES] or list(dispositions)
    result = DemoResult()
    with db.session() as session:
        products = ensure_catalog(session)
        known_agents = set(session.scalars(select(Agent.id)))
    agent_ids = [a for a in agent_ids if a in known_agents]

    for start in range(0, count, batch):
        ids = [f"D{seed}-{n:07d}" for n in range(start, min(count, start + batch))]
        with db.session() as session:
            existing = set(session.scalars(select(Customer.external_id).where(Customer.external_id.in_(ids))))
            order_seq = (session.scalar(select(Order.id).order_by(Order.id.desc()).limit(1)) or 0) + 1
            for external_id in ids:
                # Draw every customer's randomness even when skipping, so a partial re-run stays deterministic.
                customer_rng = random.Random(f"{seed}:{external_id}")
                if external_id in existing:
                    result.skipped += 1
                    continue
                order_seq = _one_customer(
                    session, customer_rng, fakes, external_id, products, agent_ids, queues, codes, now, order_seq,
                    result, role=ROLES.get(int(external_id.rsplit("-", 1)[1])),
                )
                result.customers += 1
        if progress:
            progress(len(ids))
    return result


def _one_customer(session, rng, fakes, external_id, products, agent_ids, queues, codes, now, order_seq, result,
                  role: str | None = None) -> int:
    lang = "zh" if rng.random() < 0.7 else "en"
    fake = fakes[lang]
    fake.seed_instance(rng.randrange(2**31))
    tier = rng.choices(["standard", "silver", "gold", "vip"], weights=[60, 22, 12, 6])[0]
    if role == "vip":
        tier = "vip"
    business = rng.random() < 0.25
    customer = Customer(
        external_id=external_id,
        name=fake.name(),
        company=fake.company() if business else None,
        email=fake.email(),
        tier=tier,
        segment="business" if business else "consumer",
        language=lang,
        credit_limit=Decimal(rng.choice([0, 5000, 10000, 20000, 50000])) if business or tier in ("gold", "vip") else Decimal(0),
        created_at=now - dt.timedelta(days=rng.randint(30, 2000)),
    )
    roll = rng.random()
    if role == "vip":
        pass  # a clean record: the VIP pop shows the tier, not a warning
    elif role == "blacklisted" or roll < 0.015:
        customer.blacklisted = True
        customer.blacklist_reason = rng.choice(["abusive to agents", "fraudulent warranty claims", "chargeback fraud"])
    elif roll < 0.04:
        customer.do_not_call = True
        customer.do_not_call_reason = rng.choice(["asked not to be called", "registered on do-not-call list"])
    if rng.random() < 0.08:
        customer.balance = Decimal(rng.randint(100, 20000))
    if rng.random() < 0.1:
        customer.notes = rng.choice(
            ["prefers WeChat contact", "hard of hearing, speak slowly", "call only after 18:00", "owns three properties"]
        )
    numbers = [_cn_number(fake) if lang == "zh" else _us_number(rng)]
    if rng.random() < 0.3:
        numbers.append(_cn_number(fakes["zh"]) if lang == "zh" else _us_number(rng))
    for raw in numbers:
        parsed = normalize(raw, "CN" if lang == "zh" else "US")
        if parsed and all(p.e164 != parsed.e164 for p in customer.phones):
            customer.phones.append(PhoneNumber(e164=parsed.e164, kind=parsed.kind, raw=raw))
    session.add(customer)

    items: list[OrderItem] = []
    orders = rng.choices([0, 1, 2, 3, 5, 8], weights=[10, 35, 25, 15, 10, 5])[0]
    for _ in range(max(orders, 2) if role == "vip" else orders):
        ordered = now - dt.timedelta(days=rng.randint(1, 1500), minutes=rng.randint(0, 1440))
        order = Order(
            order_number=f"SO{order_seq:08d}",
            ordered_at=ordered,
            currency="CNY",
            status=rng.choices(["delivered", "shipped", "paid", "cancelled", "returned"], weights=[80, 6, 4, 6, 4])[0],
            amount=Decimal(0),
        )
        order_seq += 1
        for product in rng.sample(products, rng.randint(1, 3)):
            quantity = 1 if product.category != "service" else 1
            item = OrderItem(
                product=product,
                quantity=quantity,
                unit_price=product.price,
                serial_number=f"{product.sku.split('-')[0]}{rng.randint(10**9, 10**10 - 1)}",
                warranty_end=(ordered + dt.timedelta(days=30 * product.warranty_months)).date(),
            )
            order.items.append(item)
            order.amount += product.price * quantity
            items.append(item)
        customer.orders.append(order)
        result.orders += 1

    for _ in range(rng.choices([0, 1, 2], weights=[65, 27, 8])[0]):
        kind = rng.choices(["repair", "inquiry", "complaint"], weights=[50, 35, 15])[0]
        opened = now - dt.timedelta(days=rng.randint(0, 400), hours=rng.randint(0, 23))
        closed = rng.random() < 0.7
        text = {"repair": REPAIR_ISSUES, "inquiry": INQUIRIES, "complaint": COMPLAINTS}[kind]
        customer.cases.append(
            Case(
                kind=kind,
                status="closed" if closed else rng.choice(["open", "pending"]),
                opened_at=opened,
                closed_at=opened + dt.timedelta(days=rng.randint(0, 20)) if closed else None,
                summary=rng.choice(text),
            )
        )
        result.cases += 1
    session.flush()
    for case in customer.cases:
        if case.kind == "repair" and items:
            case.order_item_id = rng.choice(items).id

    for _ in range(rng.choices([0, 1, 2, 4, 6], weights=[25, 30, 25, 12, 8])[0]):
        arrived = now - dt.timedelta(days=rng.randint(0, 180), minutes=rng.randint(0, 1440))
        abandoned = rng.random() < 0.08
        wait = rng.uniform(3, 240)
        talk = None if abandoned else rng.uniform(40, 900)
        agent = None if abandoned or not agent_ids else rng.choice(agent_ids)
        interaction = Interaction(
            direction="inbound" if rng.random() < 0.85 else "outbound",
            ani=customer.phones[0].e164 if customer.phones else None,
            dnis="+864008001234",
            display_name=customer.name,
            customer_id=customer.id,
            queue=rng.choice(queues),
            agent_id=agent,
            arrived_at=arrived,
            queued_at=arrived + dt.timedelta(seconds=15),
            offered_at=None if abandoned else arrived + dt.timedelta(seconds=15 + wait),
            answered_at=None if abandoned else arrived + dt.timedelta(seconds=18 + wait),
            ended_at=arrived + dt.timedelta(seconds=18 + wait + (talk or 0)),
            wait_seconds=round(wait, 1),
            talk_seconds=round(talk, 1) if talk else None,
            wrap_seconds=None if abandoned else round(rng.uniform(5, 60), 1),
            outcome="abandoned" if abandoned else "answered",
            ivr_path=[{"node": "language", "digits": "1" if lang == "zh" else "2"}, {"node": "main"}],
            language=lang,
        )
        session.add(interaction)
        if not abandoned and codes:
            session.flush()
            code = rng.choice(codes)
            session.add(
                Disposition(
                    interaction_id=interaction.id,
                    code=code,
                    notes=rng.choice(DISPOSITION_NOTES.get(code, ["—"])),
                    agent_id=agent,
                    created_at=interaction.ended_at + dt.timedelta(seconds=20),
                )
            )
        result.interactions += 1

    if customer.phones and not customer.do_not_call and rng.random() < 0.06:
        due = now + dt.timedelta(hours=rng.randint(-24, 72))
        session.add(
            Callback(
                number=customer.phones[0].e164,
                customer_id=customer.id,
                queue=rng.choice(queues),
                due_from=due,
                due_until=due + dt.timedelta(hours=2),
                owner_agent_id=rng.choice(agent_ids) if agent_ids and rng.random() < 0.5 else None,
                status="pending",
                source=rng.choice(["ivr", "agent", "campaign"]),
            )
        )
        result.callbacks += 1
    return order_seq


@dataclass(frozen=True)
class DemoCaller:
    """A number a simulated caller presents, with the name the network shows (None: no name)."""

    number: str
    name: str | None
    kind: str  # history (orders and cases or contacts), vip, blacklisted, unknown


@dataclass
class DemoCallers:
    history: list[DemoCaller]
    vip: DemoCaller | None
    blacklisted: DemoCaller | None
    unknown: list[DemoCaller]


def demo_callers(db: Database, *, seed: int = 42, known: int = 48, unknown: int = 12,
                 candidates: int = 600) -> DemoCallers:
    """Numbers for simulated callers, so that their screen pops show real customers.

    Known callers are customers with orders (so warranties) and an open case or earlier
    contacts, one VIP and one blacklisted customer; only numbers that belong to one customer are
    used, so the pop is that customer's 360 rather than a choice. Unknown numbers are mobile
    numbers no customer has. The same database and seed give the same callers.
    """
    rng = random.Random(f"demo-callers:{seed}")
    owners = func.count(func.distinct(PhoneNumber.customer_id))
    single = select(PhoneNumber.e164).group_by(PhoneNumber.e164).having(owners == 1)
    has_orders = exists().where(Order.customer_id == Customer.id)
    open_case = exists().where(Case.customer_id == Customer.id, Case.status.in_(("open", "pending")))
    contacted = exists().where(Interaction.customer_id == Customer.id)

    def pick(session, *where, limit: int) -> list[tuple[str, str]]:
        """(number, name) of the first ``limit`` matching customers, one number each, oldest customer first."""
        rows = session.execute(
            select(Customer.id, PhoneNumber.e164, Customer.name)
            .join(PhoneNumber, PhoneNumber.customer_id == Customer.id)
            .where(PhoneNumber.e164.in_(single), *where)
            .order_by(Customer.id, PhoneNumber.id).limit(limit * 3)
        ).all()
        seen: dict[int, tuple[str, str]] = {}
        for customer_id, number, name in rows:
            seen.setdefault(customer_id, (number, name))
        return list(seen.values())[:limit]

    with db.session() as session:
        clean = (~Customer.blacklisted,)
        with_case = pick(session, *clean, has_orders, open_case, limit=candidates)
        with_contacts = pick(session, *clean, has_orders, ~open_case, contacted, limit=candidates)
        vip = pick(session, *clean, Customer.tier == "vip", has_orders, limit=1)
        bad = pick(session, Customer.blacklisted, limit=1)
        rng.shuffle(with_case)
        rng.shuffle(with_contacts)
        half = with_case[:known // 2]  # half with an open case, when there are that many
        rich = half + (with_contacts + with_case[len(half):])[:known - len(half)]
        rng.shuffle(rich)
        history = [DemoCaller(number, name, "history") for number, name in rich]
        fresh: list[str] = []
        while len(fresh) < unknown:
            drawn = (normalize(f"+861{rng.choice('3589')}{rng.randrange(10**9):09d}", "CN")
                     for _ in range(unknown * 2))
            batch = [p.e164 for p in drawn if p is not None and p.kind == "mobile"]
            taken = set(session.scalars(select(PhoneNumber.e164).where(PhoneNumber.e164.in_(batch))))
            fresh += [n for n in dict.fromkeys(batch) if n not in taken and n not in fresh]
    return DemoCallers(
        history=history,
        vip=DemoCaller(vip[0][0], vip[0][1], "vip") if vip else None,
        blacklisted=DemoCaller(bad[0][0], bad[0][1], "blacklisted") if bad else None,
        unknown=[DemoCaller(n, None, "unknown") for n in fresh[:unknown]],
    )
