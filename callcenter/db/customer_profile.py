"""The customer 360 profile: one customer's details, orders, cases, contacts and callbacks."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from functools import cache

from sqlalchemy import bindparam as bp
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from callcenter.db._customer_common import CUSTOMERS, PHONES, aware, callback_summary, latest_disposition
from callcenter.db.models import Agent, Callback, Case, Interaction, Order, OrderItem, Product
from screenpop.profile import CaseSummary, ContactSummary, CustomerProfile, OrderLine, OrderSummary


class _ProfileStatements:
    """The profile's queries, built once with bound parameters: a pop runs them with no SQL construction."""

    def __init__(self) -> None:
        cu, ph = CUSTOMERS, PHONES
        orders, items, products = Order.__table__, OrderItem.__table__, Product.__table__
        cases, inter = Case.__table__, Interaction.__table__
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
        code, notes = latest_disposition()
        self.contacts = (
            select(
                inter.c.arrived_at, inter.c.direction, inter.c.queue, agents.c.name, inter.c.agent_id,
                inter.c.outcome, code, notes, inter.c.talk_seconds,
            )
            .select_from(inter.outerjoin(agents, agents.c.id == inter.c.agent_id))
            .where(inter.c.customer_id == cid,
                   or_(inter.c.call_id.is_(None), inter.c.call_id != bp("exclude")))
            .order_by(inter.c.arrived_at.desc())
            .limit(bp("recent"))
        )
        self.callbacks = (
            select(callbacks.c.id, callbacks.c.number, callbacks.c.due_from, callbacks.c.due_until, callbacks.c.status,
                   callbacks.c.owner_agent_id, callbacks.c.attempts)
            .where(callbacks.c.customer_id == cid)
            .order_by(callbacks.c.due_from.desc())
            .limit(bp("recent"))
        )


@cache
def _profile_statements() -> _ProfileStatements:
    return _ProfileStatements()


def load_profile(session: Session, customer_id: int, *, recent: int = 10,
                 exclude_call_id: str | None = None) -> CustomerProfile | None:
    """Everything the agent needs about one customer, in a fixed, small number of queries.

    ``exclude_call_id``: the call in progress, left out of the contact history (a pop shows it apart).
    """
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
            OrderSummary(o.order_number, aware(o.ordered_at), o.amount, o.currency, o.status, tuple(lines[o.id]))
            for o in orders
        ),
        order_count=count,
        lifetime_spend=Decimal(spend),
        last_order_at=aware(last),
        cases=tuple(
            CaseSummary(c.id, c.kind, c.status, aware(c.opened_at), aware(c.closed_at), c.summary) for c in cases
        ),
        contacts=tuple(
            ContactSummary(aware(at), direction, queue, agent_name or agent_id, outcome, code, notes, talk)
            for at, direction, queue, agent_name, agent_id, outcome, code, notes, talk in contacts
        ),
        callbacks=tuple(callback_summary(cb) for cb in callbacks),
    )
