"""How the batched executor (``schema.executor``) reads each field, over plain rows.

The Strawberry types in ``schema.types`` and ``schema.root`` stay the schema's definition and
graphql-core's resolvers; these bindings are the same reads written for a whole level at once:
a scalar is an attribute of its row, a relation is one loader call for every parent of the
level. Both paths call the same use cases (``resolvers.queries``), loaders and policies, and
``tests/server/test_executor.py`` checks that they answer alike, field for field.

Sources: rows for User, Product, Order and Review; ``(row, currency)`` for OrderItem (its
amounts are in its order's currency); ``(amount, currency)`` for Money; :class:`Conn` for
connections and their PageInfo; ``(conn, row)`` for edges; the context's
:class:`~resolvers.context.RateLimitInfo` for RateLimit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any

from auth import policy
from loaders import Page
from resolvers import queries
from resolvers.context import RequestContext
from resolvers.errors import Unauthenticated
from resolvers.ids import encode_cursor, to_global_id
from schema.executor import Batch, Child, Leaf


@dataclass(slots=True)
class Conn:
    """A page of rows, its sort column and how to count all matches."""

    page: Page
    sort: str
    count: Callable[[], Awaitable[int]]


def _columns(**fields: str) -> dict[str, Leaf]:
    """Fields that are a column of their row: GraphQL name = column name."""
    return {name: Leaf(attrgetter(column)) for name, column in fields.items()}


def _gid(type_name: str) -> Leaf:
    return Leaf(lambda row: to_global_id(type_name, row.id))


def _cursor(conn: Conn, row: Any) -> str:
    return encode_cursor(getattr(row, conn.sort), row.id)


def _root(fn: Callable[[RequestContext, dict[str, Any]], Awaitable[Any]]) -> Batch:
    """A root field: one source (the root value), one call."""

    async def load(ctx: Any, sources: Sequence[Any], args: dict[str, Any]) -> list[Any]:
        return [await fn(ctx, args)]

    return Batch(load)


def _settled(results: Sequence[Any]) -> list[Any]:
    """``gather(..., return_exceptions=True)``'s results; a cancellation is re-raised, not
    answered as a value (it is a BaseException, not a field error)."""
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    return list(results)


def _per_source(fn: Callable[[RequestContext, Any, dict[str, Any]], Awaitable[Any]]) -> Batch:
    """A field whose per-source calls batch in the loaders (they run in the same tick)."""

    async def load(ctx: Any, sources: Sequence[Any], args: dict[str, Any]) -> list[Any]:
        return _settled(
            await asyncio.gather(*(fn(ctx, s, args) for s in sources), return_exceptions=True)
        )

    return Batch(load)


def _by_id(
    loader: str, key: Callable[[Any], Any], wrap: Callable[[Any, Any], Any] | None = None
) -> Batch:
    """A to-one relation: one ``load_many`` for every source of the level."""

    async def load(ctx: Any, sources: Sequence[Any], args: dict[str, Any]) -> list[Any]:
        rows = await getattr(ctx.loaders, loader).load_many([key(s) for s in sources])
        if wrap is None:
            return list(rows)
        return [wrap(s, row) for s, row in zip(sources, rows, strict=True)]

    return Batch(load)


# -- root fields ---------------------------------------------------------------------------------


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _sort(args: dict[str, Any], field: str, direction: str) -> tuple[str, str]:
    """``orderBy``'s field and direction names (a coerced dict or an input instance)."""
    order = args.get("orderBy")
    if order is None:
        return field, direction
    if isinstance(order, dict):
        return _enum_value(order.get("field", field)), _enum_value(
            order.get("direction", direction)
        )
    return _enum_value(order.field), _enum_value(order.direction)


async def _viewer(ctx: RequestContext, args: dict[str, Any]) -> Any:
    row = await ctx.loaders.user.load(ctx.require_user())
    if row is None:
        raise Unauthenticated("The token's user no longer exists.")
    return row


async def _orders(ctx: RequestContext, args: dict[str, Any]) -> Conn:
    field, direction = _sort(args, "CREATED_AT", "DESC")
    sort = queries.ORDER_SORT[field]
    status = args.get("status")
    filters = (("status", _enum_value(status)),) if status else ()
    page_args = queries.page_args(
        ctx,
        args.get("first"),
        args.get("after"),
        sort=sort,
        desc=direction == "DESC",
        filters=filters,
    )
    page = await queries.orders_page(ctx, page_args)
    return Conn(page, sort, lambda: queries.orders_count(ctx, page_args))


