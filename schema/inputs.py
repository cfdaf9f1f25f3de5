"""Input types of the contract."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from schema.enums import Currency, OrderSortField, ProductSortField, SortDirection


@strawberry.input(description="How to sort orders.")
class OrderOrder:
    field: OrderSortField = OrderSortField.CREATED_AT
    direction: SortDirection = SortDirection.DESC


@strawberry.input(description="How to sort products.")
class ProductOrder:
    field: ProductSortField = ProductSortField.NAME
    direction: SortDirection = SortDirection.ASC


@strawberry.input(description="One line of a new order.")
class OrderItemInput:
    product_id: strawberry.ID
    quantity: int


@strawberry.input(
    description=(
        "Replaying the same idempotencyKey with the same input returns the first result; "
        "with a different input it fails with IDEMPOTENCY_KEY_REUSED."
    )
)
class CreateOrderInput:
    idempotency_key: str
    currency: Currency
    items: list[OrderItemInput]
    note: str | None = strawberry.UNSET


@strawberry.input(description="Confirm a PENDING order.")
class ConfirmOrderInput:
    id: strawberry.ID
    expected_version: int


@strawberry.input(description="Cancel an order.")
class CancelOrderInput:
    id: strawberry.ID
    expected_version: int
    reason: str | None = strawberry.UNSET


@strawberry.input(description="Review a product you ordered.")
class AddReviewInput:
    product_id: strawberry.ID
    rating: int
    body: str | None = strawberry.UNSET


@strawberry.input(description="A new product.")
class CreateProductInput:
    sku: str
    name: str
    description: str | None = strawberry.UNSET
    price: Decimal
    currency: Currency
    unit_cost: Decimal | None = strawberry.UNSET
    stock: int


@strawberry.input(description="Changes to a product; omitted fields stay as they are.")
class UpdateProductInput:
    id: strawberry.ID
    expected_version: int
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    price: Decimal | None = strawberry.UNSET
    unit_cost: Decimal | None = strawberry.UNSET
    stock: int | None = strawberry.UNSET
