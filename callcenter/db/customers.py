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
    AuditEntry,
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
from screenpop.numbers import normalize
from screenpop.pop import (
    REPEAT_HOURS,
    AgentCallback,
    CallContext,
    CustomerCandidate,
    RecentContact,
    ScreenPop,
    pop_kind,
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
    return _load_profile(session, customer_id, recent=recent, exclude_call_id=None)


class _ProfileStatements:
    """The profile's queries, built once with bound parameters: a pop runs them with no SQL construction."""

    def __init__(self) -> None:
        from sqlalchemy import bindparam as bp

        cu, ph = _CUSTOMERS, _PHONES
        orders, items, products = Order.__table__, OrderItem.__table__, Product.__table__
        cases, inter, disp = Case.__table__, Interaction.__table__, Disposition.__table__
        agents, callbacks = Agent.__table__, Callback.__table__
        cid = bp("cid")
        self.customer = select(
            cu.c.id, cu.c.external_id, cu.c.name, cu.c.company, cu.c.email, cu.c.tier, cu.c.language, cu.c.notes,
            cu.c.blacklisted, cu.c.blacklist_reason, cu.c.do_not_call, cu.c.do_not_call_reason, cu.c.credit_limit,
            cu.c.balance,
        ).where(cu.c.id == cid)
        self.numbers = select(ph.c.e164).where(ph.c.customer_id == cid).order_by(ph.c.id)
        self.totals = select(
            func.count(orders.c.id), func.coalesce(func.sum(orders.c.amount), 0), func.max(orders.c.ordered_at)
        ).where(orders.c.customer_id == cid, orders.c.status != "cancelled")
        self.orders = (
            select(orders.c.id, orders.c.order_number, orders.c.ordered_at, orders.c.amount, orders.c.currency,
                   orders.c.status)
            .where(orders.c.customer_id == cid).order_by(orders.c.ordered_at.desc()).limit(bp("recent"))
        )
        self.lines = (
            select(items.c.order_id, products.c.name, items.c.quantity, items.c.unit_price, items.c.serial_number,
                   items.c.warranty_end)
            .join(products, products.c.id == items.c.product_id)
            .where(items.c.order_id.in_(bp("order_ids", expanding=True)))
            .order_by(items.c.id)
        )
        self.cases = (
            select(cases.c.id, cases.c.kind, cases.c.status, cases.c.opened_at, cases.c.closed_at, cases.c.summary)
            .where(cases.c.customer_id == cid)
            .order_by(cases.c.status == "closed", cases.c.opened_at.desc())
            .limit(bp("recent"))
        )
        latest = (
            select(disp.c.code, disp.c.notes)
            .where(disp.c.interaction_id == inter.c.id)
            .order_by(disp.c.created_at.desc(), disp.c.id.desc())
            .limit(1)
            .correlate(inter)
        )
        self.contacts = (
            select(
                inter.c.arrived_at, inter.c.direction, inter.c.queue, agents.c.name, inter.c.agent_id,
                inter.c.outcome, latest.with_only_columns(disp.c.code).scalar_subquery(),
                latest.with_only_columns(disp.c.notes).scalar_subquery(), inter.c.talk_seconds,
            )
            .select_from(inter.outerjoin(agents, agents.c.id == inter.c.agent_id))
            .where(inter.c.customer_id == cid,
                   or_(inter.c.call_id.is_(None), inter.c.call_id != bp("exclude")))
            .order_by(inter.c.arrived_at.desc())
            .limit(bp("recent"))
        )
        self.with_number = (
            select(*_CANDIDATE_COLUMNS)
            .join(ph, ph.c.customer_id == cu.c.id)
            .where(ph.c.e164 == bp("e164"))
            .order_by(cu.c.id)
            .limit(bp("limit"))
        )
        not_this_call = or_(inter.c.call_id.is_(None), inter.c.call_id != bp("exclude"))
        self.recent_by_number = select(func.count()).select_from(inter).where(
            inter.c.ani == bp("number"), inter.c.arrived_at >= bp("since", type_=inter.c.arrived_at.type), not_this_call)
        # the customer's contacts from other numbers (those from this number are counted above)
        self.recent_by_customer = select(func.count()).select_from(inter).where(
            inter.c.customer_id == cid, inter.c.arrived_at >= bp("since", type_=inter.c.arrived_at.type), not_this_call,
            or_(inter.c.ani.is_(None), inter.c.ani != bp("number")))
        self.callbacks = (
            select(callbacks.c.id, callbacks.c.number, callbacks.c.due_from, callbacks.c.due_until, callbacks.c.status,
                   callbacks.c.owner_agent_id, callbacks.c.attempts)
            .where(callbacks.c.customer_id == cid)
            .order_by(callbacks.c.due_from.desc())
            .limit(bp("recent"))
        )


_statements: _ProfileStatements | None = None


def _profile_statements() -> _ProfileStatements:
    global _statements
    if _statements is None:
        _statements = _ProfileStatements()
    return _statements


def _load_profile(session: Session, customer_id: int, *, recent: int, exclude_call_id: str | None) -> CustomerProfile | None:
    """:func:`load_profile`, leaving the contact ``exclude_call_id`` (the call in progress) out of the history."""
    q = _profile_statements()
    run = session.connection().execute
    args = {"cid": customer_id}
    limited = {"cid": customer_id, "recent": recent}
    customer = run(q.customer, args).first()
    if customer is None:
        return None
    numbers = tuple(run(q.numbers, args).scalars())
    count, spend, last = run(q.totals, args).one()
    orders = run(q.orders, limited).all()
    lines: dict[int, list[OrderLine]] = defaultdict(list)
    if orders:
        for order_id, product, quantity, unit_price, serial, warranty_end in run(
            q.lines, {"order_ids": [o.id for o in orders]}
        ):
            lines[order_id].append(OrderLine(product, quantity, unit_price, serial, warranty_end))
    cases = run(q.cases, limited).all()
    contacts = run(q.contacts, {**limited, "exclude": exclude_call_id or ""}).all()
    callbacks = run(q.callbacks, limited).all()
    return CustomerProfile(
        customer_id=customer.id,
        external_id=customer.external_id,
        name=customer.name,
        company=customer.company,
        email=customer.email,
        tier=customer.tier,
        language=customer.language,
        notes=customer.notes,
        blacklisted=bool(customer.blacklisted),
        blacklist_reason=customer.blacklist_reason,
        do_not_call=bool(customer.do_not_call),
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
            ContactSummary(_aware(at), direction, queue, agent_name or agent_id, outcome, code, notes, talk)
            for at, direction, queue, agent_name, agent_id, outcome, code, notes, talk in contacts
        ),
        callbacks=tuple(
            CallbackSummary(cb.id, cb.number, _aware(cb.due_from), _aware(cb.due_until), cb.status,
                            cb.owner_agent_id, cb.attempts)
            for cb in callbacks
        ),
    )


