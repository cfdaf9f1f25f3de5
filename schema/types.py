"""Object types of the contract; each wraps a plain database row and stays thin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.types import Info

from loaders import Page
from resolvers.errors import UserFailure
from resolvers.ids import encode_cursor, to_global_id
from schema import fields
from schema.caching import INHERIT, PRIVATE, CacheControl
from schema.directives import PAGE, Cost, ListSize
from schema.enums import Currency, OrderStatus, Role, UserErrorCode
from schema.fields import Conn
from schema.permissions import CanReadEmail, CanReadInternalNote, CanReadUnitCost

Row = Any


@strawberry.interface(description="An object with an opaque global id, fetchable by node(id:).")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global id; clients must not parse it.")


@strawberry.type(description="Relay page information.", directives=[INHERIT])
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="Items precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first item.")
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last item; pass it as after."
    )


@strawberry.type(
    description="An amount of money in a currency.",
    # A value read from its parent's row, with no I/O of its own: it costs nothing.
    directives=[Cost(weight=0), INHERIT],
)
class Money:
    amount: Decimal = strawberry.field(description="The amount, exact.")
    currency: Currency = strawberry.field(description="The currency.")


def money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount, currency=Currency(currency))


@strawberry.type(
    description=(
        "GitHub-style view of the caller's query budget. With dryRun the rest of the "
        "operation is priced but not executed or charged."
    ),
    directives=[CacheControl(max_age=0)],  # the caller's budget: never cached
)
class RateLimit:
    limit: int = strawberry.field(description="Points the bucket holds when full.")
    cost: int = strawberry.field(description="Requested (static) cost of this operation.")
    remaining: int = strawberry.field(description="Points left after this operation was charged.")
    restore_rate: float = strawberry.field(description="Points restored per second.")
    reset_at: dt.datetime = strawberry.field(description="When the bucket will be full again.")
    node_count: int = strawberry.field(
        description="Upper bound of objects this operation may return."
    )


def _ctx(info: Info) -> Any:
    return info.context


def _page_info(page: Page, sort: str) -> PageInfo:
    rows = page.rows
    return PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=encode_cursor(getattr(rows[0], sort), rows[0].id) if rows else None,
        end_cursor=encode_cursor(getattr(rows[-1], sort), rows[-1].id) if rows else None,
    )


@strawberry.type(
    description="A person of a tenant: a customer, staff member or admin.",
    directives=[CacheControl(max_age=60)],
)
class User(Node):
    id: strawberry.ID = strawberry.field(description="Opaque global id; clients must not parse it.")
    name: str = strawberry.field(description="Display name.")
    role: Role = strawberry.field(description="Role within the tenant.")
    created_at: dt.datetime = strawberry.field(description="When the user was created.")
    row: strawberry.Private[Row]

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            id=strawberry.ID(to_global_id("User", row.id)),
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field(
        description="Visible to the user themself, STAFF and ADMIN; FORBIDDEN for anyone else.",
        permission_classes=[CanReadEmail],
        directives=[CacheControl(scope=PRIVATE)],  # the user themself may read it: per subject
    )
    def email(self) -> str | None:
        return self.row.email  # type: ignore[no-any-return]

    @strawberry.field(
        description="The user's orders, newest first.",
        directives=[PAGE, CacheControl(scope=PRIVATE)],  # a customer sees only their own
    )
    async def orders(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        status: OrderStatus | None = strawberry.UNSET,
    ) -> OrderConnection:
        args = {"first": first, "after": after, "status": status}
        return OrderConnection.of(await fields.USER_ORDERS.resolve(_ctx(info), self.row, args))  # type: ignore[no-any-return]

    @strawberry.field(description="Reviews the user wrote, newest first.", directives=[PAGE])
    async def reviews(
        self, info: Info, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> ReviewConnection:
        args = {"first": first, "after": after}
        return ReviewConnection.of(await fields.USER_REVIEWS.resolve(_ctx(info), self.row, args))  # type: ignore[no-any-return]


@strawberry.type(description="Something a tenant sells.", directives=[CacheControl(max_age=60)])
class Product(Node):
    id: strawberry.ID = strawberry.field(description="Opaque global id; clients must not parse it.")
    sku: str = strawberry.field(description="Stock-keeping unit, unique within the tenant.")
    name: str = strawberry.field(description="Display name.")
    description: str | None = strawberry.field(description="Longer text, if any.")
    stock: int = strawberry.field(description="Units in stock.")
    created_at: dt.datetime = strawberry.field(description="When the product was created.")
    version: int = strawberry.field(
        description="Optimistic-concurrency version; bumped by every change."
    )
    row: strawberry.Private[Row]

    @classmethod
    def from_row(cls, row: Row) -> Product:
        return cls(
            id=strawberry.ID(to_global_id("Product", row.id)),
            sku=row.sku,
            name=row.name,
            description=row.description,
            stock=row.stock,
            created_at=row.created_at,
            version=row.version,
            row=row,
        )

    @strawberry.field(
        description="Whether any unit is in stock (same as stock > 0).",
        deprecation_reason="Use stock > 0.",
    )
    def in_stock(self) -> bool:
        return self.stock > 0

    @strawberry.field(description="Current unit price.")
    def price(self) -> Money:
        return money(self.row.price, self.row.currency)

    @strawberry.field(description="ADMIN only.", permission_classes=[CanReadUnitCost])
    def unit_cost(self) -> Money | None:
        if self.row.unit_cost is None:
            return None
        return money(self.row.unit_cost, self.row.currency)

    @strawberry.field(
        description="Mean review rating, or null without reviews (an aggregate, so it costs 1).",
        directives=[Cost(weight=1)],
    )
    async def average_rating(self, info: Info) -> float | None:
        return await fields.PRODUCT_AVERAGE_RATING.load(_ctx(info), self.row)  # type: ignore[no-any-return]

    @strawberry.field(description="Reviews of the product, newest first.", directives=[PAGE])
    async def reviews(
        self, info: Info, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> ReviewConnection:
        args = {"first": first, "after": after}
        return ReviewConnection.of(  # type: ignore[no-any-return]
            await fields.PRODUCT_REVIEWS.resolve(_ctx(info), self.row, args)
        )


@strawberry.type(description="A line of an order.", directives=[INHERIT])
class OrderItem:
    id: strawberry.ID = strawberry.field(description="Opaque global id.")
    quantity: int = strawberry.field(description="Units ordered.")
    row: strawberry.Private[Row]
    currency: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: Row, currency: str) -> OrderItem:
        return cls(
            id=strawberry.ID(to_global_id("OrderItem", row.id)),
            quantity=row.quantity,
            row=row,
            currency=currency,
        )

    @strawberry.field(description="The product ordered.")
    async def product(self, info: Info) -> Product:
        source = (self.row, self.currency)
        return Product.from_row(await fields.ORDER_ITEM_PRODUCT.load(_ctx(info), source))

    @strawberry.field(description="Price of one unit when ordered.")
    def unit_price(self) -> Money:
        return money(self.row.unit_price, self.currency)

    @strawberry.field(description="unitPrice times quantity.")
    def subtotal(self) -> Money:
        return money(self.row.unit_price * self.row.quantity, self.currency)


@strawberry.type(
    description="A customer's order.", directives=[CacheControl(max_age=30, scope=PRIVATE)]
)
class Order(Node):
    id: strawberry.ID = strawberry.field(description="Opaque global id; clients must not parse it.")
    number: str = strawberry.field(
        description="Human-friendly number, unique within the tenant, e.g. ORD-000123."
    )
    status: OrderStatus = strawberry.field(description="Life-cycle state.")
    currency: Currency = strawberry.field(description="Currency of every amount of the order.")
    note: str | None = strawberry.field(description="The customer's note.")
    created_at: dt.datetime = strawberry.field(description="When the order was placed.")
    updated_at: dt.datetime = strawberry.field(description="When the order last changed.")
    version: int = strawberry.field(
        description="Optimistic-concurrency version; bumped by every change."
    )
    row: strawberry.Private[Row]

    @classmethod
    def from_row(cls, row: Row) -> Order:
        return cls(
            id=strawberry.ID(to_global_id("Order", row.id)),
            number=row.number,
            status=OrderStatus(row.status),
            currency=Currency(row.currency),
            note=row.note,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
            row=row,
        )

    @strawberry.field(description="Sum of the items' subtotals.")
    def total(self) -> Money:
        return money(self.row.total, self.row.currency)

    @strawberry.field(
        description="STAFF or ADMIN holding the scope orders:internal.",
        permission_classes=[CanReadInternalNote],
    )
    def internal_note(self) -> str | None:
        return self.row.internal_note  # type: ignore[no-any-return]

    @strawberry.field(description="Who placed the order.")
    async def customer(self, info: Info) -> User:
        return User.from_row(await fields.ORDER_CUSTOMER.load(_ctx(info), self.row))

    @strawberry.field(
        description="At most 50 items per order.", directives=[ListSize(assumed_size=50)]
    )
    async def items(self, info: Info) -> list[OrderItem]:
        rows = await fields.ORDER_ITEMS.load(_ctx(info), self.row)
        currency = self.row.currency
        return [OrderItem.from_row(row, currency) for row in rows]


@strawberry.type(
    description="A customer's rating of a product.", directives=[CacheControl(max_age=60)]
)
class Review(Node):
    id: strawberry.ID = strawberry.field(description="Opaque global id; clients must not parse it.")
    rating: int = strawberry.field(description="1 to 5.")
    body: str | None = strawberry.field(description="The text, if any.")
    created_at: dt.datetime = strawberry.field(description="When the review was written.")
    row: strawberry.Private[Row]

    @classmethod
    def from_row(cls, row: Row) -> Review:
        return cls(
            id=strawberry.ID(to_global_id("Review", row.id)),
            rating=row.rating,
            body=row.body,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field(description="Who wrote it.")
    async def author(self, info: Info) -> User:
        return User.from_row(await fields.REVIEW_AUTHOR.load(_ctx(info), self.row))

    @strawberry.field(description="What it is about.")
    async def product(self, info: Info) -> Product:
        return Product.from_row(await fields.REVIEW_PRODUCT.load(_ctx(info), self.row))


CountFn = Callable[[], Awaitable[int]]


def _connection(node_type: type, name: str) -> tuple[type, type]:
    """Build the Edge and Connection types of one node type (Relay style)."""

    edge = strawberry.type(
        type(
            f"{name}Edge",
            (),
            {
                "__annotations__": {"cursor": str, "node": node_type},
                "cursor": strawberry.field(description="Opaque position; pass it as after."),
                "node": strawberry.field(description="The item."),
            },
        ),
        description=f"An edge to a {name}.",
        directives=[INHERIT],
    )

    async def total_count(self: Any) -> int:
        return await self.count()  # type: ignore[no-any-return]

    def build(cls: Any, page: Page, sort: str, count: CountFn) -> Any:
        nodes = [node_type.from_row(row) for row in page.rows]  # type: ignore[attr-defined]
        edges = [
            edge(cursor=encode_cursor(getattr(row, sort), row.id), node=item)
            for row, item in zip(page.rows, nodes, strict=True)
        ]
        return cls(edges=edges, nodes=nodes, page_info=_page_info(page, sort), count=count)

    def of(cls: Any, conn: Conn) -> Any:
        """The connection of a declared field's :class:`~schema.fields.Conn`."""
        return cls.build(conn.page, conn.sort, conn.count)

    connection = strawberry.type(
        type(
            f"{name}Connection",
            (),
            {
                "__annotations__": {
                    "edges": list[edge],  # type: ignore[valid-type]
                    "nodes": list[node_type],  # type: ignore[valid-type]
                    "page_info": PageInfo,
                    "count": strawberry.Private[CountFn],
                },
                "edges": strawberry.field(description="Items with their cursors."),
                "nodes": strawberry.field(description="Items, when cursors are not needed."),
                "page_info": strawberry.field(description="Where this page is."),
                "total_count": strawberry.field(
                    total_count, description="How many items match, on every page."
                ),
                "build": classmethod(build),
                "of": classmethod(of),
            },
        ),
        description=f"A page of {name} items.",
        directives=[INHERIT],
    )
    return edge, connection


