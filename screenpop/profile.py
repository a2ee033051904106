"""The customer-360 picture as plain values, and the rules derived from them (RFM, warranty, repeat caller).

Storage adapters fill these dataclasses; rendering and routing read them. Nothing here does I/O;
every rule that depends on time takes ``now``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class OrderLine:
    product: str
    quantity: int
    unit_price: Decimal
    serial_number: str | None
    warranty_end: dt.date | None

    def warranty_status(self, today: dt.date) -> str:
        """'none', 'expired', 'expiring' (within 30 days) or 'active'."""
        if self.warranty_end is None:
            return "none"
        if self.warranty_end < today:
            return "expired"
        if (self.warranty_end - today).days <= 30:
            return "expiring"
        return "active"


@dataclass(frozen=True, slots=True)
class OrderSummary:
    order_number: str
    ordered_at: dt.datetime
    amount: Decimal
    currency: str
    status: str
    lines: tuple[OrderLine, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseSummary:
    case_id: int
    kind: str
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    summary: str


@dataclass(frozen=True, slots=True)
class ContactSummary:
    """A past interaction with its disposition."""

    at: dt.datetime
    direction: str
    queue: str | None
    agent: str | None
    outcome: str | None
    disposition: str | None
    notes: str | None
    talk_seconds: float | None


@dataclass(frozen=True, slots=True)
class CallbackSummary:
    callback_id: int
    number: str
    due_from: dt.datetime
    due_until: dt.datetime | None
    status: str
    owner: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    customer_id: int
    external_id: str | None
    name: str
    company: str | None
    email: str | None
    tier: str
    language: str | None
    notes: str | None
    blacklisted: bool
    blacklist_reason: str | None
    do_not_call: bool
    do_not_call_reason: str | None
    credit_limit: Decimal
    balance: Decimal
    numbers: tuple[str, ...]
    orders: tuple[OrderSummary, ...] = ()
    order_count: int = 0
    lifetime_spend: Decimal = Decimal("0")
    last_order_at: dt.datetime | None = None
    cases: tuple[CaseSummary, ...] = ()
    contacts: tuple[ContactSummary, ...] = ()
    callbacks: tuple[CallbackSummary, ...] = field(default_factory=tuple)

    @property
    def vip(self) -> bool:
        return self.tier == "vip"

    @property
    def in_arrears(self) -> bool:
        return self.balance > 0

    @property
    def open_cases(self) -> tuple[CaseSummary, ...]:
        return tuple(c for c in self.cases if c.status != "closed")

    def rfm(self, now: dt.datetime) -> Rfm:
        return rfm_class(self.last_order_at, self.order_count, self.lifetime_spend, now)

    def repeat_caller(self, now: dt.datetime, within_hours: float = 24) -> bool:
        horizon = now - dt.timedelta(hours=within_hours)
        return any(c.at >= horizon for c in self.contacts)


@dataclass(frozen=True, slots=True)
class Rfm:
    recency: int
    frequency: int
    monetary: int
    label: str

    @property
    def code(self) -> str:
        return f"R{self.recency}F{self.frequency}M{self.monetary}"


# Score thresholds: (days since last order), (orders), (lifetime spend). 5 is best.
_RECENCY_DAYS = (30, 90, 180, 365)
_FREQUENCY = (2, 4, 7, 12)
_MONETARY = (Decimal(1000), Decimal(5000), Decimal(20000), Decimal(50000))


def _score_low_is_good(value: float, bounds: tuple) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return 5 - i
    return 1


def _score_high_is_good(value, bounds: tuple) -> int:
    score = 1
    for bound in bounds:
        if value >= bound:
            score += 1
    return score


def rfm_class(last_order_at: dt.datetime | None, orders: int, spend: Decimal, now: dt.datetime) -> Rfm:
    """Recency, frequency, monetary scores 1-5 and the segment name agents act on."""
    if last_order_at is None or orders == 0:
        return Rfm(0, 0, 0, "prospect")
    recency = _score_low_is_good((now - last_order_at).days, _RECENCY_DAYS)
    frequency = _score_high_is_good(orders, _FREQUENCY)
    monetary = _score_high_is_good(spend, _MONETARY)
    if recency >= 4 and frequency >= 4 and monetary >= 4:
        label = "champion"
    elif recency >= 3 and frequency >= 3:
        label = "loyal"
    elif recency >= 4 and frequency <= 2:
        label = "new"
    elif recency <= 2 and (frequency >= 3 or monetary >= 4):
        label = "at risk"
    elif recency == 1:
        label = "lost"
    else:
        label = "regular"
    return Rfm(recency, frequency, monetary, label)