# --------------------------------------------------------------------------- the agent desktop
# Screen pop, search, quick-create, an agent's recent contacts and callbacks. Every function takes
# a session and returns plain values of :mod:`screenpop`; :class:`SqlCustomerDirectory` wraps them
# with their own short sessions for the CTI server, which calls it from worker threads.

_ACTIVE_CALLBACKS = ("pending", "scheduled", "in_progress")
_AGENT_CALLBACKS = ("pending", "scheduled")
_NAME_MAX = 200


class CustomerInputError(ValueError):
    """Input for a new customer that cannot be stored; the message is for the agent."""


def _not_call(call_id: str | None) -> tuple[Any, ...]:
    if not call_id:
        return ()
    return (or_(Interaction.call_id.is_(None), Interaction.call_id != call_id),)


def _utc(moment: dt.datetime) -> dt.datetime:
    """Stored times are UTC; SQLite keeps the wall-clock fields as given, so convert before comparing."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _numbers_of(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    numbers: dict[int, list[str]] = defaultdict(list)
    if ids:
        for customer_id, e164 in session.execute(
            select(_PHONES.c.customer_id, _PHONES.c.e164).where(_PHONES.c.customer_id.in_(list(ids))).order_by(_PHONES.c.id)
        ):
            numbers[customer_id].append(e164)
    return {k: tuple(v) for k, v in numbers.items()}


_CANDIDATE_COLUMNS = (
    _CUSTOMERS.c.id, _CUSTOMERS.c.external_id, _CUSTOMERS.c.name, _CUSTOMERS.c.company, _CUSTOMERS.c.tier,
    _CUSTOMERS.c.blacklisted, _CUSTOMERS.c.do_not_call,
)


def _candidates(session: Session, rows: Sequence[Any]) -> list[CustomerCandidate]:
    numbers = _numbers_of(session, [r.id for r in rows])
    return [
        CustomerCandidate(r.id, r.external_id, r.name, r.company, r.tier, numbers.get(r.id, ()), bool(r.blacklisted),
                          bool(r.do_not_call))
        for r in rows
    ]


def customers_with_number(session: Session, e164: str, *, limit: int = 20) -> list[CustomerCandidate]:
    """Every customer owning ``e164`` (a shared office line gives several), oldest first."""
    rows = session.connection().execute(_profile_statements().with_number, {"e164": e164, "limit": limit}).all()
    return _candidates(session, rows)


def _contacts(session: Session, *conditions: Any, limit: int) -> list[ContactSummary]:
    latest_disposition = (
        select(Disposition.code, Disposition.notes)
        .where(Disposition.interaction_id == Interaction.id)
        .order_by(Disposition.created_at.desc(), Disposition.id.desc())
        .limit(1)
        .correlate(Interaction)
    )
    rows = session.execute(
        select(
            Interaction.arrived_at, Interaction.direction, Interaction.queue, Interaction.agent_id,
            Interaction.outcome, Interaction.talk_seconds, Agent.name,
            latest_disposition.with_only_columns(Disposition.code).scalar_subquery(),
            latest_disposition.with_only_columns(Disposition.notes).scalar_subquery(),
        )
        .outerjoin(Agent, Agent.id == Interaction.agent_id)
        .where(*conditions)
        .order_by(Interaction.arrived_at.desc())
        .limit(limit)
    ).all()
    return [
        ContactSummary(_aware(r[0]), r[1], r[2], r[6] or r[3], r[4], r[7], r[8], r[5])
        for r in rows
    ]


def count_recent_contacts(session: Session, *, since: dt.datetime, number: str | None, customer_id: int | None,
                          exclude_call_id: str | None = None) -> int:
    """Contacts from ``number`` or with ``customer_id`` since ``since``, the call ``exclude_call_id`` left out."""
    q = _profile_statements()
    run = session.connection().execute
    args = {"since": _utc(since), "exclude": exclude_call_id or "", "number": number or "", "cid": customer_id}
    total = run(q.recent_by_number, args).scalar() or 0 if number else 0
    if customer_id is not None:
        total += run(q.recent_by_customer, args).scalar() or 0
    return total


def load_screen_pop(
    session: Session,
    *,
    number: str | None,
    customer_id: int | None = None,
    call: CallContext | None = None,
    now: dt.datetime,
    repeat_hours: float = REPEAT_HOURS,
    recent: int = 10,
) -> ScreenPop:
    """The screen pop for a caller: by ``customer_id`` when the IVR identified them, else by ``number``."""
    exclude = call.call_id if call is not None else None
    profile = None
    candidates: list[CustomerCandidate] = []
    if customer_id is not None:
        profile = _load_profile(session, customer_id, recent=recent, exclude_call_id=exclude)
    if profile is None and number:
        candidates = customers_with_number(session, number)
        if len(candidates) == 1:
            profile = _load_profile(session, candidates[0].customer_id, recent=recent, exclude_call_id=exclude)
    kind = "customer" if profile is not None else pop_kind(len(candidates))
    if kind == "customer" and profile is None:  # the only match vanished between two queries
        kind = "new"
    recent_calls = count_recent_contacts(
        session, since=now - dt.timedelta(hours=repeat_hours), number=number,
        customer_id=profile.customer_id if profile else None, exclude_call_id=exclude,
    )
    history: list[ContactSummary] = []
    callbacks: list[CallbackSummary] = []
    if kind != "customer" and number:
        history = _contacts(session, Interaction.ani == number, *_not_call(exclude), limit=recent)
        callbacks = [
            CallbackSummary(cb.id, cb.number, _aware(cb.due_from), _aware(cb.due_until), cb.status, cb.owner_agent_id,
                            cb.attempts)
            for cb in session.scalars(
                select(Callback).where(Callback.number == number, Callback.status.in_(_ACTIVE_CALLBACKS))
                .order_by(Callback.due_from).limit(recent)
            )
        ]
    return ScreenPop(
        kind=kind, number=number, call=call, profile=profile,
        candidates=tuple(candidates) if kind == "choose" else (),
        recent_calls=recent_calls, repeat_hours=repeat_hours,
        number_history=tuple(history), number_callbacks=tuple(callbacks),
    )


def search_customers(session: Session, query: str, *, region: str, limit: int = 20) -> list[CustomerCandidate]:
    """Customers by number (any format), customer id, external id, or name prefix (case variants tried)."""
    text = (query or "").strip()[:100]
    if not text:
        return []
    ids: dict[int, None] = {}

    def add(statement) -> None:
        for customer_id in session.scalars(statement.limit(limit)):
            ids.setdefault(customer_id, None)

    number = normalize(text, region, strict=False) if any(ch.isdigit() for ch in text) else None
    if number is not None:
        add(select(_PHONES.c.customer_id).where(_PHONES.c.e164 == number.e164).order_by(_PHONES.c.customer_id))
    if text.isdigit() and len(text) < 19:
        add(select(_CUSTOMERS.c.id).where(_CUSTOMERS.c.id == int(text)))
    add(select(_CUSTOMERS.c.id).where(_CUSTOMERS.c.external_id == text))
    if not text.isdigit() and not text.startswith("+"):
        for variant in dict.fromkeys((text, text.title(), text.capitalize(), text.lower(), text.upper())):
            add(select(_CUSTOMERS.c.id)
                .where(_CUSTOMERS.c.name >= variant, _CUSTOMERS.c.name < variant + "\U0010ffff")
                .order_by(_CUSTOMERS.c.name))
            if len(ids) >= limit:
                break
    if not ids:
        return []
    chosen = list(ids)[:limit]
    rows = session.execute(select(*_CANDIDATE_COLUMNS).where(_CUSTOMERS.c.id.in_(chosen))).all()
    order = {customer_id: i for i, customer_id in enumerate(chosen)}
    return sorted(_candidates(session, rows), key=lambda c: order[c.customer_id])


def _clean_field(value: Any, limit: int, label: str, required: bool = False) -> str | None:
    text = "" if value is None else str(value).strip()
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in text):
        raise CustomerInputError(f"{label}: control characters are not allowed")
    if not text:
        if required:
            raise CustomerInputError(f"{label} is required")
        return None
    if len(text) > limit:
        raise CustomerInputError(f"{label}: at most {limit} characters")
    return text


def create_customer(
    session: Session,
    *,
    name: str,
    number: str,
    region: str,
    company: str | None = None,
    email: str | None = None,
    language: str | None = None,
    call_id: str | None = None,
    actor: str | None = None,
) -> int:
    """Quick-create a customer from the agent's new-contact form; links the call ``call_id`` to them.

    Raises :class:`CustomerInputError` with a message for the agent when a field is not usable.
    """
    clean_name = _clean_field(name, _NAME_MAX, "name", required=True)
    raw_number = _clean_field(number, 64, "number", required=True)
    parsed = normalize(raw_number, region, strict=False)
    if parsed is None:
        raise CustomerInputError(f"number: {raw_number!r} is not a phone number")
    values = {
        **_DEFAULTS,
        "name": clean_name,
        "company": _clean_field(company, 200, "company"),
        "email": _clean_field(email, 254, "email"),
        "language": _clean_field(language, 16, "language"),
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    customer_id = session.execute(insert(_CUSTOMERS).values(**values)).inserted_primary_key[0]
    session.execute(insert(_PHONES).values(customer_id=customer_id, e164=parsed.e164, kind=parsed.kind, raw=raw_number))
    if call_id:
        link_call_customer(session, call_id, customer_id)
    session.add(AuditEntry(actor=actor or "agent", action="customer.create", target=str(customer_id),
                           details={"call_id": call_id}))
    return int(customer_id)


def link_call_customer(session: Session, call_id: str, customer_id: int) -> bool:
    """Record who the caller of ``call_id`` turned out to be (picked from a shared number, or created)."""
    if session.get(Customer, customer_id) is None:
        return False
    result = session.execute(
        update(Interaction).where(Interaction.call_id == call_id).values(customer_id=customer_id)
    )
    return bool(result.rowcount)


def recent_contacts(session: Session, agent_id: str, *, limit: int = 20) -> list[RecentContact]:
    """The agent's own last contacts, newest first, with the customer and the disposition."""
    latest = (
        select(Disposition.code, Disposition.notes)
        .where(Disposition.interaction_id == Interaction.id)
        .order_by(Disposition.created_at.desc(), Disposition.id.desc())
        .limit(1)
        .correlate(Interaction)
    )
    rows = session.execute(
        select(
            Interaction.call_id, Interaction.arrived_at, Interaction.direction, Interaction.ani,
            Interaction.display_name, Interaction.customer_id, Customer.name, Interaction.queue, Interaction.outcome,
            latest.with_only_columns(Disposition.code).scalar_subquery(),
            latest.with_only_columns(Disposition.notes).scalar_subquery(),
            Interaction.talk_seconds,
        )
        .outerjoin(Customer, Customer.id == Interaction.customer_id)
        .where(Interaction.agent_id == agent_id)
        .order_by(Interaction.arrived_at.desc())
        .limit(limit)
    ).all()
    return [RecentContact(r[0], _aware(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]) for r in rows]


