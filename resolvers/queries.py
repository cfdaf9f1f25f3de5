"""Read use cases: root connections, node look-ups and per-parent pages, tenant-scoped."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table

from auth import policy
from loaders import Page, PageArgs
from loaders.loaders import ORDERS, PRODUCTS, USERS
from loaders.pages import count_statement, page_params, page_statement, to_page
from resolvers.context import RequestContext
from resolvers.errors import BadUserInput, Forbidden
from resolvers.ids import decode_cursor, from_global_id

ORDER_SORT = {"CREATED_AT": "created_at", "TOTAL": "total"}
PRODUCT_SORT = {"NAME": "name", "PRICE": "price", "CREATED_AT": "created_at"}


def page_args(
    ctx: RequestContext,
    first: int | None,
    after: str | None,
    *,
    sort: str = "created_at",
    desc: bool = True,
    filters: tuple[tuple[str, Any], ...] = (),
) -> PageArgs:
    """Validate ``first`` (1..max page size) and decode ``after`` for this sort."""
    size = 20 if first is None else first
    if not 1 <= size <= ctx.max_page_size:
        raise BadUserInput(
            f"first must be between 1 and {ctx.max_page_size}.",
            argument="first",
            observed=size,
            limit=ctx.max_page_size,
        )
    cursor = decode_cursor(after, sort) if isinstance(after, str) else None
    return PageArgs(first=size, sort=sort, desc=desc, after=cursor, filters=filters)


def require_read(ctx: RequestContext, type_name: str) -> None:
    """FORBIDDEN unless the token's read scopes cover ``type_name`` (``policy.can_read``).

    Checked by every use case that looks up or lists orders, products or users, so both
    executors enforce it alike and before any statement runs. Objects reached through
    another one (an order's customer, an item's product) come with their parent.
    """
    if not policy.can_read(ctx.principal, type_name):
        scope = policy.READ_SCOPES[type_name]
        raise Forbidden(
            f"This token may not read {type_name} objects: its read scopes lack {scope}.",
            requiredScope=scope,
        )


def _order_scope(ctx: RequestContext) -> dict[str, Any]:
    """The tenant, and for a customer their own orders only (a column of every statement)."""
    scope: dict[str, Any] = {"tenant_id": ctx.require_tenant()}
    require_read(ctx, "Order")
    if not policy.is_staff(ctx.principal):
        scope["customer_id"] = ctx.require_user()
    return scope


async def _page(
    ctx: RequestContext,
    table: Table,
    scope: dict[str, Any],
    args: PageArgs,
    search: str | None = None,
) -> Sequence[Any]:
    column = None if search is None else "name"
    stmt = page_statement(table, tuple(scope), args.shape, column)
    return await ctx.db.rows(stmt, page_params(args, scope, search))


async def _count(
    ctx: RequestContext,
    table: Table,
    scope: dict[str, Any],
    args: PageArgs,
    search: str | None = None,
) -> int:
    column = None if search is None else "name"
    stmt = count_statement(table, tuple(scope), tuple(n for n, _ in args.filters), column)
    return int(await ctx.db.scalar(stmt, page_params(args, scope, search)) or 0)


async def orders_page(ctx: RequestContext, args: PageArgs) -> Page:
    return to_page(await _page(ctx, ORDERS, _order_scope(ctx), args), args)


async def orders_count(ctx: RequestContext, args: PageArgs) -> int:
    return await _count(ctx, ORDERS, _order_scope(ctx), args)


def _search_term(search: str | None) -> str | None:
    """Refuse a ``search`` term that is too long or holds a C0 control character (U+0000 to
    U+001F): a NUL cut SQLite's LIKE pattern short, so it matched every product."""
    if not search:
        return None
    if len(search) > 200:
        raise BadUserInput("search is longer than 200 characters.", argument="search")
    for position, character in enumerate(search):
        if ord(character) < 0x20:
            raise BadUserInput(
                f"search must not contain control characters; found U+{ord(character):04X} "
                f"at position {position}.",
                argument="search",
            )
    return search


