"""The agent desktop's customer look-ups: screen pop, search, quick-create, recent contacts, callbacks.

Every function takes a session and returns plain values of :mod:`screenpop`;
:class:`SqlCustomerDirectory` wraps them with their own short sessions for the CTI server, which
calls it from worker threads. :func:`find_customers` and :func:`count_customers` serve the
``callcenter customers show`` and ``export`` commands.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam as bp
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from callcenter.db._customer_common import (
    CUSTOMERS,
    NEW_CUSTOMER_DEFAULTS,
    PHONES,
    aware,
    callback_summary,
    latest_disposition,
)
from callcenter.clock import as_utc
from callcenter.db.customer_profile import load_profile
from callcenter.db.models import Agent, AuditEntry, Callback, Customer, Interaction
from callcenter.clock import utcnow
from callcenter.errors import DatabaseError
from screenpop import choose_pop_kind
from screenpop.numbers import normalize
from screenpop.pop import (
    REPEAT_HOURS,
    AgentCallback,
    CallContext,
    CustomerCandidate,
    RecentContact,
    ScreenPop,
)
from screenpop.profile import CallbackSummary, ContactSummary, CustomerProfile


def count_customers(session: Session) -> int:
    """How many customers are stored (the export's progress total)."""
    return session.scalar(select(func.count()).select_from(CUSTOMERS)) or 0


@dataclass(frozen=True, slots=True)
class CustomerMatch:
    """A customer as ``callcenter customers show`` lists them when several match."""

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
        conditions.append(CUSTOMERS.c.id.in_(select(PHONES.c.customer_id).where(PHONES.c.e164 == e164)))
    if key:
        conditions.append(CUSTOMERS.c.external_id == key)
        if key.isdigit() and len(key) < 19:
            conditions.append(CUSTOMERS.c.id == int(key))
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
        select(PHONES.c.customer_id, PHONES.c.e164).where(PHONES.c.customer_id.in_([r.id for r in rows]))
    ):
        numbers[customer_id].append(number)
    return [
        CustomerMatch(r.id, r.external_id, r.name, r.company, r.tier, tuple(numbers.get(r.id, ())))
        for r in rows
    ]


_ACTIVE_CALLBACKS = ("pending", "scheduled", "in_progress")
_AGENT_CALLBACKS = ("pending", "scheduled")
_NAME_MAX = 200


class CustomerInputError(DatabaseError, ValueError):
    """Input for a new customer that cannot be stored; the message is for the agent."""


def _not_call(call_id: str | None) -> tuple[Any, ...]:
    if not call_id:
        return ()
    return (or_(Interaction.call_id.is_(None), Interaction.call_id != call_id),)


def _numbers_of(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    numbers: dict[int, list[str]] = defaultdict(list)
    if ids:
        for customer_id, e164 in session.execute(
            select(PHONES.c.customer_id, PHONES.c.e164).where(PHONES.c.customer_id.in_(list(ids))).order_by(PHONES.c.id)
        ):
            numbers[customer_id].append(e164)
    return {k: tuple(v) for k, v in numbers.items()}


_CANDIDATE_COLUMNS = (
    CUSTOMERS.c.id, CUSTOMERS.c.external_id, CUSTOMERS.c.name, CUSTOMERS.c.company, CUSTOMERS.c.tier,
    CUSTOMERS.c.blacklisted, CUSTOMERS.c.do_not_call,
)


def _candidates(session: Session, rows: Sequence[Any]) -> list[CustomerCandidate]:
    numbers = _numbers_of(session, [r.id for r in rows])
    return [
        CustomerCandidate(r.id, r.external_id, r.name, r.company, r.tier, numbers.get(r.id, ()), bool(r.blacklisted),
                          bool(r.do_not_call))
        for r in rows
    ]


class _PopStatements:
    """The pop's own queries (who owns the number, repeat contacts), built once like the profile's."""

    def __init__(self) -> None:
        cu, ph, inter = CUSTOMERS, PHONES, Interaction.__table__
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
            inter.c.customer_id == bp("cid"), inter.c.arrived_at >= bp("since", type_=inter.c.arrived_at.type),
            not_this_call, or_(inter.c.ani.is_(None), inter.c.ani != bp("number")))


@cache
def _pop_statements() -> _PopStatements:
    return _PopStatements()


def customers_with_number(session: Session, e164: str, *, limit: int = 20) -> list[CustomerCandidate]:
    """Every customer owning ``e164`` (a shared office line gives several), oldest first."""
    rows = session.connection().execute(_pop_statements().with_number, {"e164": e164, "limit": limit}).all()
    return _candidates(session, rows)