def _agent_callback(cb: Callback, customer_name: str | None) -> AgentCallback:
    return AgentCallback(cb.id, cb.number, cb.customer_id, customer_name, cb.queue, _aware(cb.due_from),
                         _aware(cb.due_until), cb.status, cb.owner_agent_id, cb.attempts, cb.notes)


def agent_callbacks(session: Session, agent_id: str, *, limit: int = 50) -> list[AgentCallback]:
    """Callbacks the agent may work (their own, and those for anyone) still to do, earliest due first."""
    rows = session.execute(
        select(Callback, Customer.name)
        .outerjoin(Customer, Customer.id == Callback.customer_id)
        .where(Callback.status.in_(_AGENT_CALLBACKS),
               or_(Callback.owner_agent_id == agent_id, Callback.owner_agent_id.is_(None)))
        .order_by(Callback.due_from, Callback.id)
        .limit(limit)
    ).all()
    return [_agent_callback(cb, name) for cb, name in rows]


def callback_for_agent(session: Session, callback_id: int, agent_id: str) -> AgentCallback | None:
    """One callback, if the agent may work it (theirs or anyone's, still to do)."""
    row = session.execute(
        select(Callback, Customer.name)
        .outerjoin(Customer, Customer.id == Callback.customer_id)
        .where(Callback.id == callback_id, Callback.status.in_(_AGENT_CALLBACKS),
               or_(Callback.owner_agent_id == agent_id, Callback.owner_agent_id.is_(None)))
    ).first()
    return _agent_callback(row[0], row[1]) if row else None


