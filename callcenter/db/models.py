"""SQLAlchemy 2 typed models: the durable facts of the contact center.

Amounts are Numeric (never float). Times are stored as timezone-aware UTC. Phone numbers are
stored in E.164 and indexed, and a number may belong to several customers (a shared office line).
``queue_events`` and ``audit_log`` are append-only: the migration installs triggers that refuse
UPDATE and DELETE on them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from callcenter.clock import utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(14, 2)
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for the big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")




class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


TIERS = ("standard", "silver", "gold", "vip")


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("tier IN ('standard','silver','gold','vip')", name="tier"),
        Index("ix_customers_name", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    tier: Mapped[str] = mapped_column(String(16), default="standard")
    segment: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    notes: Mapped[str | None] = mapped_column(Text)
    blacklisted: Mapped[bool] = mapped_column(Boolean, default=False)
    blacklist_reason: Mapped[str | None] = mapped_column(String(200))
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_call_reason: Mapped[str | None] = mapped_column(String(200))
    credit_limit: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"), doc="amount owed; above 0 is arrears")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    phones: Mapped[list[PhoneNumber]] = relationship(back_populates="customer", cascade="all, delete-orphan")
    orders: Mapped[list[Order]] = relationship(back_populates="customer", cascade="all, delete-orphan")
    cases: Mapped[list[Case]] = relationship(back_populates="customer", cascade="all, delete-orphan")


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"
    __table_args__ = (UniqueConstraint("customer_id", "e164", name="customer_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    e164: Mapped[str] = mapped_column(String(20), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="other", doc="mobile | fixed | other")
    raw: Mapped[str | None] = mapped_column(String(64), doc="as it was written in the source")

    customer: Mapped[Customer] = relationship(back_populates="phones")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(64))
    price: Mapped[Decimal] = mapped_column(Money)
    warranty_months: Mapped[int] = mapped_column(Integer, default=12)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    ordered_at: Mapped[dt.datetime]
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    status: Mapped[str] = mapped_column(String(16), default="delivered", doc="placed|paid|shipped|delivered|cancelled|returned")

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(back_populates="order", cascade="all, delete-orphan")


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    serial_number: Mapped[str | None] = mapped_column(String(64), index=True)
    warranty_end: Mapped[dt.date | None] = mapped_column(Date)

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint("kind IN ('complaint','repair','inquiry')", name="kind"),
        CheckConstraint("status IN ('open','pending','closed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    order_item_id: Mapped[int | None] = mapped_column(ForeignKey("order_items.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]
    summary: Mapped[str] = mapped_column(Text)

    customer: Mapped[Customer] = relationship(back_populates="cases")


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone_uri: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    skills: Mapped[dict[str, Any]] = mapped_column(default=dict)
    queues: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SipCredential(Base):
    """A registering phone's digest credential: HA1 = MD5(user:realm:password), never the password itself.

    The SIP front needs exactly this to check a digest; whoever reads it can register as that phone
    (as with any digest secret), so it lives only here and in the front's private run directory.
    """

    __tablename__ = "sip_credentials"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    realm: Mapped[str] = mapped_column(String(64))
    ha1: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Interaction(Base):
    """One row per contact (the CDR): created when the call arrives, completed as it progresses."""

    __tablename__ = "interactions"
    __table_args__ = (
        CheckConstraint("direction IN ('inbound','outbound')", name="direction"),
        Index("ix_interactions_ani_arrived", "ani", "arrived_at"),
        Index("ix_interactions_customer_arrived", "customer_id", "arrived_at"),
        Index("ix_interactions_agent_arrived", "agent_id", "arrived_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    direction: Mapped[str] = mapped_column(String(8), default="inbound")
    ani: Mapped[str | None] = mapped_column(String(64), doc="caller number, E.164 when it could be read")
    dnis: Mapped[str | None] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(200))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    queue: Mapped[str | None] = mapped_column(String(32), index=True)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), index=True)
    arrived_at: Mapped[dt.datetime] = mapped_column(index=True)
    queued_at: Mapped[dt.datetime | None]
    offered_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    wait_seconds: Mapped[float | None]
    talk_seconds: Mapped[float | None]
    wrap_seconds: Mapped[float | None]
    outcome: Mapped[str | None] = mapped_column(
        String(32), doc="answered|abandoned|overflowed|self_service|callback_requested|closed|blacklisted|blocked|failed"
    )
    ivr_path: Mapped[list[Any]] = mapped_column(default=list)
    language: Mapped[str | None] = mapped_column(String(8))
    recording_path: Mapped[str | None] = mapped_column(String(500))

    dispositions: Mapped[list[Disposition]] = relationship(back_populates="interaction")


class Disposition(Base):
    __tablename__ = "dispositions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    interaction: Mapped[Interaction] = relationship(back_populates="dispositions")


class Callback(Base):
    __tablename__ = "callbacks"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','scheduled','in_progress','done','failed','cancelled')", name="status"
        ),
        CheckConstraint("source IN ('ivr','agent','campaign','import')", name="source"),
        Index("ix_callbacks_status_due", "status", "due_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    queue: Mapped[str | None] = mapped_column(String(32))
    due_from: Mapped[dt.datetime]
    due_until: Mapped[dt.datetime | None]
    owner_agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), doc="None: any agent")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16))
    result: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    last_attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL"), doc="the outbound contact of the latest dial-now"
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QueueEvent(Base):
    """Append-only log of everything that happened in the queues; live state can be rebuilt from it."""

    __tablename__ = "queue_events"
    __table_args__ = (Index("ix_queue_events_queue_at", "queue", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    event: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str | None] = mapped_column(String(32))
    call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditEntry(Base):
    """Append-only: who changed what (supervisor actions, imports, configuration sync)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


APPEND_ONLY_TABLES = ("queue_events", "audit_log")
