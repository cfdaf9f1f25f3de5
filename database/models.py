"""SQLAlchemy 2 models of the orders domain.

Every tenant-owned table carries ``tenant_id``; every query the application runs filters on
it (and on PostgreSQL, row-level security enforces it a second time). Primary keys are
UUIDv7 (time-ordered, not guessable). Money is ``Numeric(12, 2)``; currencies and enums are
stored as short strings so that SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, overload

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MONEY = Numeric(12, 2)

_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def _uuid_from_hex(value: str | None) -> uuid.UUID | None:
    """``uuid.UUID(hex=value)`` for the 32-digit hex SQLAlchemy stores, in a third of the time."""
    if value is None:
        return None
    if len(value) == 32 and value.isalnum():
        number = int(value, 16)
        key = _new(uuid.UUID)
        _set(key, "int", number)
        _set(key, "is_safe", _UNKNOWN)
        return key  # type: ignore[no-any-return]
    return uuid.UUID(value)


class _UUIDCache(dict[Any, Any]):
    """Text keys read before, with their ``uuid.UUID``: ``cache[text]`` is a C-level look-up
    for a key seen before (an OrdersPage reads about 280 keys, nearly all of them again on
    the next request), and equal keys come back as the same object, so the loaders' dicts
    match them by identity. Bounded: emptied when it reaches ``LIMIT`` entries."""

    __slots__ = ()
    LIMIT = 1 << 15

    def __missing__(self, value: str | None) -> uuid.UUID | None:
        key = _uuid_from_hex(value)
        if len(self) >= self.LIMIT:
            self.clear()
        self[value] = key
        return key


_UUIDS = _UUIDCache()


class UUIDKey(Uuid[uuid.UUID]):
    """``Uuid`` whose rows are read faster where it is stored as text (SQLite).

    Every loaded row has two to four keys; ``uuid.UUID(hex)`` parses the string defensively
    (prefixes, braces, dashes). PostgreSQL's native ``uuid`` is untouched (its dialect adapts
    this type to its own).
    """

    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if self.as_uuid and not (dialect.supports_native_uuid and self.native_uuid):
            return _UUIDS.__getitem__
        return super().result_processor(dialect, coltype)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {uuid.UUID: UUIDKey}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones, and every time
    stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Last order number handed out; bumped with UPDATE ... RETURNING so numbers stay unique
    # and gap-free per tenant under concurrent writers.
    order_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
        CheckConstraint("role in ('CUSTOMER', 'STAFF', 'ADMIN')", name="role"),
        Index("ix_users_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sku", name="uq_products_tenant_sku"),
        CheckConstraint("stock >= 0", name="stock_non_negative"),
        CheckConstraint("price >= 0", name="price_non_negative"),
        Index("ix_products_tenant_name", "tenant_id", "name", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    unit_cost: Mapped[Decimal | None] = mapped_column(MONEY)
    stock: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number", name="uq_orders_tenant_number"),
        CheckConstraint(
            "status in ('PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED')", name="status"
        ),
        Index("ix_orders_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_orders_customer_created", "customer_id", "created_at", "id"),
        Index("ix_orders_tenant_customer", "tenant_id", "customer_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    number: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(MONEY)
    note: Mapped[str | None] = mapped_column(Text)
    internal_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_order_items_order", "order_id", "position"),
        Index("ix_order_items_tenant_order", "tenant_id", "order_id", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(MONEY)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("product_id", "author_id", name="uq_reviews_product_author"),
        CheckConstraint("rating between 1 and 5", name="rating_range"),
        Index("ix_reviews_product_created", "product_id", "created_at", "id"),
        Index("ix_reviews_author_created", "author_id", "created_at", "id"),
        Index("ix_reviews_tenant_product", "tenant_id", "product_id", "created_at", "id"),
        Index("ix_reviews_tenant_author", "tenant_id", "author_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    rating: Mapped[int] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotencyRecord(Base):
    """The first outcome of a write, keyed by (tenant, subject, key)."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "subject", "key", name="uq_idempotency_caller_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    subject: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PersistedDocument(Base):
    """A registered (trusted) document; the durable source of truth of the registry."""

    __tablename__ = "persisted_documents"
    __table_args__ = (
        UniqueConstraint("client_name", "document_id", name="uq_persisted_client_id"),
        Index("ix_persisted_sha256", "sha256"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    client_name: Mapped[str] = mapped_column(String(200))
    document_id: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    operation_name: Mapped[str | None] = mapped_column(String(200))
    cost: Mapped[int] = mapped_column(Integer)
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookEndpoint(Base):
    """A URL a tenant's admin registered for some topics, with its signing secret(s)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint("status in ('ENABLED', 'DISABLED')", name="status"),
        Index("ix_webhook_endpoints_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    url: Mapped[str] = mapped_column(String(2048))
    # Space-separated topic names (e.g. "ORDER_CREATED ORDER_CANCELLED").
    topics: Mapped[str] = mapped_column(String(400))
    # HMAC keys must be usable, so they are stored as they are (see docs/webhooks.md).
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="ENABLED")
    disabled_reason: Mapped[str | None] = mapped_column(String(400))
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failing_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookEvent(Base):
    """The outbox: one event, written in the transaction of the change it reports."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_tenant_occurred", "tenant_id", "occurred_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    topic: Mapped[str] = mapped_column(String(40))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One event to one endpoint: claimed by a worker under a lease, retried until done."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status in ('PENDING', 'DELIVERED', 'FAILED')", name="status"),
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_tenant_due", "tenant_id", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUIDKey, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id"))
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # A claim: the worker that holds it and until when; an expired lease is claimable again.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_response_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


TENANT_OWNED = (
    "users",
    "products",
    "orders",
    "order_items",
    "reviews",
    "idempotency_records",
    "webhook_endpoints",
    "webhook_events",
    "webhook_deliveries",
)


class PersistedDocumentsVersion(Base):
    """One row counting changes to the persisted-query lists (see persisted_queries.stores)."""

    __tablename__ = "persisted_documents_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