def _contacts(session: Session, *conditions: Any, limit: int) -> list[ContactSummary]:
    code, notes = latest_disposition()
    rows = session.execute(
        select(
            Interaction.arrived_at, Interaction.direction, Interaction.queue, Interaction.agent_id,
            Interaction.outcome, Interaction.talk_seconds, Agent.name, code, notes,
        )
        .outerjoin(Agent, Agent.id == Interaction.agent_id)
        .where(*conditions)
        .order_by(Interaction.arrived_at.desc())
        .limit(limit)
    ).all()
    return [
        ContactSummary(aware(r[0]), r[1], r[2], r[6] or r[3], r[4], r[7], r[8], r[5])
        for r in rows
    ]


def count_recent_contacts(session: Session, *, since: dt.datetime, number: str | None, customer_id: int | None,
                          exclude_call_id: str | None = None) -> int:
    """Contacts from ``number`` or with ``customer_id`` since ``since``, the call ``exclude_call_id`` left out."""
    q = _pop_statements()
    run = session.connection().execute
    args = {"since": as_utc(since), "exclude": exclude_call_id or "", "number": number or "", "cid": customer_id}
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
        profile = load_profile(session, customer_id, recent=recent, exclude_call_id=exclude)
    if profile is None and number:
        candidates = customers_with_number(session, number)
        if len(candidates) == 1:
            profile = load_profile(session, candidates[0].customer_id, recent=recent, exclude_call_id=exclude)
    kind = choose_pop_kind(has_profile=profile is not None, candidates=len(candidates))
    recent_calls = count_recent_contacts(
        session, since=now - dt.timedelta(hours=repeat_hours), number=number,
        customer_id=profile.customer_id if profile else None, exclude_call_id=exclude,
    )
    history: list[ContactSummary] = []
    callbacks: list[CallbackSummary] = []
    if kind != "customer" and number:
        history = _contacts(session, Interaction.ani == number, *_not_call(exclude), limit=recent)
        callbacks = [
            callback_summary(cb) for cb in session.scalars(
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
        add(select(PHONES.c.customer_id).where(PHONES.c.e164 == number.e164).order_by(PHONES.c.customer_id))
    if text.isdigit() and len(text) < 19:
        add(select(CUSTOMERS.c.id).where(CUSTOMERS.c.id == int(text)))
    add(select(CUSTOMERS.c.id).where(CUSTOMERS.c.external_id == text))
    if not text.isdigit() and not text.startswith("+"):
        for variant in dict.fromkeys((text, text.title(), text.capitalize(), text.lower(), text.upper())):
            add(select(CUSTOMERS.c.id)
                .where(CUSTOMERS.c.name >= variant, CUSTOMERS.c.name < variant + "\U0010ffff")
                .order_by(CUSTOMERS.c.name))
            if len(ids) >= limit:
                break
    if not ids:
        return []
    chosen = list(ids)[:limit]
    rows = session.execute(select(*_CANDIDATE_COLUMNS).where(CUSTOMERS.c.id.in_(chosen))).all()
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
        **NEW_CUSTOMER_DEFAULTS,
        "name": clean_name,
        "company": _clean_field(company, 200, "company"),
        "email": _clean_field(email, 254, "email"),
        "language": _clean_field(language, 16, "language"),
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    customer_id = session.execute(insert(CUSTOMERS).values(**values)).inserted_primary_key[0]
    session.execute(insert(PHONES).values(customer_id=customer_id, e164=parsed.e164, kind=parsed.kind, raw=raw_number))
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
    code, notes = latest_disposition()
    rows = session.execute(
        select(
            Interaction.call_id, Interaction.arrived_at, Interaction.direction, Interaction.ani,
            Interaction.display_name, Interaction.customer_id, Customer.name, Interaction.queue, Interaction.outcome,
            code, notes, Interaction.talk_seconds,
        )
        .outerjoin(Customer, Customer.id == Interaction.customer_id)
        .where(Interaction.agent_id == agent_id)
        .order_by(Interaction.arrived_at.desc())
        .limit(limit)
    ).all()
    return [RecentContact(r[0], aware(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11]) for r in rows]


def _agent_callback(cb: Callback, customer_name: str | None) -> AgentCallback:
    return AgentCallback(cb.id, cb.number, cb.customer_id, customer_name, cb.queue, aware(cb.due_from),
                         aware(cb.due_until), cb.status, cb.owner_agent_id, cb.attempts, cb.notes)


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
