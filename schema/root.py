"""The Query and Mutation roots: thin fields that call the use cases in ``resolvers/``."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from resolvers import mutations, queries
from resolvers.errors import BadUserInput
from schema import fields
from schema.caching import PRIVATE, CacheControl
from schema.directives import PAGE, ListSize
from schema.enums import (
    OrderSortField,
    OrderStatus,
    ProductSortField,
    Role,
)
from schema.inputs import (
    AddReviewInput,
    CancelOrderInput,
    ConfirmOrderInput,
    CreateOrderInput,
    CreateProductInput,
    OrderOrder,
    ProductOrder,
    UpdateProductInput,
)
from schema.types import (
    Node,
    Order,
    OrderConnection,
    Product,
    ProductConnection,
    RateLimit,
    Review,
    User,
    UserConnection,
    UserError,
    user_errors,
)

MAX_NODES_IDS = 100
NODE_TYPES: dict[str, Any] = {"User": User, "Product": Product, "Order": Order, "Review": Review}


def _opt(value: Any) -> Any:
    return None if value is strawberry.UNSET else value


def _node(found: tuple[str, Any] | None) -> Node | None:
    if found is None:
        return None
    type_name, row = found
    return NODE_TYPES[type_name].from_row(row)  # type: ignore[no-any-return]


@strawberry.type(description="Everything a caller can read.")
class Query:
    @strawberry.field(
        description="Fetch any object by its global id; null when not found or not yours."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return _node(await queries.node(info.context, id))

    @strawberry.field(
        description="Fetch objects by global id, in order; null for each not found.",
        directives=[ListSize(slicing_arguments=["ids"])],
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES_IDS:
            raise BadUserInput(
                f"At most {MAX_NODES_IDS} ids.",
                argument="ids",
                observed=len(ids),
                limit=MAX_NODES_IDS,
            )
        ctx = info.context
        return [_node(await queries.node(ctx, global_id)) for global_id in ids]

    @strawberry.field(
        description="The authenticated caller.",
        directives=[CacheControl(max_age=30, scope=PRIVATE)],
    )
    async def viewer(self, info: Info) -> User:
        return User.from_row(await fields.VIEWER.resolve(info.context, None, {}))

    @strawberry.field(
        description="STAFF and ADMIN only.", directives=[PAGE, CacheControl(max_age=60)]
    )
    async def users(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        role: Role | None = strawberry.UNSET,
    ) -> UserConnection:
        args = {"first": first, "after": after, "role": role}
        return UserConnection.of(await fields.USERS.resolve(info.context, None, args))  # type: ignore[attr-defined,no-any-return]

    @strawberry.field(
        description="The tenant's product catalog.", directives=[PAGE, CacheControl(max_age=60)]
    )
    async def products(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        search: str | None = strawberry.UNSET,
        order_by: ProductOrder | None = strawberry.UNSET,
    ) -> ProductConnection:
        args = {"first": first, "after": after, "search": search, "orderBy": order_by}
        return ProductConnection.of(await fields.PRODUCTS.resolve(info.context, None, args))  # type: ignore[attr-defined,no-any-return]

    @strawberry.field(description="One product by id.", directives=[CacheControl(max_age=60)])
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        row = await fields.PRODUCT.resolve(info.context, None, {"id": id})
        return None if row is None else Product.from_row(row)

    @strawberry.field(
        description="CUSTOMER sees their own orders; STAFF and ADMIN see every order of their tenant.",
        directives=[PAGE, CacheControl(max_age=30, scope=PRIVATE)],
    )
    async def orders(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
        status: OrderStatus | None = strawberry.UNSET,
        order_by: OrderOrder | None = strawberry.UNSET,
    ) -> OrderConnection:
        args = {"first": first, "after": after, "status": status, "orderBy": order_by}
        return OrderConnection.of(await fields.ORDERS.resolve(info.context, None, args))  # type: ignore[attr-defined,no-any-return]

    @strawberry.field(
        description="One order by id; another customer's order reads as missing.",
        directives=[CacheControl(max_age=30, scope=PRIVATE)],
    )
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        row = await fields.ORDER.resolve(info.context, None, {"id": id})
        return None if row is None else Order.from_row(row)

    @strawberry.field(description="The caller's query budget and this operation's price.")
    def rate_limit(self, info: Info, dry_run: bool | None = False) -> RateLimit:
        view = info.context.rate_limit
        return RateLimit(
            limit=view.limit,
            cost=view.cost,
            remaining=view.remaining,
            restore_rate=view.restore_rate,
            reset_at=view.reset_at,
            node_count=view.node_count,
        )


@strawberry.type(description="The result of createOrder.")
class CreateOrderPayload:
    order: Order | None = strawberry.field(description="The order, unless userErrors.")
    user_errors: list[UserError] = strawberry.field(description="Business-rule failures.")
    replayed: bool = strawberry.field(
        description="True when this call replayed an earlier one with the same idempotencyKey."
    )


@strawberry.type(description="The result of an order change.")
class OrderPayload:
    order: Order | None = strawberry.field(description="The order, unless userErrors.")
    user_errors: list[UserError] = strawberry.field(description="Business-rule failures.")


@strawberry.type(description="The result of addReview.")
class ReviewPayload:
    review: Review | None = strawberry.field(description="The review, unless userErrors.")
    user_errors: list[UserError] = strawberry.field(description="Business-rule failures.")


@strawberry.type(description="The result of a product change.")
class ProductPayload:
    product: Product | None = strawberry.field(description="The product, unless userErrors.")
    user_errors: list[UserError] = strawberry.field(description="Business-rule failures.")


def _row(outcome: mutations.Outcome, cls: Any) -> Any:
    return None if outcome.row is None else cls.from_row(outcome.row)


@strawberry.type(description="Everything a caller can change.")
class Mutation:
    @strawberry.mutation(
        description="CUSTOMER (for themself), STAFF, ADMIN; scope write:orders. Decrements stock atomically."
    )
    async def create_order(self, info: Info, input: CreateOrderInput) -> CreateOrderPayload:
        outcome = await mutations.create_order(
            info.context,
            idempotency_key=input.idempotency_key,
            currency=input.currency.value,
            items=[(item.product_id, item.quantity) for item in input.items],
            note=_opt(input.note),
        )
        return CreateOrderPayload(
            order=_row(outcome, Order),
            user_errors=user_errors(outcome.errors),
            replayed=outcome.replayed,
        )

    @strawberry.mutation(description="STAFF or ADMIN; scope write:orders. PENDING -> CONFIRMED.")
    async def confirm_order(self, info: Info, input: ConfirmOrderInput) -> OrderPayload:
        outcome = await mutations.confirm_order(info.context, input.id, input.expected_version)
        return OrderPayload(order=_row(outcome, Order), user_errors=user_errors(outcome.errors))

    @strawberry.mutation(
        description="The order's customer while PENDING, or STAFF/ADMIN; scope write:orders. Restores stock."
    )
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> OrderPayload:
        outcome = await mutations.cancel_order(
            info.context, input.id, input.expected_version, _opt(input.reason)
        )
        return OrderPayload(order=_row(outcome, Order), user_errors=user_errors(outcome.errors))

    @strawberry.mutation(
        description="A customer who ordered the product; one review per user and product."
    )
    async def add_review(self, info: Info, input: AddReviewInput) -> ReviewPayload:
        outcome = await mutations.add_review(
            info.context, input.product_id, input.rating, _opt(input.body)
        )
        return ReviewPayload(review=_row(outcome, Review), user_errors=user_errors(outcome.errors))

    @strawberry.mutation(description="ADMIN; scope write:products.")
    async def create_product(self, info: Info, input: CreateProductInput) -> ProductPayload:
        values = {
            "sku": input.sku,
            "name": input.name,
            "description": _opt(input.description),
            "price": input.price,
            "currency": input.currency.value,
            "unit_cost": _opt(input.unit_cost),
            "stock": input.stock,
        }
        outcome = await mutations.create_product(info.context, values)
        return ProductPayload(
            product=_row(outcome, Product), user_errors=user_errors(outcome.errors)
        )

    @strawberry.mutation(description="ADMIN; scope write:products.")
    async def update_product(self, info: Info, input: UpdateProductInput) -> ProductPayload:
        changes = {
            "name": _opt(input.name),
            "description": _opt(input.description),
            "price": _opt(input.price),
            "unit_cost": _opt(input.unit_cost),
            "stock": _opt(input.stock),
        }
        outcome = await mutations.update_product(
            info.context, input.id, input.expected_version, changes
        )
        return ProductPayload(
            product=_row(outcome, Product), user_errors=user_errors(outcome.errors)
        )


__all__ = ["Mutation", "OrderSortField", "ProductSortField", "Query"]
