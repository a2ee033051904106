"""What the customer modules (import, profile, directory, volume) share, kept in one place."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import ScalarSelect, select

from callcenter.db.models import Customer, Disposition, Interaction, PhoneNumber
from screenpop.profile import CallbackSummary
from callcenter.clock import assume_utc

CUSTOMERS = Customer.__table__
PHONES = PhoneNumber.__table__

# Columns a bulk insert must fill itself: Core inserts do not apply the model's Python-side defaults.
NEW_CUSTOMER_DEFAULTS: dict[str, Any] = {
    "tier": "standard", "blacklisted": False, "do_not_call": False,
    "credit_limit": Decimal("0"), "balance": Decimal("0"),
}


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return None if value is None else assume_utc(value)


def latest_disposition() -> tuple[ScalarSelect[Any], ScalarSelect[Any]]:
    """(code, notes) of the newest disposition of the interaction in the enclosing query.

    A contact can be dispositioned more than once (a correction, a second agent); the latest counts.
    """
    disp, inter = Disposition.__table__, Interaction.__table__
    latest = (
        select(disp.c.code, disp.c.notes)
        .where(disp.c.interaction_id == inter.c.id)
        .order_by(disp.c.created_at.desc(), disp.c.id.desc())
        .limit(1)
        .correlate(inter)
    )
    return (latest.with_only_columns(disp.c.code).scalar_subquery(),
            latest.with_only_columns(disp.c.notes).scalar_subquery())


def callback_summary(cb: Any) -> CallbackSummary:
    """A callbacks row (or ORM object) as the pop shows it."""
    return CallbackSummary(cb.id, cb.number, aware(cb.due_from), aware(cb.due_until), cb.status, cb.owner_agent_id,
                           cb.attempts)
