"""Customer storage: idempotent batch upserts for imports, streaming export, look-up and the 360 profile."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from callcenter.customer_csv import COLUMNS, CustomerRecord
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
    utcnow,
)
from screenpop.profile import (
    CallbackSummary,
    CaseSummary,
    ContactSummary,
    CustomerProfile,
    OrderLine,
    OrderSummary,
)

_CUSTOMERS = Customer.__table__
_PHONES = PhoneNumber.__table__


@dataclass
class BatchResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: BatchResult) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        return Decimal(old or 0) == Decimal(new or 0)
    return (old or None) == (new or None) if not isinstance(new, bool) else bool(old) == new


def upsert_customers(session: Session, records: Sequence[CustomerRecord]) -> BatchResult:
    """Insert new customers, update changed ones, leave identical ones untouched (keyed on external_id)."""
    result = BatchResult()
    if not records:
        return result
    columns = sorted({key for r in records for key in r.values})
    existing = {
        row.external_id: row
        for row in session.execute(
            select(_CUSTOMERS.c.id, _CUSTOMERS.c.external_id, *(_CUSTOMERS.c[c] for c in columns)).where(
                _CUSTOMERS.c.external_id.in_([r.external_id for r in records])
            )
        )
    }
    numbers: dict[int, set[str]] = defaultdict(set)
    if existing:
        ids = [row.id for row in existing.values()]
        for customer_id, e164 in session.execute(
            select(_PHONES.c.customer_id, _PHONES.c.e164).where(_PHONES.c.customer_id.in_(ids))
        ):
            numbers[customer_id].add(e164)

    now = utcnow()
    new = [r for r in records if r.external_id not in existing]
    phone_rows: list[dict[str, Any]] = []
    if new:
        base = {"created_at": now, "updated_at": now, **_DEFAULTS}
        session.execute(insert(_CUSTOMERS), [{**base, "external_id": r.external_id, **r.values} for r in new])
        # One indexed select instead of RETURNING, which SQLite can only do row by row in a bulk insert.
        ids = dict(
            session.execute(
                select(_CUSTOMERS.c.external_id, _CUSTOMERS.c.id).where(
                    _CUSTOMERS.c.external_id.in_([r.external_id for r in new])
                )
            ).all()
        )
        for record in new:
            phone_rows.extend(
                {"customer_id": ids[record.external_id], "e164": p.e164, "kind": p.kind, "raw": p.raw}
                for p in record.phones
            )
        result.inserted = len(new)

    changed_rows: list[dict[str, Any]] = []
    stale_numbers: list[tuple[int, str]] = []
    for record in records:
        row = existing.get(record.external_id)
        if row is None:
            continue
        fields_differ = any(not _same(getattr(row, c), record.values[c]) for c in record.values)
        wanted = {p.e164 for p in record.phones}
        have = numbers.get(row.id, set())
        if not fields_differ and wanted == have:
            result.unchanged += 1
            continue
        result.updated += 1
        if fields_differ:
            changed_rows.append({"_id": row.id, "updated_at": now, **{c: record.values[c] for c in columns}})
        phone_rows.extend(
            {"customer_id": row.id, "e164": p.e164, "kind": p.kind, "raw": p.raw}
            for p in record.phones
            if p.e164 not in have
        )
        stale_numbers.extend((row.id, e164) for e164 in have - wanted)

    if changed_rows:
        session.execute(
            update(_CUSTOMERS)
            .where(_CUSTOMERS.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in [*columns, "updated_at"]}),
            changed_rows,
            execution_options={"synchronize_session": False},
        )
    for customer_id, e164 in stale_numbers:
        session.execute(delete(_PHONES).where(_PHONES.c.customer_id == customer_id, _PHONES.c.e164 == e164))
    if phone_rows:
        session.execute(insert(_PHONES), phone_rows)
    return result


_DEFAULTS: dict[str, Any] = {
    "tier": "standard", "blacklisted": False, "do_not_call": False,
    "credit_limit": Decimal("0"), "balance": Decimal("0"),
}


def export_rows(session: Session, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every customer as a CSV row in the import format, in id order, without loading all at once."""
    last_id = 0
    wanted = [c for c in COLUMNS if c != "phone"]
    while True:
        chunk = session.execute(
            select(_CUSTOMERS.c.id, *(_CUSTOMERS.c[c] for c in wanted))
            .where(_CUSTOMERS.c.id > last_id)
            .order_by(_CUSTOMERS.c.id)
            .limit(batch)
        ).all()
        if not chunk:
            return
        ids = [row.id for row in chunk]
        numbers: dict[int, list[str]] = defaultdict(list)
        for customer_id, e164 in session.execute(
            select(_PHONES.c.customer_id, _PHONES.c.e164).where(_PHONES.c.customer_id.in_(ids)).order_by(_PHONES.c.id)
        ):
            numbers[customer_id].append(e164)
        for row in chunk:
            out = {c: getattr(row, c) for c in wanted}
            out["phone"] = ";".join(numbers.get(row.id, []))
            for flag in ("blacklisted", "do_not_call"):
                out[flag] = "yes" if out[flag] else "no"
            yield out
        last_id = ids[-1]


