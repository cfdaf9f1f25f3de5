"""Read use cases: root connections, node look-ups and per-parent pages, tenant-scoped."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy.engine import Row

from auth import policy
from loaders import Page, PageArgs
from loaders.loaders import ORDERS, PRODUCTS, USERS
from loaders.pages import count_statement, page_statement, to_page
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


def _order_scope(ctx: RequestContext) -> list[ColumnElement[bool]]:
    tenant_id = ctx.require_tenant()
    require_read(ctx, "Order")
    conditions = [ORDERS.c.tenant_id == tenant_id]
    if not policy.is_staff(ctx.principal):
        conditions.append(ORDERS.c.customer_id == ctx.require_user())
    return conditions


async def orders_page(ctx: RequestContext, args: PageArgs) -> Page:
    rows = await ctx.db.rows(page_statement(ORDERS, _order_scope(ctx), args))
    return to_page(rows, args)


async def orders_count(ctx: RequestContext, args: PageArgs) -> int:
    return int(await ctx.db.scalar(count_statement(ORDERS, _order_scope(ctx), args)) or 0)


def check_search(search: str) -> None:
    """Refuse a ``search`` term that is too long or holds a C0 control character (U+0000 to
    U+001F): a NUL cut SQLite's LIKE pattern short, so it matched every product."""
    if len(search) > 200:
        raise BadUserInput("search is longer than 200 characters.", argument="search")
    for position, character in enumerate(search):
        if ord(character) < 0x20:
            raise BadUserInput(
                f"search must not contain control characters; found U+{ord(character):04X} "
                f"at position {position}.",
                argument="search",
            )


def _product_scope(ctx: RequestContext, search: str | None) -> list[ColumnElement[bool]]:
    tenant_id = ctx.require_tenant()
    require_read(ctx, "Product")
    conditions = [PRODUCTS.c.tenant_id == tenant_id]
    if search:
        check_search(search)
        conditions.append(func.lower(PRODUCTS.c.name).contains(search.lower(), autoescape=True))
    return conditions


async def products_page(ctx: RequestContext, args: PageArgs, search: str | None) -> Page:
    rows = await ctx.db.rows(page_statement(PRODUCTS, _product_scope(ctx, search), args))
    ctx.loaders.prime_rows(ctx.loaders.product, rows)
    return to_page(rows, args)


async def products_count(ctx: RequestContext, args: PageArgs, search: str | None) -> int:
    stmt = count_statement(PRODUCTS, _product_scope(ctx, search), args)
    return int(await ctx.db.scalar(stmt) or 0)


def _user_scope(ctx: RequestContext) -> list[ColumnElement[bool]]:
    tenant_id = ctx.require_tenant()
    if not policy.can_list_users(ctx.principal):
        raise Forbidden("Only STAFF and ADMIN may list users.")
    require_read(ctx, "User")
    return [USERS.c.tenant_id == tenant_id]


async def users_page(ctx: RequestContext, args: PageArgs) -> Page:
    rows = await ctx.db.rows(page_statement(USERS, _user_scope(ctx), args))
    return to_page(rows, args)


async def users_count(ctx: RequestContext, args: PageArgs) -> int:
    return int(await ctx.db.scalar(count_statement(USERS, _user_scope(ctx), args)) or 0)


def order_visible(ctx: RequestContext, row: Row[Any] | None) -> Row[Any] | None:
    """Another customer's order is indistinguishable from a missing one."""
    if row is None or not policy.order_visible_to(ctx.principal, row.customer_id):
        return None
    return row


async def node(ctx: RequestContext, global_id: str) -> tuple[str, Row[Any]] | None:
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


async def entity(ctx: RequestContext, global_id: str, type_name: str) -> Row[Any] | None:
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
