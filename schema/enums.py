"""Enums of the contract; values equal names and equal what the database stores."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="A user's role within their tenant.")
class Role(Enum):
    CUSTOMER = "CUSTOMER"
    STAFF = "STAFF"
    ADMIN = "ADMIN"


@strawberry.enum(description="Where an order is in its life cycle.")
class OrderStatus(Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


@strawberry.enum(description="ISO-4217 currency code.")
class Currency(Enum):
    USD = "USD"
    EUR = "EUR"
    INR = "INR"


@strawberry.enum(description="Sort direction.")
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum(description="What orders can be sorted by.")
class OrderSortField(Enum):
    CREATED_AT = "CREATED_AT"
    TOTAL = "TOTAL"


@strawberry.enum(description="What products can be sorted by.")
class ProductSortField(Enum):
    NAME = "NAME"
    PRICE = "PRICE"
    CREATED_AT = "CREATED_AT"


@strawberry.enum(description="Machine-readable kind of a business-rule failure.")
class UserErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    INVALID_STATE = "INVALID_STATE"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    DUPLICATE = "DUPLICATE"