async def _products(ctx: RequestContext, args: dict[str, Any]) -> Conn:
    field, direction = _sort(args, "NAME", "ASC")
    sort = queries.PRODUCT_SORT[field]
    page_args = queries.page_args(
        ctx,
        args.get("first"),
        args.get("after"),
        sort=sort,
        desc=direction == "DESC",
    )
    term = args.get("search")
    page = await queries.products_page(ctx, page_args, term)
    return Conn(page, sort, lambda: queries.products_count(ctx, page_args, term))


async def _users(ctx: RequestContext, args: dict[str, Any]) -> Conn:
    role = args.get("role")
    filters = (("role", _enum_value(role)),) if role else ()
    page_args = queries.page_args(ctx, args.get("first"), args.get("after"), filters=filters)
    page = await queries.users_page(ctx, page_args)
    return Conn(page, "created_at", lambda: queries.users_count(ctx, page_args))


def _entity(type_name: str) -> Callable[[RequestContext, dict[str, Any]], Awaitable[Any]]:
    async def fetch(ctx: RequestContext, args: dict[str, Any]) -> Any:
        return await queries.entity(ctx, args["id"], type_name)

    return fetch


async def _rate_limit(ctx: RequestContext, args: dict[str, Any]) -> Any:
    return ctx.rate_limit


# -- per-parent connections ----------------------------------------------------------------------


async def _user_orders(ctx: RequestContext, row: Any, args: dict[str, Any]) -> Conn:
    status = args.get("status")
    filters = (("status", _enum_value(status)),) if status else ()
    page_args = queries.page_args(ctx, args.get("first"), args.get("after"), filters=filters)
    page = await queries.customer_orders(ctx, row.id, page_args)
    return Conn(page, "created_at", lambda: queries.customer_orders_count(ctx, row.id, filters))


async def _user_reviews(ctx: RequestContext, row: Any, args: dict[str, Any]) -> Conn:
    page_args = queries.page_args(ctx, args.get("first"), args.get("after"))
    page = await queries.author_reviews(ctx, row.id, page_args)
    return Conn(page, "created_at", lambda: queries.author_reviews_count(ctx, row.id))


async def _product_reviews(ctx: RequestContext, row: Any, args: dict[str, Any]) -> Conn:
    page_args = queries.page_args(ctx, args.get("first"), args.get("after"))
    page = await queries.product_reviews(ctx, row.id, page_args)
    return Conn(page, "created_at", lambda: queries.product_reviews_count(ctx, row.id))


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
        "viewer": _root(_viewer),
        "users": _root(_users),
        "products": _root(_products),
        "product": _root(_entity("Product")),
        "orders": _root(_orders),
        "order": _root(_entity("Order")),
        "rateLimit": _root(_rate_limit),
    },
    "User": {
        "id": _gid("User"),
        **_columns(name="name", role="role", createdAt="created_at"),
        "email": Leaf(
            attrgetter("email"),
            guard=lambda ctx, row: policy.can_read_user_email(ctx.principal, row.id),
        ),
        "orders": _per_source(_user_orders),
        "reviews": _per_source(_user_reviews),
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
            guard=lambda ctx, row: policy.can_read_unit_cost(ctx.principal),
        ),
        "averageRating": _by_id("average_rating", attrgetter("id")),
        "reviews": _per_source(_product_reviews),
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
        "internalNote": Leaf(
            attrgetter("internal_note"),
            guard=lambda ctx, row: policy.can_read_internal_note(ctx.principal),
        ),
        "customer": _by_id("user", attrgetter("customer_id")),
        "items": _by_id(
            "order_items",
            attrgetter("id"),
            lambda order, rows: [(row, order.currency) for row in rows],
        ),
    },
    "OrderItem": {
        "id": Leaf(lambda item: to_global_id("OrderItem", item[0].id)),
        "quantity": Leaf(lambda item: item[0].quantity),
        "product": _by_id("product", lambda item: item[0].product_id),
        "unitPrice": Child(lambda item: (item[0].unit_price, item[1])),
        "subtotal": Child(lambda item: (item[0].unit_price * item[0].quantity, item[1])),
    },
    "Review": {
        "id": _gid("Review"),
        **_columns(rating="rating", body="body", createdAt="created_at"),
        "author": _by_id("user", attrgetter("author_id")),
        "product": _by_id("product", attrgetter("product_id")),
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
