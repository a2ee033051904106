"""Synthetic volume data for benchmarks: millions of customers and contacts in minutes.

Each table is filled by INSERT ... SELECT over a recursive sequence, so SQLite generates the rows
itself instead of Python building them one by one. Values come from integer hashes of the row
number: the same sizes give the same data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, literal, select, text

from callcenter.clock import as_utc
from callcenter.db._customer_common import CUSTOMERS, PHONES
from callcenter.db.models import Callback, Case, Disposition, Interaction, Order, OrderItem

_SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma", "Zhu",
             "Hu", "Guo", "He", "Lin", "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis")
_GIVEN = ("Wei", "Fang", "Min", "Jie", "Lei", "Jing", "Yan", "Hui", "Qiang", "Ping", "Mei", "Tao", "Ling", "Bo",
          "James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Emma", "Daniel", "Olivia")
_SYNTH_PREFIX = "S"


@dataclass
class SyntheticResult:
    """Rows written, per table."""

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
    seq = select(literal(lo).label("n")).cte("seq", recursive=True)
    return seq.union_all(select(seq.c.n + 1).where(seq.c.n < hi))


def _pick(values: Sequence[Any], index):
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
    f = func  # a short name: the row expressions below are long

    if db.dialect != "sqlite":
        raise ValueError("synthetic data generation is written for SQLite (the benchmark database)")
    if not agent_ids or not queues or not codes:
        raise ValueError("need at least one agent, queue and disposition code")
    with db.engine.connect() as conn:
        if conn.scalar(select(func.count()).select_from(CUSTOMERS)):
            raise ValueError("synthetic data goes into an empty database; this one already has customers")
    now_text = as_utc(now).strftime("%Y-%m-%d %H:%M:%S")
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

    c = CUSTOMERS

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
        yield insert(PHONES).from_select(["customer_id", "e164", "kind", "raw"],
                                          select(n, primary, literal("mobile"), primary).select_from(seq))
        second = literal("+86139").op("||")(f.printf("%08d", n))
        yield insert(PHONES).from_select(
            ["customer_id", "e164", "kind", "raw"],
            select(n, second, literal("mobile"), second).select_from(seq).where(_hash(n, 2) % 10 < 3))
        shared = literal("+86138").op("||")(f.printf("%08d", n - 1))  # an office line shared with the previous one
        yield insert(PHONES).from_select(
            ["customer_id", "e164", "kind", "raw"],
            select(n, shared, literal("fixed"), shared).select_from(seq).where(n % 200 == 0, n > 1))

    run_chunks("phone numbers", customers, phones_chunk)
    with db.engine.connect() as conn:
        result.phones = conn.scalar(select(func.count()).select_from(PHONES)) or 0

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
