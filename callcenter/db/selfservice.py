"""The IVR's self-service port over the database: callers, order status, warranty and balances.

Returns the plain records of :mod:`ivr.ports`, never ORM objects. Keys come from a telephone
keypad, so numbers that carry letters in the database (``SO00001234``, ``AC1234567890``) are
also found by their digits alone when that matches exactly one record.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.db.engine import Database
from callcenter.db.models import Customer, Order, OrderItem, PhoneNumber, Product
from ivr.ports import TIERS, AccountBalance, CallerRecord, OrderStatus, WarrantyStatus

_MAX_KEY = 32
_TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlSelfService:
    """:class:`ivr.ports.SelfServicePort` on a :class:`Database`.

    ``timezone`` is the center's zone (``Settings.hours.timezone``): order dates are the local
    calendar day the order was placed.
    """

    def __init__(self, db: Database, *, timezone: str = "UTC"):
        self.db = db
        self.zone = ZoneInfo(timezone)

    # ------------------------------------------------------------------ helpers

    def _local_date(self, moment: dt.datetime) -> dt.date:
        if moment.tzinfo is None:  # SQLite hands back naive UTC
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(self.zone).date()

    @staticmethod
    def _by_key(session: Session, model, column, key: str) -> list:
        """Rows whose ``column`` equals ``key``; failing that, whose digits alone equal it."""
        key = key.strip()
        if not key or len(key) > _MAX_KEY:
            return []
        rows = list(session.scalars(select(model).where(column == key)))
        if rows or not key.isdigit():
            return rows
        pattern = "%" + _like_escape(key)
        query = select(model).where(column.like(pattern, escape="\\")).limit(50)
        return [row for row in session.scalars(query) if _digits(getattr(row, column.key) or "") == key]

    # ------------------------------------------------------------------ the port

    def find_caller(self, e164: str) -> CallerRecord | None:
        if not e164 or len(e164) > 20:
            return None
        with self.db.session() as session:
            customers = list(
                session.scalars(
                    select(Customer).join(PhoneNumber, PhoneNumber.customer_id == Customer.id).where(PhoneNumber.e164 == e164)
                ).unique()
            )
            if not customers:
                return None
            # a shared line: prefer a customer in good standing, then the highest tier, then the oldest
            customers.sort(key=lambda c: (bool(c.blacklisted), -_TIER_RANK.get(c.tier, 0), c.id))
            best = customers[0]
            return CallerRecord(
                customer_id=best.id,
                name=best.name,
                tier=best.tier if best.tier in TIERS else "standard",
                blacklisted=bool(best.blacklisted),
                language=best.language,
                shared=len(customers) > 1,
            )

    def order_status(self, order_number: str) -> OrderStatus | None:
        with self.db.session() as session:
            orders = self._by_key(session, Order, Order.order_number, order_number)
            if len(orders) != 1:
                return None
            order = orders[0]
            items = session.scalar(select(func.coalesce(func.sum(OrderItem.quantity), 0)).where(OrderItem.order_id == order.id))
            return OrderStatus(
                order_number=order.order_number,
                status=order.status,
                amount=Decimal(order.amount),
                currency=order.currency,
                ordered_at=self._local_date(order.ordered_at),
                items=int(items or 0),
            )

    def warranty(self, *, serial_number: str | None = None, order_number: str | None = None) -> WarrantyStatus | None:
        with self.db.session() as session:
            if serial_number is not None:
                items = self._by_key(session, OrderItem, OrderItem.serial_number, serial_number)
                if len(items) != 1:
                    return None
                item = items[0]
                order = session.get(Order, item.order_id)
            elif order_number is not None:
                orders = self._by_key(session, Order, Order.order_number, order_number)
                if len(orders) != 1:
                    return None
                order = orders[0]
                candidates = list(session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)))
                if not candidates:
                    return None
                # the item whose cover lasts longest speaks for the order
                item = max(candidates, key=lambda i: (self._warranty_end(session, i, order) or dt.date.min, -i.id))
            else:
                return None
            product = session.get(Product, item.product_id)
            return WarrantyStatus(
                serial_number=item.serial_number,
                order_number=order.order_number if order else None,
                product=product.name if product else "",
                warranty_end=self._warranty_end(session, item, order),
            )

    def _warranty_end(self, session: Session, item: OrderItem, order: Order | None) -> dt.date | None:
        if item.warranty_end is not None:
            return item.warranty_end
        product = session.get(Product, item.product_id)
        if product is None or order is None:
            return None
        start = self._local_date(order.ordered_at)
        return start + dt.timedelta(days=30 * product.warranty_months)

    def account_balance(self, customer_id: int) -> AccountBalance | None:
        with self.db.session() as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                return None
            currency = session.scalar(
                select(Order.currency).where(Order.customer_id == customer_id).order_by(Order.ordered_at.desc()).limit(1)
            )
            return AccountBalance(
                customer_id=customer.id,
                balance=Decimal(customer.balance or 0),
                currency=currency or "CNY",
                credit_limit=Decimal(customer.credit_limit or 0),
            )