def count_customers(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(_CUSTOMERS)) or 0


@dataclass(frozen=True, slots=True)
class CustomerMatch:
    customer_id: int
    external_id: str | None
    name: str
    company: str | None
    tier: str
    numbers: tuple[str, ...]


def find_customers(session: Session, *, e164: str | None = None, key: str | None = None) -> list[CustomerMatch]:
    """Customers owning number ``e164``, or whose external id or internal id is ``key``."""
    conditions = []
    if e164:
        conditions.append(_CUSTOMERS.c.id.in_(select(_PHONES.c.customer_id).where(_PHONES.c.e164 == e164)))
    if key:
        conditions.append(_CUSTOMERS.c.external_id == key)
        if key.isdigit() and len(key) < 19:
            conditions.append(_CUSTOMERS.c.id == int(key))
    if not conditions:
        return []
    rows = session.execute(
        select(Customer.id, Customer.external_id, Customer.name, Customer.company, Customer.tier)
        .where(or_(*conditions))
        .order_by(Customer.id)
        .limit(50)
    ).all()
    numbers: dict[int, list[str]] = defaultdict(list)
    for customer_id, number in session.execute(
        select(_PHONES.c.customer_id, _PHONES.c.e164).where(_PHONES.c.customer_id.in_([r.id for r in rows]))
    ):
        numbers[customer_id].append(number)
    return [
        CustomerMatch(r.id, r.external_id, r.name, r.company, r.tier, tuple(numbers.get(r.id, ())))
        for r in rows
    ]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def load_profile(session: Session, customer_id: int, *, recent: int = 10) -> CustomerProfile | None:
    """Everything the agent needs about one customer, in a fixed, small number of queries."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    numbers = tuple(
        session.scalars(select(PhoneNumber.e164).where(PhoneNumber.customer_id == customer_id).order_by(PhoneNumber.id))
    )
    count, spend, last = session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.amount), 0), func.max(Order.ordered_at)).where(
            Order.customer_id == customer_id, Order.status != "cancelled"
        )
    ).one()
    orders = session.scalars(
        select(Order).where(Order.customer_id == customer_id).order_by(Order.ordered_at.desc()).limit(recent)
    ).all()
    lines: dict[int, list[OrderLine]] = defaultdict(list)
    if orders:
        for item, product_name in session.execute(
            select(OrderItem, Product.name)
            .join(Product, Product.id == OrderItem.product_id)
            .where(OrderItem.order_id.in_([o.id for o in orders]))
            .order_by(OrderItem.id)
        ):
            lines[item.order_id].append(
                OrderLine(product_name, item.quantity, item.unit_price, item.serial_number, item.warranty_end)
            )
    cases = session.scalars(
        select(Case)
        .where(Case.customer_id == customer_id)
        .order_by((Case.status == "closed"), Case.opened_at.desc())
        .limit(recent)
    ).all()
    latest_disposition = (
        select(Disposition.code, Disposition.notes)
        .where(Disposition.interaction_id == Interaction.id)
        .order_by(Disposition.created_at.desc(), Disposition.id.desc())
        .limit(1)
        .correlate(Interaction)
    )
    contacts = session.execute(
        select(
            Interaction,
            Agent.name,
            latest_disposition.with_only_columns(Disposition.code).scalar_subquery(),
            latest_disposition.with_only_columns(Disposition.notes).scalar_subquery(),
        )
        .outerjoin(Agent, Agent.id == Interaction.agent_id)
        .where(Interaction.customer_id == customer_id)
        .order_by(Interaction.arrived_at.desc())
        .limit(recent)
    ).all()
    callbacks = session.scalars(
        select(Callback).where(Callback.customer_id == customer_id).order_by(Callback.due_from.desc()).limit(recent)
    ).all()
    return CustomerProfile(
        customer_id=customer.id,
        external_id=customer.external_id,
        name=customer.name,
        company=customer.company,
        email=customer.email,
        tier=customer.tier,
        language=customer.language,
        notes=customer.notes,
        blacklisted=customer.blacklisted,
        blacklist_reason=customer.blacklist_reason,
        do_not_call=customer.do_not_call,
        do_not_call_reason=customer.do_not_call_reason,
        credit_limit=customer.credit_limit,
        balance=customer.balance,
        numbers=numbers,
        orders=tuple(
            OrderSummary(o.order_number, _aware(o.ordered_at), o.amount, o.currency, o.status, tuple(lines[o.id]))
            for o in orders
        ),
        order_count=count,
        lifetime_spend=Decimal(spend),
        last_order_at=_aware(last),
        cases=tuple(
            CaseSummary(c.id, c.kind, c.status, _aware(c.opened_at), _aware(c.closed_at), c.summary) for c in cases
        ),
        contacts=tuple(
            ContactSummary(
                _aware(i.arrived_at), i.direction, i.queue, agent_name or i.agent_id, i.outcome, code, notes,
                i.talk_seconds,
            )
            for i, agent_name, code, notes in contacts
        ),
        callbacks=tuple(
            CallbackSummary(
                cb.id, cb.number, _aware(cb.due_from), _aware(cb.due_until), cb.status, cb.owner_agent_id, cb.attempts
            )
            for cb in callbacks
        ),
    )