UserEdge, UserConnection = _connection(User, "User")
ProductEdge, ProductConnection = _connection(Product, "Product")
OrderEdge, OrderConnection = _connection(Order, "Order")
ReviewEdge, ReviewConnection = _connection(Review, "Review")


@strawberry.type(
    description=(
        "A business-rule failure the caller can fix; transport, auth and limit failures are "
        "top-level errors instead."
    )
)
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the input field at fault, e.g. ["items", "0", "quantity"].'
    )
    message: str = strawberry.field(description="What went wrong, for people.")
    code: UserErrorCode = strawberry.field(description="What went wrong, for programs.")


def user_errors(failures: Iterable[UserFailure] | None) -> list[UserError]:
    """A payload's ``userErrors``: one per failure a resolver reported."""
    return [
        UserError(field=f.field, message=f.message, code=UserErrorCode(f.code))
        for f in failures or ()
    ]


__all__ = [
    "Money",
    "Node",
    "Order",
    "OrderConnection",
    "OrderEdge",
    "OrderItem",
    "PageInfo",
    "Product",
    "ProductConnection",
    "ProductEdge",
    "RateLimit",
    "Review",
    "ReviewConnection",
    "ReviewEdge",
    "User",
    "UserConnection",
    "UserEdge",
    "UserError",
    "money",
    "user_errors",
]
