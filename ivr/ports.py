"""The self-service port: how the IVR's lookups reach customer data, and an in-memory twin.

The session never calls the port itself: it emits ``Lookup`` actions and receives
``LookupCompleted`` events. The driver (core, the simulator, tests) answers a ``Lookup`` with
:func:`run_lookup`, which calls whichever port it was given: ``SqlSelfService`` in
``callcenter.db.selfservice`` for the real database, :class:`InMemorySelfService` for tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from ivr.actions import Lookup
from ivr.events import LookupCompleted

TIERS = ("standard", "silver", "gold", "vip")
ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "returned")
WARRANTY_STATUSES = ("active", "expired", "unknown")
BALANCE_STATUSES = ("owing", "credit", "clear")
LOOKUP_KINDS = ("caller", "order_status", "warranty", "balance")


@dataclass(frozen=True, slots=True)
class CallerRecord:
    """The customer a calling number belongs to."""

    customer_id: int
    name: str
    tier: str = "standard"
    blacklisted: bool = False
    language: str | None = None
    shared: bool = False  # the number belongs to more than one customer

    @property
    def vip(self) -> bool:
        return self.tier == "vip"


@dataclass(frozen=True, slots=True)
class OrderStatus:
    order_number: str
    status: str
    amount: Decimal
    currency: str
    ordered_at: dt.date
    items: int = 1


@dataclass(frozen=True, slots=True)
class WarrantyStatus:
    """``warranty_end`` is the last day covered; None when it is not known."""

    serial_number: str | None
    order_number: str | None
    product: str
    warranty_end: dt.date | None


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """``balance`` is the amount owed (above 0 is arrears, below 0 a credit)."""

    customer_id: int
    balance: Decimal
    currency: str = "CNY"
    credit_limit: Decimal = Decimal("0")


@runtime_checkable
class SelfServicePort(Protocol):
    """Read-only questions the IVR may ask about callers, orders and accounts."""

    def find_caller(self, e164: str) -> CallerRecord | None: ...

    def order_status(self, order_number: str) -> OrderStatus | None: ...

    def warranty(self, *, serial_number: str | None = None, order_number: str | None = None) -> WarrantyStatus | None: ...

    def account_balance(self, customer_id: int) -> AccountBalance | None: ...


@dataclass
class InMemorySelfService:
    """The port over plain dictionaries, for tests and demos."""

    callers: dict[str, CallerRecord] = field(default_factory=dict)
    orders: dict[str, OrderStatus] = field(default_factory=dict)
    warranties: list[WarrantyStatus] = field(default_factory=list)
    balances: dict[int, AccountBalance] = field(default_factory=dict)
    calls: list[tuple[str, str | int | None]] = field(default_factory=list)

    def find_caller(self, e164: str) -> CallerRecord | None:
        self.calls.append(("caller", e164))
        return self.callers.get(e164)

    def order_status(self, order_number: str) -> OrderStatus | None:
        self.calls.append(("order_status", order_number))
        return self.orders.get(order_number)

    def warranty(self, *, serial_number: str | None = None, order_number: str | None = None) -> WarrantyStatus | None:
        self.calls.append(("warranty", serial_number or order_number))
        for item in self.warranties:
            if serial_number is not None and item.serial_number == serial_number:
                return item
            if order_number is not None and item.order_number == order_number:
                return item
        return None

    def account_balance(self, customer_id: int) -> AccountBalance | None:
        self.calls.append(("balance", customer_id))
        return self.balances.get(customer_id)


def run_lookup(port: SelfServicePort, lookup: Lookup) -> LookupCompleted:
    """Answer a ``Lookup`` action from ``port``; a failing port becomes ``LookupCompleted(error=...)``."""
    try:
        if lookup.kind == "caller":
            result = port.find_caller(lookup.key) if lookup.key else None
        elif lookup.kind == "order_status":
            result = port.order_status(lookup.key) if lookup.key else None
        elif lookup.kind == "warranty":
            if not lookup.key:
                result = None
            elif lookup.by == "serial":
                result = port.warranty(serial_number=lookup.key)
            else:
                result = port.warranty(order_number=lookup.key)
        elif lookup.kind == "balance":
            result = port.account_balance(lookup.customer_id) if lookup.customer_id is not None else None
        else:
            return LookupCompleted(lookup.request_id, error=f"unknown lookup kind {lookup.kind!r}")
    except Exception as exc:  # the port's failure is the session's "failed" branch, not a crash
        return LookupCompleted(lookup.request_id, error=f"{type(exc).__name__}: {exc}")
    return LookupCompleted(lookup.request_id, result=result)