class SqlCustomerDirectory:
    """What the CTI server asks of the customer database, each call in its own short session.

    Blocking: the server runs every method in a worker thread, never on its event loop.
    """

    def __init__(self, db: Any, *, region: str, repeat_hours: float = REPEAT_HOURS, recent: int = 10) -> None:
        self.db = db
        self.region = region
        self.repeat_hours = repeat_hours
        self.recent = recent

    def screen_pop(self, *, number: str | None, customer_id: int | None, call: CallContext | None,
                   now: dt.datetime, repeat_hours: float | None = None) -> ScreenPop:
        """``repeat_hours``: the repeat-caller window (``center.repeat_caller_hours``); default the directory's."""
        with self.db.session() as session:
            return load_screen_pop(session, number=number, customer_id=customer_id, call=call, now=now,
                                   repeat_hours=self.repeat_hours if repeat_hours is None else repeat_hours,
                                   recent=self.recent)

    def warm_up(self) -> None:
        """Prepare the pop's statements (built and compiled once) before the first call needs them."""
        with self.db.session() as session:
            load_screen_pop(session, number="+0", customer_id=0, call=CallContext("warm-up"), now=utcnow(),
                            repeat_hours=self.repeat_hours, recent=self.recent)

    def profile(self, customer_id: int) -> CustomerProfile | None:
        with self.db.session() as session:
            return load_profile(session, customer_id, recent=self.recent)

    def search(self, query: str, *, limit: int = 20) -> list[CustomerCandidate]:
        with self.db.session() as session:
            return search_customers(session, query, region=self.region, limit=limit)

    def create(self, *, actor: str, call_id: str | None, **fields: Any) -> int:
        with self.db.session() as session:
            return create_customer(session, region=self.region, call_id=call_id, actor=actor, **fields)

    def link(self, call_id: str, customer_id: int) -> bool:
        with self.db.session() as session:
            return link_call_customer(session, call_id, customer_id)

    def recent_contacts(self, agent_id: str, *, limit: int = 20) -> list[RecentContact]:
        with self.db.session() as session:
            return recent_contacts(session, agent_id, limit=limit)

    def callbacks(self, agent_id: str, *, limit: int = 50) -> list[AgentCallback]:
        with self.db.session() as session:
            return agent_callbacks(session, agent_id, limit=limit)

    def callback(self, callback_id: int, agent_id: str) -> AgentCallback | None:
        with self.db.session() as session:
            return callback_for_agent(session, callback_id, agent_id)


