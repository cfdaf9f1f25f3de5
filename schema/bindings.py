"""How the batched executor (``schema.executor``) reads each field, over plain rows.

The Strawberry types in ``schema.types`` and ``schema.root`` stay the schema's definition and
graphql-core's resolvers. Every field that resolves or guards anything is declared once in
``schema.fields`` (its use case or loader and key, and its permission); the bindings below are
built from those declarations for a whole level at once: a relation is one loader call for
every parent of the level, a guard is the declaration's permission. What is left here is
shape: a scalar is an attribute of its row, Money is (amount, currency), a connection is a
:class:`~schema.fields.Conn`. ``tests/server/test_executor.py`` checks that both executors
answer alike, field for field.

Sources: rows for User, Product, Order and Review; ``(row, currency)`` for OrderItem (its
amounts are in its order's currency); ``(amount, currency)`` for Money; :class:`Conn` for
connections and their PageInfo; ``(conn, row)`` for edges; the context's
:class:`~resolvers.context.RateLimitInfo` for RateLimit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from operator import attrgetter, itemgetter
from typing import Any

from resolvers.context import RequestContext
from resolvers.ids import encode_cursor, to_global_id
from schema import fields
from schema.executor import Batch, Child, Leaf
from schema.fields import Conn, ReadField


def _columns(**fields: str) -> dict[str, Leaf]:
    """Fields that are a column of their row: GraphQL name = column name."""
    return {name: Leaf(attrgetter(column)) for name, column in fields.items()}


def _gid(type_name: str) -> Leaf:
    return Leaf(lambda row: to_global_id(type_name, row.id))


def _cursor(conn: Conn, row: Any) -> str:
    return encode_cursor(getattr(row, conn.sort), row.id)


def _root(field: ReadField) -> Batch:
    """A root field: one source (the root value), one call."""
    resolve = field.resolve

    async def load(ctx: Any, sources: Sequence[Any], args: dict[str, Any]) -> list[Any]:
        return [await resolve(ctx, None, args)]

    return Batch(load, _guard(field))


def _settled(results: Sequence[Any]) -> list[Any]:
    """``gather(..., return_exceptions=True)``'s results; a cancellation is re-raised, not
    answered as a value (it is a BaseException, not a field error)."""
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    return list(results)


def _per_source(field: ReadField) -> Batch:
    """A field whose per-source calls batch in the loaders (they run in the same tick)."""
    resolve = field.resolve

    async def load(ctx: Any, sources: Sequence[Any], args: dict[str, Any]) -> list[Any]:
        return _settled(
            await asyncio.gather(*(resolve(ctx, s, args) for s in sources), return_exceptions=True)
        )

    return Batch(load, _guard(field))


def _by_id(field: ReadField, wrap: Callable[[Any, Any], Any] | None = None) -> Batch:
    """A to-one relation (or a list by one key): one ``load_many`` for every source."""

    async def load(ctx: Any, sources: Sequence[Any], args: dict[str, Any]) -> list[Any]:
        rows = await field.load_many(ctx, sources)
        if wrap is None:
            return rows
        return [wrap(s, row) for s, row in zip(sources, rows, strict=True)]

    return Batch(load, _guard(field))


def _guard(field: ReadField) -> Callable[[Any, Any], bool] | None:
    """The batched executor's guard: the declaration's permission (None without one)."""
    return None if field.permission is None else field.allowed


async def _rate_limits(ctx: RequestContext) -> list[Any]:
    return [ctx.rate_limit]


async def _total_counts(ctx: Any, sources: Sequence[Conn], args: dict[str, Any]) -> list[Any]:
    return _settled(await asyncio.gather(*(c.count() for c in sources), return_exceptions=True))


def _money(amount: str, currency: str = "currency") -> Child:
    amount_of, currency_of = attrgetter(amount), attrgetter(currency)
    return Child(lambda row: (amount_of(row), currency_of(row)))


def _connection() -> dict[str, Any]:
    return {
        "edges": Child(lambda conn: [(conn, row) for row in conn.page.rows]),
        "nodes": Child(lambda conn: conn.page.rows),
        "pageInfo": Child(lambda conn: conn),
        "totalCount": Batch(_total_counts),
    }


def _edge() -> dict[str, Any]:
    return {"cursor": Leaf(lambda edge: _cursor(*edge)), "node": Child(itemgetter(1))}


BINDINGS: dict[str, dict[str, Any]] = {
    "Query": {
        "viewer": _root(fields.VIEWER),
        "users": _root(fields.USERS),
        "products": _root(fields.PRODUCTS),
        "product": _root(fields.PRODUCT),
        "orders": _root(fields.ORDERS),
        "order": _root(fields.ORDER),
        "rateLimit": Batch(lambda ctx, sources, args: _rate_limits(ctx)),
    },
    "User": {
        "id": _gid("User"),
        **_columns(name="name", role="role", createdAt="created_at"),
        "email": Leaf(attrgetter("email"), guard=fields.USER_EMAIL.allowed),
        "orders": _per_source(fields.USER_ORDERS),
        "reviews": _per_source(fields.USER_REVIEWS),
    },
    "Product": {
        "id": _gid("Product"),
        **_columns(
            sku="sku",
            name="name",
            description="description",
            stock="stock",
            createdAt="created_at",
            version="version",
        ),
        "inStock": Leaf(lambda row: row.stock > 0),
        "price": _money("price"),
        "unitCost": Child(
            lambda row: None if row.unit_cost is None else (row.unit_cost, row.currency),
            guard=fields.PRODUCT_UNIT_COST.allowed,
        ),
        "averageRating": _by_id(fields.PRODUCT_AVERAGE_RATING),
        "reviews": _per_source(fields.PRODUCT_REVIEWS),
    },
    "Order": {
        "id": _gid("Order"),
        **_columns(
            number="number",
            status="status",
            currency="currency",
            note="note",
            createdAt="created_at",
            updatedAt="updated_at",
            version="version",
        ),
        "total": _money("total"),
        "internalNote": Leaf(attrgetter("internal_note"), guard=_guard(fields.ORDER_INTERNAL_NOTE)),
        "customer": _by_id(fields.ORDER_CUSTOMER),
        "items": _by_id(
            fields.ORDER_ITEMS, lambda order, rows: [(row, order.currency) for row in rows]
        ),
    },
    "OrderItem": {
        "id": Leaf(lambda item: to_global_id("OrderItem", item[0].id)),
        "quantity": Leaf(lambda item: item[0].quantity),
        "product": _by_id(fields.ORDER_ITEM_PRODUCT),
        "unitPrice": Child(lambda item: (item[0].unit_price, item[1])),
        "subtotal": Child(lambda item: (item[0].unit_price * item[0].quantity, item[1])),
    },
    "Review": {
        "id": _gid("Review"),
        **_columns(rating="rating", body="body", createdAt="created_at"),
        "author": _by_id(fields.REVIEW_AUTHOR),
        "product": _by_id(fields.REVIEW_PRODUCT),
    },
    "Money": {"amount": Leaf(itemgetter(0)), "currency": Leaf(itemgetter(1))},
    "PageInfo": {
        "hasNextPage": Leaf(lambda conn: conn.page.has_next),
        "hasPreviousPage": Leaf(lambda conn: conn.page.has_previous),
        "startCursor": Leaf(
            lambda conn: _cursor(conn, conn.page.rows[0]) if conn.page.rows else None
        ),
        "endCursor": Leaf(
            lambda conn: _cursor(conn, conn.page.rows[-1]) if conn.page.rows else None
        ),
    },
    "RateLimit": {
        **_columns(
            limit="limit",
            cost="cost",
            remaining="remaining",
            restoreRate="restore_rate",
            resetAt="reset_at",
            nodeCount="node_count",
        ),
    },
    **{f"{name}Connection": _connection() for name in ("User", "Product", "Order", "Review")},
    **{f"{name}Edge": _edge() for name in ("User", "Product", "Order", "Review")},
}