def _product_scope(ctx: RequestContext) -> dict[str, Any]:
    scope: dict[str, Any] = {"tenant_id": ctx.require_tenant()}
    require_read(ctx, "Product")
    return scope


async def products_page(ctx: RequestContext, args: PageArgs, search: str | None) -> Page:
    scope = _product_scope(ctx)
    rows = await _page(ctx, PRODUCTS, scope, args, _search_term(search))
    ctx.loaders.prime_rows(ctx.loaders.product, rows)
    return to_page(rows, args)


async def products_count(ctx: RequestContext, args: PageArgs, search: str | None) -> int:
    scope = _product_scope(ctx)
    return await _count(ctx, PRODUCTS, scope, args, _search_term(search))


def _user_scope(ctx: RequestContext) -> dict[str, Any]:
    tenant_id = ctx.require_tenant()
    if not policy.can_list_users(ctx.principal):
        raise Forbidden("Only STAFF and ADMIN may list users.")
    require_read(ctx, "User")
    return {"tenant_id": tenant_id}


async def users_page(ctx: RequestContext, args: PageArgs) -> Page:
    return to_page(await _page(ctx, USERS, _user_scope(ctx), args), args)


async def users_count(ctx: RequestContext, args: PageArgs) -> int:
    return await _count(ctx, USERS, _user_scope(ctx), args)


def order_visible(ctx: RequestContext, row: Any | None) -> Any | None:
    """Another customer's order is indistinguishable from a missing one."""
    if row is None or not policy.order_visible_to(ctx.principal, row.customer_id):
        return None
    return row


async def node(ctx: RequestContext, global_id: str) -> tuple[str, Any] | None:
    """Resolve a global id within the caller's tenant; other tenants' ids read as missing."""
    type_name, key = from_global_id(global_id)
    ctx.require_tenant()
    require_read(ctx, type_name)
    loader = {
        "User": ctx.loaders.user,
        "Product": ctx.loaders.product,
        "Order": ctx.loaders.order,
        "Review": ctx.loaders.review,
    }.get(type_name)
    if loader is None:
        return None
    row = await loader.load(key)
    if type_name == "Order":
        row = order_visible(ctx, row)
    return None if row is None else (type_name, row)


async def entity(ctx: RequestContext, global_id: str, type_name: str) -> Any | None:
    """A node of one type; an id of another type reads as missing."""
    found = await node(ctx, global_id)
    return found[1] if found is not None and found[0] == type_name else None


async def customer_orders(ctx: RequestContext, user_id: uuid.UUID, args: PageArgs) -> Page:
    """A user's orders: customers see only their own, so others' lists are empty."""
    require_read(ctx, "Order")
    if not policy.order_visible_to(ctx.principal, user_id):
        return Page(rows=[], has_next=False, has_previous=args.after is not None)
    page: Page = await ctx.loaders.orders_by_customer.load((user_id, args))
    return page


async def customer_orders_count(
    ctx: RequestContext, user_id: uuid.UUID, filters: tuple[tuple[str, Any], ...]
) -> int:
    require_read(ctx, "Order")
    if not policy.order_visible_to(ctx.principal, user_id):
        return 0
    count: int = await ctx.loaders.order_count_by_customer.load((user_id, filters))
    return count


async def product_reviews(ctx: RequestContext, product_id: uuid.UUID, args: PageArgs) -> Page:
    page: Page = await ctx.loaders.reviews_by_product.load((product_id, args))
    return page


async def product_reviews_count(ctx: RequestContext, product_id: uuid.UUID) -> int:
    count: int = await ctx.loaders.review_count_by_product.load((product_id, ()))
    return count


async def author_reviews(ctx: RequestContext, user_id: uuid.UUID, args: PageArgs) -> Page:
    page: Page = await ctx.loaders.reviews_by_author.load((user_id, args))
    return page


async def author_reviews_count(ctx: RequestContext, user_id: uuid.UUID) -> int:
    count: int = await ctx.loaders.review_count_by_author.load((user_id, ()))
    return count
