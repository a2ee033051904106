"""Counts for the contact-center overview."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from callcenter.db.engine import Database
from callcenter.db.models import Callback, Case, Customer, Interaction, Order, OrderItem, PhoneNumber


@dataclass(frozen=True)
class Overview:
    customers: int
    numbers: int
    by_tier: dict[str, int]
    blacklisted: int
    do_not_call: int
    in_arrears: int
    orders: int
    open_cases: int
    expired_warranties: int
    pending_callbacks: int
    overdue_callbacks: int
    interactions_30d: int
    abandoned_30d: int
    sample_vip_id: int | None


def overview(db: Database, now: dt.datetime) -> Overview:
    with db.session() as s:
        count = lambda q: s.scalar(q) or 0  # noqa: E731
        by_tier = dict(s.execute(select(Customer.tier, func.count()).group_by(Customer.tier)).all())
        since = now - dt.timedelta(days=30)
        active = Callback.status.in_(("pending", "scheduled"))
        return Overview(
            customers=sum(by_tier.values()),
            numbers=count(select(func.count()).select_from(PhoneNumber)),
            by_tier=by_tier,
            blacklisted=count(select(func.count()).where(Customer.blacklisted)),
            do_not_call=count(select(func.count()).where(Customer.do_not_call)),
            in_arrears=count(select(func.count()).where(Customer.balance > 0)),
            orders=count(select(func.count()).select_from(Order)),
            open_cases=count(select(func.count()).where(Case.status != "closed")),
            expired_warranties=count(select(func.count()).where(OrderItem.warranty_end < now.date())),
            pending_callbacks=count(select(func.count()).where(active)),
            overdue_callbacks=count(select(func.count()).where(active, Callback.due_until < now)),
            interactions_30d=count(select(func.count()).where(Interaction.arrived_at >= since)),
            abandoned_30d=count(
                select(func.count()).where(Interaction.arrived_at >= since, Interaction.outcome == "abandoned")
            ),
            sample_vip_id=s.scalar(
                select(Customer.id)
                .where(Customer.tier == "vip", ~Customer.blacklisted)
                .where(Customer.id.in_(select(Order.customer_id)))
                .order_by(Customer.id)
                .limit(1)
            ),
        )
