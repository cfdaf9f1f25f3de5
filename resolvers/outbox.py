"""The webhook outbox: events written in the transaction of the change they report.

A mutation calls :func:`emit_order` or :func:`emit_product` on its own connection, inside its
own transaction, after the change: the event and one delivery per subscribed endpoint commit
or roll back with the change itself, so an event exists exactly when its change committed.
When no enabled endpoint of the tenant subscribes to the topic nothing is written.

The payload is one JSON document: ``id`` (the event id, also sent as ``Tollgate-Event-Id``),
``topic``, ``tenant`` (slug and id), ``occurredAt`` and ``data``: the resource as the API
shows it (global ids, Money as ``{amount, currency}``, ISO-8601 UTC times). Free text a
customer or staff wrote (``note``, ``internalNote``) and ``unitCost`` are left out: the
receiver reads them over the API with its own permissions if it needs them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from database import models
from database.ids import new_id
from loaders.loaders import ORDER_ITEMS, TENANTS
from resolvers.ids import to_global_id

ENDPOINTS: Table = models.WebhookEndpoint.__table__  # type: ignore[assignment]
EVENTS: Table = models.WebhookEvent.__table__  # type: ignore[assignment]
DELIVERIES: Table = models.WebhookDelivery.__table__  # type: ignore[assignment]

TOPICS = ("ORDER_CREATED", "ORDER_CONFIRMED", "ORDER_CANCELLED", "PRODUCT_UPDATED")
ORDER_TOPICS = {"CONFIRMED": "ORDER_CONFIRMED", "CANCELLED": "ORDER_CANCELLED"}


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 UTC with ``Z``, as the API's ``DateTime`` prints it."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": format(amount, "f"), "currency": currency}


def order_resource(order: Row[Any], items: list[Row[Any]]) -> dict[str, Any]:
    """An order as the API shows it (without notes)."""
    return {
        "__typename": "Order",
        "id": to_global_id("Order", order.id),
        "number": order.number,
        "status": order.status,
        "currency": order.currency,
        "total": _money(order.total, order.currency),
        "customer": {"id": to_global_id("User", order.customer_id)},
        "items": [
            {
                "id": to_global_id("OrderItem", item.id),
                "product": {"id": to_global_id("Product", item.product_id)},
                "quantity": item.quantity,
                "unitPrice": _money(item.unit_price, order.currency),
                "subtotal": _money(item.unit_price * item.quantity, order.currency),
            }
            for item in items
        ],
        "createdAt": iso(order.created_at),
        "updatedAt": iso(order.updated_at),
        "version": order.version,
    }


def product_resource(product: Row[Any]) -> dict[str, Any]:
    """A product as the API shows it (without ``unitCost``)."""
    return {
        "__typename": "Product",
        "id": to_global_id("Product", product.id),
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": _money(product.price, product.currency),
        "stock": product.stock,
        "createdAt": iso(product.created_at),
        "version": product.version,
    }


async def _subscribers(
    conn: AsyncConnection, tenant_id: uuid.UUID, topic: str
) -> tuple[list[uuid.UUID], str]:
    """The enabled endpoints subscribed to ``topic``, and the tenant's slug (one statement)."""
    rows = (
        await conn.execute(
            select(ENDPOINTS.c.id, ENDPOINTS.c.topics, TENANTS.c.slug)
            .join(TENANTS, TENANTS.c.id == ENDPOINTS.c.tenant_id)
            .where(ENDPOINTS.c.tenant_id == tenant_id, ENDPOINTS.c.status == "ENABLED")
        )
    ).all()
    subscribed = [row.id for row in rows if topic in row.topics.split()]
    return subscribed, (rows[0].slug if rows else "")


async def emit(
    conn: AsyncConnection, tenant_id: uuid.UUID, topic: str, resource: dict[str, Any]
) -> uuid.UUID | None:
    """Write the event and its deliveries on ``conn`` (the change's transaction).

    Returns the event id, or ``None`` when no enabled endpoint subscribes to ``topic``.
    """
    endpoints, slug = await _subscribers(conn, tenant_id, topic)
    if not endpoints:
        return None
    return await _write(conn, tenant_id, slug, topic, endpoints, resource)


async def _write(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    tenant_slug: str,
    topic: str,
    endpoints: list[uuid.UUID],
    resource: dict[str, Any],
) -> uuid.UUID:
    if topic not in TOPICS:
        raise ValueError(f"unknown webhook topic {topic!r}")
    event_id, now = new_id(), dt.datetime.now(dt.UTC)
    payload = orjson.dumps(
        {
            "id": str(event_id),
            "topic": topic,
            "tenant": {"id": str(tenant_id), "slug": tenant_slug},
            "occurredAt": iso(now),
            "data": resource,
        }
    )
    await conn.execute(
        insert(EVENTS).values(
            id=event_id, tenant_id=tenant_id, topic=topic, payload=payload, occurred_at=now
        )
    )
    await conn.execute(
        insert(DELIVERIES),
        [
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "status": "PENDING",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint_id in endpoints
        ],
    )
    return event_id


async def emit_order(
    conn: AsyncConnection, tenant_id: uuid.UUID, topic: str, order: Row[Any]
) -> uuid.UUID | None:
    """Emit ``topic`` for ``order`` (its items are read on the same connection)."""
    endpoints, slug = await _subscribers(conn, tenant_id, topic)
    if not endpoints:
        return None
    items = (
        await conn.execute(
            select(ORDER_ITEMS)
            .where(ORDER_ITEMS.c.tenant_id == tenant_id, ORDER_ITEMS.c.order_id == order.id)
            .order_by(ORDER_ITEMS.c.position)
        )
    ).all()
    resource = order_resource(order, list(items))
    return await _write(conn, tenant_id, slug, topic, endpoints, resource)


async def emit_product(
    conn: AsyncConnection, tenant_id: uuid.UUID, topic: str, product: Row[Any]
) -> uuid.UUID | None:
    """Emit ``topic`` for ``product``."""
    return await emit(conn, tenant_id, topic, product_resource(product))