# --------------------------------------------------------------------------- synthetic volume data
# For benchmarks: millions of rows in minutes. Each table is filled by INSERT ... SELECT over a
# recursive sequence, so SQLite generates the rows itself instead of Python building them one by
# one. Values come from integer hashes of the row number: the same sizes give the same data.

_SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma", "Zhu",
             "Hu", "Guo", "He", "Lin", "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis")
_GIVEN = ("Wei", "Fang", "Min", "Jie", "Lei", "Jing", "Yan", "Hui", "Qiang", "Ping", "Mei", "Tao", "Ling", "Bo",
          "James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Emma", "Daniel", "Olivia")
_SYNTH_PREFIX = "S"


@dataclass
class SyntheticResult:
    customers: int = 0
    phones: int = 0
    orders: int = 0
    order_items: int = 0
    cases: int = 0
    interactions: int = 0
    dispositions: int = 0
    callbacks: int = 0


def synthetic_number(n: int) -> str:
    """The primary number of synthetic customer ``n`` (a Chinese mobile number)."""
    return f"+86138{n:08d}"


def _seq(lo: int, hi: int):
    from sqlalchemy import literal

    seq = select(literal(lo).label("n")).cte("seq", recursive=True)
    return seq.union_all(select(seq.c.n + 1).where(seq.c.n < hi))


