"""Customer import and export: idempotent batch upserts keyed on external_id, and the CSV rows back out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from callcenter.customer_csv import COLUMNS, CustomerRecord
from callcenter.db._customer_common import CUSTOMERS, NEW_CUSTOMER_DEFAULTS, PHONES
from callcenter.clock import utcnow


@dataclass
class BatchResult:
    """What an import batch did; :meth:`add` sums the batches of a whole file."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: BatchResult) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged


def _same(old: Any, new: Any) -> bool:
    """Equal as stored: blank and None alike, money as Decimal, flags as bools, so re-imports write nothing."""
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
            select(CUSTOMERS.c.id, CUSTOMERS.c.external_id, *(CUSTOMERS.c[c] for c in columns)).where(
                CUSTOMERS.c.external_id.in_([r.external_id for r in records])
            )
        )
    }
    numbers: dict[int, set[str]] = defaultdict(set)
    if existing:
        ids = [row.id for row in existing.values()]
        for customer_id, e164 in session.execute(
            select(PHONES.c.customer_id, PHONES.c.e164).where(PHONES.c.customer_id.in_(ids))
        ):
            numbers[customer_id].add(e164)

    now = utcnow()
    new = [r for r in records if r.external_id not in existing]
    phone_rows: list[dict[str, Any]] = []
    if new:
        base = {"created_at": now, "updated_at": now, **NEW_CUSTOMER_DEFAULTS}
        session.execute(insert(CUSTOMERS), [{**base, "external_id": r.external_id, **r.values} for r in new])
        # One indexed select instead of RETURNING, which SQLite can only do row by row in a bulk insert.
        ids = dict(
            session.execute(
                select(CUSTOMERS.c.external_id, CUSTOMERS.c.id).where(
                    CUSTOMERS.c.external_id.in_([r.external_id for r in new])
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
            update(CUSTOMERS)
            .where(CUSTOMERS.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in [*columns, "updated_at"]}),
            changed_rows,
            execution_options={"synchronize_session": False},
        )
    for customer_id, e164 in stale_numbers:
        session.execute(delete(PHONES).where(PHONES.c.customer_id == customer_id, PHONES.c.e164 == e164))
    if phone_rows:
        session.execute(insert(PHONES), phone_rows)
    return result


def export_rows(session: Session, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every customer as a CSV row in the import format, in id order, without loading all at once."""
    last_id = 0
    wanted = [c for c in COLUMNS if c != "phone"]
    while True:
        chunk = session.execute(
            select(CUSTOMERS.c.id, *(CUSTOMERS.c[c] for c in wanted))
            .where(CUSTOMERS.c.id > last_id)
            .order_by(CUSTOMERS.c.id)
            .limit(batch)
        ).all()
        if not chunk:
            return
        ids = [row.id for row in chunk]
        numbers: dict[int, list[str]] = defaultdict(list)
        for customer_id, e164 in session.execute(
            select(PHONES.c.customer_id, PHONES.c.e164).where(PHONES.c.customer_id.in_(ids)).order_by(PHONES.c.id)
        ):
            numbers[customer_id].append(e164)
        for row in chunk:
            out = {c: getattr(row, c) for c in wanted}
            out["phone"] = ";".join(numbers.get(row.id, []))
            for flag in ("blacklisted", "do_not_call"):
                out[flag] = "yes" if out[flag] else "no"
            yield out
        last_id = ids[-1]
