"""Every read field that does more than read a column, declared once.

A :class:`ReadField` says how a field is resolved over plain rows and who may read it:

- ``resolve(ctx, source, args)``: a use case call for one source (root fields, connections);
  ``args`` are the field's arguments by GraphQL name, as either executor passes them
  (graphql-core's coerced dicts or Strawberry's input instances, enums or their values);
- or ``loader`` + ``key``: a relation read through a by-key loader of the request (one
  ``load_many`` for a whole level on the batched executor, one ``load`` per object on
  Strawberry's);
- ``permission(principal, row)``: who may read the field (None: whoever may read its parent).

Both executors derive from these declarations: the Strawberry resolvers in ``schema.root`` and
``schema.types`` call :meth:`ReadField.resolve` / :meth:`ReadField.load`, the permission classes
in ``schema.permissions`` ask :meth:`ReadField.allowed`, and ``schema.bindings`` builds the batched
executor's bindings (and their guards) from the same objects. ``tests/server/test_permissions_
declared.py`` walks the schema and checks that every field with a permission class is declared
here and refused alike by both executors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from auth import Principal, policy
from loaders import Page
from resolvers import queries
from resolvers.context import RequestContext
from resolvers.errors import Unauthenticated

Resolve = Callable[[RequestContext, Any, dict[str, Any]], Awaitable[Any]]
Permission = Callable[[Principal, Any], bool]


@dataclass(slots=True)
class Conn:
    """A page of rows, its sort column and how to count all matches."""

    page: Page
    sort: str
    count: Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class ReadField:
    """One read field: how it is resolved and who may read it (see the module's docstring)."""

    type_name: str
    name: str
    resolve_fn: Resolve | None = None
    loader: str | None = None
    key: Callable[[Any], Any] | None = None
    permission: Permission | None = None

    async def resolve(self, ctx: RequestContext, source: Any, args: dict[str, Any]) -> Any:
        if self.resolve_fn is not None:
            return await self.resolve_fn(ctx, source, args)
        return await self.load(ctx, source)

    async def load(self, ctx: RequestContext, source: Any) -> Any:
        """The related row(s) of one source, through the request's loader."""
        assert self.loader is not None and self.key is not None
        return await getattr(ctx.loaders, self.loader).load(self.key(source))

    async def load_many(self, ctx: RequestContext, sources: Sequence[Any]) -> list[Any]:
        """The related row(s) of every source of a level: one batch."""
        assert self.loader is not None and self.key is not None
        key = self.key
        return list(await getattr(ctx.loaders, self.loader).load_many([key(s) for s in sources]))

    def allowed(self, ctx: RequestContext, row: Any) -> bool:
        """Whether the caller may read this field of ``row`` (True without a permission)."""
        return self.permission is None or self.permission(ctx.principal, row)


# -- arguments, as either executor hands them ----------------------------------------------------


def _value(value: Any) -> Any:
    """An enum's value (Strawberry passes enum members, graphql-core their values)."""
    return getattr(value, "value", value)


def _given(args: dict[str, Any], name: str) -> Any:
    """An argument, or None when absent (Strawberry's UNSET included: it is falsy)."""
    value = args.get(name)
    return value if value else None


def _sort(args: dict[str, Any], field: str, direction: str) -> tuple[str, str]:
    """``orderBy``'s field and direction names (a coerced dict or an input instance)."""
    order = _given(args, "orderBy")
    if order is None:
        return field, direction
    if isinstance(order, dict):
        return _value(order.get("field", field)), _value(order.get("direction", direction))
    return _value(order.field), _value(order.direction)


def _filter(args: dict[str, Any], name: str) -> tuple[tuple[str, Any], ...]:
    value = _given(args, name)
    return ((name, _value(value)),) if value else ()


def _page_args(ctx: RequestContext, args: dict[str, Any], **kwargs: Any) -> Any:
    after = args.get("after")
    return queries.page_args(
        ctx, args.get("first"), after if isinstance(after, str) else None, **kwargs
    )


# -- root fields ---------------------------------------------------------------------------------


async def _viewer(ctx: RequestContext, source: Any, args: dict[str, Any]) -> Any:
    row = await ctx.loaders.user.load(ctx.require_user())
    if row is None:
        raise Unauthenticated("The token's user no longer exists.")
    return row


async def _orders(ctx: RequestContext, source: Any, args: dict[str, Any]) -> Conn:
    field, direction = _sort(args, "CREATED_AT", "DESC")
    sort = queries.ORDER_SORT[field]
    page_args = _page_args(
        ctx, args, sort=sort, desc=direction == "DESC", filters=_filter(args, "status")
    )
    page = await queries.orders_page(ctx, page_args)
    return Conn(page, sort, lambda: queries.orders_count(ctx, page_args))


async def _products(ctx: RequestContext, source: Any, args: dict[str, Any]) -> Conn:
    field, direction = _sort(args, "NAME", "ASC")
    sort = queries.PRODUCT_SORT[field]
    page_args = _page_args(ctx, args, sort=sort, desc=direction == "DESC")
    term = _given(args, "search")
    page = await queries.products_page(ctx, page_args, term)
    return Conn(page, sort, lambda: queries.products_count(ctx, page_args, term))


async def _users(ctx: RequestContext, source: Any, args: dict[str, Any]) -> Conn:
    page_args = _page_args(ctx, args, filters=_filter(args, "role"))
    page = await queries.users_page(ctx, page_args)
    return Conn(page, "created_at", lambda: queries.users_count(ctx, page_args))


def _entity(type_name: str) -> Resolve:
    async def fetch(ctx: RequestContext, source: Any, args: dict[str, Any]) -> Any:
        return await queries.entity(ctx, args["id"], type_name)

    return fetch


# -- per-parent connections ----------------------------------------------------------------------


async def _user_orders(ctx: RequestContext, row: Any, args: dict[str, Any]) -> Conn:
    filters = _filter(args, "status")
    page_args = _page_args(ctx, args, filters=filters)
    page = await queries.customer_orders(ctx, row.id, page_args)
    return Conn(page, "created_at", lambda: queries.customer_orders_count(ctx, row.id, filters))


async def _user_reviews(ctx: RequestContext, row: Any, args: dict[str, Any]) -> Conn:
    page_args = _page_args(ctx, args)
    page = await queries.author_reviews(ctx, row.id, page_args)
    return Conn(page, "created_at", lambda: queries.author_reviews_count(ctx, row.id))


async def _product_reviews(ctx: RequestContext, row: Any, args: dict[str, Any]) -> Conn:
    page_args = _page_args(ctx, args)
    page = await queries.product_reviews(ctx, row.id, page_args)
    return Conn(page, "created_at", lambda: queries.product_reviews_count(ctx, row.id))


# -- the declarations ----------------------------------------------------------------------------

VIEWER = ReadField("Query", "viewer", _viewer)
USERS = ReadField("Query", "users", _users)
PRODUCTS = ReadField("Query", "products", _products)
PRODUCT = ReadField("Query", "product", _entity("Product"))
ORDERS = ReadField("Query", "orders", _orders)
ORDER = ReadField("Query", "order", _entity("Order"))

USER_EMAIL = ReadField(
    "User", "email", permission=lambda p, row: policy.can_read_user_email(p, row.id)
)
USER_ORDERS = ReadField("User", "orders", _user_orders)
USER_REVIEWS = ReadField("User", "reviews", _user_reviews)

PRODUCT_UNIT_COST = ReadField(
    "Product", "unitCost", permission=lambda p, row: policy.can_read_unit_cost(p)
)
PRODUCT_AVERAGE_RATING = ReadField(
    "Product", "averageRating", loader="average_rating", key=attrgetter("id")
)
PRODUCT_REVIEWS = ReadField("Product", "reviews", _product_reviews)

ORDER_INTERNAL_NOTE = ReadField(
    "Order", "internalNote", permission=lambda p, row: policy.can_read_internal_note(p)
)
ORDER_CUSTOMER = ReadField("Order", "customer", loader="user", key=attrgetter("customer_id"))
ORDER_ITEMS = ReadField("Order", "items", loader="order_items", key=attrgetter("id"))

# An OrderItem's source is (item row, its order's currency) on both executors.
ORDER_ITEM_PRODUCT = ReadField(
    "OrderItem", "product", loader="product", key=lambda item: item[0].product_id
)
REVIEW_AUTHOR = ReadField("Review", "author", loader="user", key=attrgetter("author_id"))
REVIEW_PRODUCT = ReadField("Review", "product", loader="product", key=attrgetter("product_id"))

READ_FIELDS: dict[tuple[str, str], ReadField] = {
    (f.type_name, f.name): f
    for f in (
        VIEWER,
        USERS,
        PRODUCTS,
        PRODUCT,
        ORDERS,
        ORDER,
        USER_EMAIL,
        USER_ORDERS,
        USER_REVIEWS,
        PRODUCT_UNIT_COST,
        PRODUCT_AVERAGE_RATING,
        PRODUCT_REVIEWS,
        ORDER_INTERNAL_NOTE,
        ORDER_CUSTOMER,
        ORDER_ITEMS,
        ORDER_ITEM_PRODUCT,
        REVIEW_AUTHOR,
        REVIEW_PRODUCT,
    )
}
"""Every declared read field by (type, GraphQL field name)."""


def permission_of(type_name: str, field_name: str) -> ReadField | None:
    """The declaration of a field that has a permission, if any."""
    found = READ_FIELDS.get((type_name, field_name))
    return found if found is not None and found.permission is not None else None