def _pick(values: Sequence[Any], index):
    from sqlalchemy import case

    return case({i: v for i, v in enumerate(values)}, value=index % len(values))


def _xor_shift(x, bits: int):
    """``x ^ (x >> bits)`` for SQLite, which has no XOR operator."""
    shifted = x.op(">>")(bits)
    return x.op("|")(shifted) - x.op("&")(shifted)


def _hash(n, salt: int):
    """An integer mix of ``n`` (an SQL expression), 0 <= h < 2**31; products stay below 2**63."""
    x = (n * 2654435761 + salt * 374761393) % 4294967296
    x = (_xor_shift(x, 15) * 1597334677) % 4294967296
    return _xor_shift(x, 13) % 2147483648


def generate_synthetic(
    db: Any,
    *,
    customers: int,
    interactions: int,
    now: dt.datetime,
    agent_ids: Sequence[str],
    queues: Sequence[str],
    codes: Sequence[str],
    progress: Any = None,
    chunk: int = 250_000,
) -> SyntheticResult:
    """Fill an empty, migrated SQLite database with ``customers`` customers and ``interactions`` contacts.

    Also about 2 orders (3 items) and 0.3 cases per customer, one number per customer plus a
    second one for 30% and a shared office line for one in 200, a disposition per answered
    contact, and pending callbacks for 5% of customers. ``progress(step, done, total)`` is called
    after every chunk. ``agent_ids`` must already be in the agents table.
    """
    from sqlalchemy import case, func as f, literal, text

    if db.dialect != "sqlite":
        raise ValueError("synthetic data generation is written for SQLite (the benchmark database)")
    if not agent_ids or not queues or not codes:
        raise ValueError("need at least one agent, queue and disposition code")
    with db.engine.connect() as conn:
        if conn.scalar(select(func.count()).select_from(_CUSTOMERS)):
            raise ValueError("synthetic data goes into an empty database; this one already has customers")
    now_text = _utc(now).strftime("%Y-%m-%d %H:%M:%S")
    result = SyntheticResult()
    orders_total = customers * 2
    items_total = orders_total * 3 // 2
    cases_total = customers * 3 // 10
    callbacks_total = customers // 20
    plan = [
        ("customers", customers), ("phone numbers", customers), ("orders", orders_total),
        ("order items", items_total), ("cases", cases_total), ("interactions", interactions),
        ("callbacks", callbacks_total),
    ]
    tell = progress or (lambda step, done, total: None)

    def moment(n, salt: int, span_days: int):
        """``now`` minus a hashed number of seconds within ``span_days``, as SQLite datetime text."""
        seconds = _hash(n, salt) % (span_days * 86400)
        return f.datetime(literal(now_text), f.printf("-%d seconds", seconds))

    def run_chunks(step: str, total: int, build) -> int:
        done = 0
        for lo in range(1, total + 1, chunk):
            hi = min(total, lo + chunk - 1)
            with db.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
                conn.exec_driver_sql("PRAGMA cache_size=-800000")
                conn.exec_driver_sql("PRAGMA temp_store=MEMORY")
                for statement in build(lo, hi):
                    conn.execute(statement)
            done = hi
            tell(step, done, total)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return done

    with db.session() as session:
        from callcenter.db.demo import ensure_catalog

        products = [(p.id, p.price, p.warranty_months) for p in ensure_catalog(session)]
    product_count = len(products)
    product_ids = [p[0] for p in products]
    stamp = literal(now_text)

    c = _CUSTOMERS

    def customers_chunk(lo: int, hi: int):
        seq = _seq(lo, hi)
        n = seq.c.n
        h = _hash(n, 1)
        tier = case((h % 100 < 60, "standard"), (h % 100 < 82, "silver"), (h % 100 < 94, "gold"), else_="vip")
        name = _pick(_SURNAMES, n).op("||")(literal(" ")).op("||")(_pick(_GIVEN, n // len(_SURNAMES)))
        company = f.iif(h % 4 == 0, literal("Company ").op("||")(f.printf("%05d", h % 50000)), None)
        rows = select(
            n, literal(_SYNTH_PREFIX).op("||")(f.printf("%08d", n)), name, company,
            literal("c").op("||")(n).op("||")(literal("@example.com")), tier,
            f.iif(h % 4 == 0, "business", "consumer"), f.iif(h % 10 < 7, "zh", "en"),
            f.iif(h % 67 == 0, 1, 0), f.iif(h % 67 == 0, "chargeback fraud", None),
            f.iif(h % 41 == 1, 1, 0), f.iif(h % 41 == 1, "asked not to be called", None),
            f.iif(h % 4 == 0, (h % 5) * 10000, 0), f.iif(h % 13 == 0, h % 20000, 0),
            stamp, stamp,
        ).select_from(seq)
        yield insert(c).from_select(
            ["id", "external_id", "name", "company", "email", "tier", "segment", "language", "blacklisted",
             "blacklist_reason", "do_not_call", "do_not_call_reason", "credit_limit", "balance", "created_at",
             "updated_at"], rows)

    result.customers = run_chunks("customers", customers, customers_chunk)

    def phones_chunk(lo: int, hi: int):
        seq = _seq(lo, hi)
        n = seq.c.n
        primary = literal("+86138").op("||")(f.printf("%08d", n))
        yield insert(_PHONES).from_select(["customer_id", "e164", "kind", "raw"],
                                          select(n, primary, literal("mobile"), primary).select_from(seq))
        second = literal("+86139").op("||")(f.printf("%08d", n))
        yield insert(_PHONES).from_select(
            ["customer_id", "e164", "kind", "raw"],
            select(n, second, literal("mobile"), second).select_from(seq).where(_hash(n, 2) % 10 < 3))
        shared = literal("+86138").op("||")(f.printf("%08d", n - 1))  # an office line shared with the previous one
        yield insert(_PHONES).from_select(
            ["customer_id", "e164", "kind", "raw"],
            select(n, shared, literal("fixed"), shared).select_from(seq).where(n % 200 == 0, n > 1))

    run_chunks("phone numbers", customers, phones_chunk)
    with db.engine.connect() as conn:
        result.phones = conn.scalar(select(func.count()).select_from(_PHONES)) or 0

    orders = Order.__table__

    def order_time(n):
        return moment(n, 3, 1460)

    def orders_chunk(lo: int, hi: int):
        seq = _seq(lo, hi)
        n = seq.c.n
        h = _hash(n, 4)
        yield insert(orders).from_select(
            ["id", "order_number", "customer_id", "ordered_at", "amount", "currency", "status"],
            select(n, literal("SY").op("||")(f.printf("%09d", n)), (n - 1) // 2 + 1, order_time(n),
                   299 + h % 9000, literal("CNY"),
                   case((h % 20 < 16, "delivered"), else_=_pick(["shipped", "paid", "cancelled", "returned"], h))).select_from(seq))

    result.orders = run_chunks("orders", orders_total, orders_chunk)

    items = OrderItem.__table__

    def items_chunk(lo: int, hi: int):
        seq = _seq(lo, hi)
        n = seq.c.n
        order_id = (n - 1) * 2 // 3 + 1
        product = _pick(product_ids, _hash(n, 5) % product_count)
        yield insert(items).from_select(
            ["id", "order_id", "product_id", "quantity", "unit_price", "serial_number", "warranty_end"],
            select(n, order_id, product, 1, 299 + _hash(n, 6) % 5000, literal("SN").op("||")(f.printf("%010d", n)),
                   f.date(order_time(order_id), literal("+24 months"))).select_from(seq))

    result.order_items = run_chunks("order items", items_total, items_chunk)

    cases_table = Case.__table__

    def cases_chunk(lo: int, hi: int):
        seq = _seq(lo, hi)
        n = seq.c.n
        h = _hash(n, 7)
        opened = moment(n, 8, 400)
        closed = h % 10 < 7
        yield insert(cases_table).from_select(
            ["id", "customer_id", "kind", "status", "opened_at", "closed_at", "summary"],
            select(n, (n - 1) * 10 // 3 + 1, _pick(["repair", "repair", "inquiry", "complaint"], h),
                   f.iif(closed, "closed", _pick(["open", "pending"], h // 10)), opened,
                   f.iif(closed, opened, None),
                   _pick(["unit does not cool", "error code E4 on display", "asked for invoice copy",
                          "late delivery", "water leaking underneath"], h // 7)).select_from(seq))

    result.cases = run_chunks("cases", cases_total, cases_chunk)

    inter = Interaction.__table__
    dispositions = Disposition.__table__
    per_customer = max(1, interactions // max(1, customers))

    def interactions_chunk(lo: int, hi: int):
        seq = _seq(lo, hi)
        n = seq.c.n
        h = _hash(n, 9)
        customer = (n - 1) * customers // interactions + 1
        arrived = moment(n, 10, 180)
        abandoned = h % 12 == 0
        wait = 3 + h % 240
        talk = 40 + (h // 240) % 900
        yield insert(inter).from_select(
            ["id", "call_id", "direction", "ani", "dnis", "display_name", "customer_id", "queue", "agent_id",
             "arrived_at", "queued_at", "offered_at", "answered_at", "ended_at", "wait_seconds", "talk_seconds",
             "wrap_seconds", "outcome", "ivr_path", "language"],
            select(
                n, literal("syn-").op("||")(n), f.iif(h % 7 == 0, "outbound", "inbound"),
                literal("+86138").op("||")(f.printf("%08d", customer)), literal("+864008001234"), None, customer,
                _pick(list(queues), h // 3), f.iif(abandoned, None, _pick(list(agent_ids), h // 5)),
                arrived, arrived, f.iif(abandoned, None, arrived), f.iif(abandoned, None, arrived),
                f.datetime(arrived, f.printf("+%d seconds", wait + f.iif(abandoned, 0, talk))),
                wait, f.iif(abandoned, None, talk), f.iif(abandoned, None, 5 + h % 55),
                f.iif(abandoned, "abandoned", "answered"),
                literal('[{"node": "language", "step": "input", "digits": "1"}]'), literal("zh"),
            ).select_from(seq))
        yield insert(dispositions).from_select(
            ["interaction_id", "code", "notes", "agent_id", "created_at"],
            select(inter.c.id, _pick(list(codes), inter.c.id), _pick(["explained settings", "walked through reset",
                                                                      "confirmed order status", "price too high",
                                                                      "technician visit booked"], inter.c.id // 3),
                   inter.c.agent_id, inter.c.ended_at)
            .where(inter.c.id.between(lo, hi), inter.c.outcome == "answered"))

    result.interactions = run_chunks("interactions", interactions, interactions_chunk)
    with db.engine.connect() as conn:
        result.dispositions = conn.scalar(select(func.count()).select_from(dispositions)) or 0

    callbacks_table = Callback.__table__

    def callbacks_chunk(lo: int, hi: int):
        seq = _seq(lo, hi)
        n = seq.c.n
        h = _hash(n, 11)
        customer = n * 20 - 7
        due = f.datetime(literal(now_text), f.printf("%+d seconds", (h % (96 * 3600)) - 24 * 3600))
        yield insert(callbacks_table).from_select(
            ["id", "number", "customer_id", "queue", "due_from", "due_until", "owner_agent_id", "status", "attempts",
             "source", "created_at", "updated_at"],
            select(n, literal("+86138").op("||")(f.printf("%08d", customer)), customer, _pick(list(queues), h),
                   due, f.datetime(due, literal("+2 hours")), f.iif(h % 2 == 0, _pick(list(agent_ids), h // 2), None),
                   literal("pending"), 0, _pick(["ivr", "agent", "campaign"], h // 3), stamp, stamp).select_from(seq))

    result.callbacks = run_chunks("callbacks", callbacks_total, callbacks_chunk)
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return result


SYNTHETIC_PLAN = ("customers", "phone numbers", "orders", "order items", "cases", "interactions", "callbacks")
