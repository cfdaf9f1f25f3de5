"""Peer (b): the contract's read path served the way Strawberry's docs show it.

``strawberry.asgi.GraphQL``, SQLAlchemy ORM models (``database.models``) read through one
``AsyncSession`` per request, ``aiodataloader`` DataLoaders for every relation, no caches, no
cost analysis, no rate limits. Only the fields the benchmark operations (OrdersPage,
ProductCatalog, ViewerProfile) select are written, with the contract's names and types, so
the JSON is the same as this project's server returns.

Callers send the same bearer JWT as to the server; it is verified with PyJWT (HS256, issuer
and audience checked) and its ``sub`` and ``tenant`` claims scope every query. Every caller
is treated as STAFF (the benchmark mints a token for acme's staff user): all of the tenant's
orders are visible and field permissions are not checked.

Run it alone with ``python -m bench.peer_strawberry --port 8001 --database PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jwt
import strawberry
from aiodataloader import DataLoader
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import aliased
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info
from strawberry.types.scalar import ScalarDefinition

from database import models
from resolvers.ids import encode_cursor, to_global_id
from server.settings import DEMO_JWT_SECRET

ISSUER = "tollgate"
AUDIENCE = "tollgate-api"


def _serialize_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def scalar_map() -> dict[object, ScalarDefinition]:
    """How ``datetime`` and ``Decimal`` are served: ISO-8601 with ``Z``, and exact strings."""
    return {
        dt.datetime: strawberry.scalar(
            name="DateTime",
            description="ISO-8601 instant in UTC.",
            serialize=_serialize_datetime,
            parse_value=dt.datetime.fromisoformat,
        ),
        Decimal: strawberry.scalar(
            name="Decimal",
            description="Exact decimal amount as a string.",
            serialize=lambda value: format(value, "f"),
            parse_value=Decimal,
        ),
    }


@strawberry.enum
class Role(enum.Enum):
    CUSTOMER = "CUSTOMER"
    STAFF = "STAFF"
    ADMIN = "ADMIN"


@strawberry.enum
class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


@strawberry.enum
class Currency(enum.Enum):
    USD = "USD"
    EUR = "EUR"
    INR = "INR"


@strawberry.enum
class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum
class ProductSortField(enum.Enum):
    NAME = "NAME"
    PRICE = "PRICE"
    CREATED_AT = "CREATED_AT"


@strawberry.input
class ProductOrder:
    field: ProductSortField = ProductSortField.NAME
    direction: SortDirection = SortDirection.ASC


# --------------------------------------------------------------------------- data access


class Db:
    """The request's AsyncSession; one statement at a time (loaders dispatch concurrently)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.lock = asyncio.Lock()

    async def scalars(self, stmt: Any) -> Sequence[Any]:
        async with self.lock:
            return (await self.session.scalars(stmt)).all()

    async def rows(self, stmt: Any) -> Sequence[Any]:
        async with self.lock:
            return (await self.session.execute(stmt)).all()

    async def scalar(self, stmt: Any) -> Any:
        async with self.lock:
            return await self.session.scalar(stmt)


class _Loader(DataLoader):  # type: ignore[misc]
    def __init__(self, db: Db, tenant_id: uuid.UUID) -> None:
        super().__init__()
        self.db = db
        self.tenant_id = tenant_id


class UserByIdLoader(_Loader):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[models.User | None]:
        stmt = select(models.User).where(
            models.User.tenant_id == self.tenant_id, models.User.id.in_(keys)
        )
        found = {user.id: user for user in await self.db.scalars(stmt)}
        return [found.get(key) for key in keys]


class ProductByIdLoader(_Loader):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[models.Product | None]:
        stmt = select(models.Product).where(
            models.Product.tenant_id == self.tenant_id, models.Product.id.in_(keys)
        )
        found = {product.id: product for product in await self.db.scalars(stmt)}
        return [found.get(key) for key in keys]


class ItemsByOrderIdLoader(_Loader):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[models.OrderItem]]:
        stmt = (
            select(models.OrderItem)
            .where(
                models.OrderItem.tenant_id == self.tenant_id, models.OrderItem.order_id.in_(keys)
            )
            .order_by(models.OrderItem.order_id, models.OrderItem.position)
        )
        grouped: dict[uuid.UUID, list[models.OrderItem]] = defaultdict(list)
        for item in await self.db.scalars(stmt):
            grouped[item.order_id].append(item)
        return [grouped.get(key, []) for key in keys]


class AverageRatingByProductIdLoader(_Loader):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[float | None]:
        stmt = (
            select(models.Review.product_id, func.avg(models.Review.rating))
            .where(models.Review.tenant_id == self.tenant_id, models.Review.product_id.in_(keys))
            .group_by(models.Review.product_id)
        )
        found = {row[0]: round(float(row[1]), 2) for row in await self.db.rows(stmt)}
        return [found.get(key) for key in keys]


class _FirstNByParentLoader(_Loader):
    """Keys are (parent id, n): the newest n children of each parent, one window query."""

    model: Any
    parent: str

    async def batch_load_fn(self, keys: Sequence[tuple[uuid.UUID, int]]) -> list[list[Any]]:
        model, size = self.model, max(n for _, n in keys)
        parent_col = getattr(model, self.parent)
        rank = (
            func.row_number()
            .over(partition_by=parent_col, order_by=(model.created_at.desc(), model.id.desc()))
            .label("rank")
        )
        inner = (
            select(model, rank)
            .where(parent_col.in_({key for key, _ in keys}), model.tenant_id == self.tenant_id)
            .subquery()
        )
        entity = aliased(model, inner)
        stmt = (
            select(entity).where(inner.c.rank <= size).order_by(inner.c[self.parent], inner.c.rank)
        )
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for child in await self.db.scalars(stmt):
            grouped[getattr(child, self.parent)].append(child)
        return [grouped.get(key, [])[:n] for key, n in keys]


class ReviewsByProductIdLoader(_FirstNByParentLoader):
    model, parent = models.Review, "product_id"


class OrdersByCustomerIdLoader(_FirstNByParentLoader):
    model, parent = models.Order, "customer_id"


@dataclass
class Context:
    """What every resolver reads: the caller, the session and a fresh set of loaders."""

    db: Db
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    users: UserByIdLoader
    products: ProductByIdLoader
    items: ItemsByOrderIdLoader
    ratings: AverageRatingByProductIdLoader
    reviews: ReviewsByProductIdLoader
    orders_by_customer: OrdersByCustomerIdLoader


PeerInfo = Info[Context, None]


# --------------------------------------------------------------------------- schema


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def _page_info(rows: Sequence[Any], has_next: bool, sort: str) -> PageInfo:
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=False,
        start_cursor=encode_cursor(getattr(rows[0], sort), rows[0].id) if rows else None,
        end_cursor=encode_cursor(getattr(rows[-1], sort), rows[-1].id) if rows else None,
    )


@strawberry.type
class Money:
    amount: Decimal
    currency: Currency


@strawberry.type
class User:
    model: strawberry.Private[models.User]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("User", self.model.id))

    @strawberry.field
    def name(self) -> str:
        return self.model.name

    @strawberry.field
    def email(self) -> str | None:
        return self.model.email

    @strawberry.field
    def role(self) -> Role:
        return Role(self.model.role)

    @strawberry.field
    async def orders(self, info: PeerInfo, first: int = 20) -> OrderConnection:
        orders = await info.context.orders_by_customer.load((self.model.id, first + 1))
        return OrderConnection(models=orders[:first], has_next=len(orders) > first, where=None)


@strawberry.type
class Product:
    model: strawberry.Private[models.Product]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Product", self.model.id))

    @strawberry.field
    def sku(self) -> str:
        return self.model.sku

    @strawberry.field
    def name(self) -> str:
        return self.model.name

    @strawberry.field
    def price(self) -> Money:
        return Money(amount=self.model.price, currency=Currency(self.model.currency))

    @strawberry.field
    def stock(self) -> int:
        return self.model.stock

    @strawberry.field
    async def average_rating(self, info: PeerInfo) -> float | None:
        rating: float | None = await info.context.ratings.load(self.model.id)
        return rating

    @strawberry.field
    async def reviews(self, info: PeerInfo, first: int = 20) -> ReviewConnection:
        reviews = await info.context.reviews.load((self.model.id, first + 1))
        return ReviewConnection(models=reviews[:first], has_next=len(reviews) > first)


@strawberry.type
class Review:
    model: strawberry.Private[models.Review]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Review", self.model.id))

    @strawberry.field
    def rating(self) -> int:
        return self.model.rating

    @strawberry.field
    def body(self) -> str | None:
        return self.model.body

    @strawberry.field
    async def author(self, info: PeerInfo) -> User:
        return User(model=await info.context.users.load(self.model.author_id))


@strawberry.type
class OrderItem:
    model: strawberry.Private[models.OrderItem]
    currency: strawberry.Private[str]

    @strawberry.field
    def quantity(self) -> int:
        return self.model.quantity

    @strawberry.field
    def unit_price(self) -> Money:
        return Money(amount=self.model.unit_price, currency=Currency(self.currency))

    @strawberry.field
    async def product(self, info: PeerInfo) -> Product:
        return Product(model=await info.context.products.load(self.model.product_id))


@strawberry.type
class Order:
    model: strawberry.Private[models.Order]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Order", self.model.id))

    @strawberry.field
    def number(self) -> str:
        return self.model.number

    @strawberry.field
    def status(self) -> OrderStatus:
        return OrderStatus(self.model.status)

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.model.created_at

    @strawberry.field
    def total(self) -> Money:
        return Money(amount=self.model.total, currency=Currency(self.model.currency))

    @strawberry.field
    async def customer(self, info: PeerInfo) -> User:
        return User(model=await info.context.users.load(self.model.customer_id))

    @strawberry.field
    async def items(self, info: PeerInfo) -> list[OrderItem]:
        items = await info.context.items.load(self.model.id)
        return [OrderItem(model=item, currency=self.model.currency) for item in items]


@strawberry.type
class OrderConnection:
    models: strawberry.Private[Sequence[models.Order]]
    has_next: strawberry.Private[bool]
    where: strawberry.Private[Any]

    @strawberry.field
    def nodes(self) -> list[Order]:
        return [Order(model=order) for order in self.models]

    @strawberry.field
    def page_info(self) -> PageInfo:
        return _page_info(self.models, self.has_next, "created_at")

    @strawberry.field
    async def total_count(self, info: PeerInfo) -> int:
        stmt = select(func.count()).select_from(models.Order).where(self.where)
        return int(await info.context.db.scalar(stmt))


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    models: strawberry.Private[Sequence[models.Product]]
    has_next: strawberry.Private[bool]
    sort: strawberry.Private[str]

    @strawberry.field
    def edges(self) -> list[ProductEdge]:
        return [
            ProductEdge(cursor=encode_cursor(getattr(p, self.sort), p.id), node=Product(model=p))
            for p in self.models
        ]

    @strawberry.field
    def page_info(self) -> PageInfo:
        return _page_info(self.models, self.has_next, self.sort)


@strawberry.type
class ReviewConnection:
    models: strawberry.Private[Sequence[models.Review]]
    has_next: strawberry.Private[bool]

    @strawberry.field
    def nodes(self) -> list[Review]:
        return [Review(model=review) for review in self.models]


def _first_page_only(after: str | None) -> None:
    # The benchmark reads first pages only; cursors are written but not parsed here.
    if after is not None:
        raise ValueError("the peer serves first pages only (after is not supported)")


PRODUCT_SORT = {"NAME": "name", "PRICE": "price", "CREATED_AT": "created_at"}


@strawberry.type
class Query:
    @strawberry.field
    async def viewer(self, info: PeerInfo) -> User:
        return User(model=await info.context.users.load(info.context.user_id))

    @strawberry.field
    async def orders(
        self,
        info: PeerInfo,
        first: int = 20,
        after: str | None = None,
        status: OrderStatus | None = None,
    ) -> OrderConnection:
        ctx = info.context
        _first_page_only(after)
        where = models.Order.tenant_id == ctx.tenant_id
        if status is not None:
            where = where & (models.Order.status == status.value)
        stmt = (
            select(models.Order)
            .where(where)
            .order_by(models.Order.created_at.desc(), models.Order.id.desc())
            .limit(first + 1)
        )
        orders = await ctx.db.scalars(stmt)
        return OrderConnection(models=orders[:first], has_next=len(orders) > first, where=where)

    @strawberry.field
    async def products(
        self,
        info: PeerInfo,
        first: int = 20,
        after: str | None = None,
        search: str | None = None,
        order_by: ProductOrder | None = None,
    ) -> ProductConnection:
        ctx = info.context
        _first_page_only(after)
        where = models.Product.tenant_id == ctx.tenant_id
        if search:
            where = where & func.lower(models.Product.name).contains(
                search.lower(), autoescape=True
            )
        order = order_by or ProductOrder()
        sort = PRODUCT_SORT[order.field.value]
        column = getattr(models.Product, sort)
        descending = order.direction == SortDirection.DESC
        stmt = (
            select(models.Product)
            .where(where)
            .order_by(
                column.desc() if descending else column.asc(),
                models.Product.id.desc() if descending else models.Product.id.asc(),
            )
            .limit(first + 1)
        )
        products = await ctx.db.scalars(stmt)
        for product in products:
            ctx.products.prime(product.id, product)
        return ProductConnection(models=products[:first], has_next=len(products) > first, sort=sort)


def build_schema() -> strawberry.Schema:
    """The peer's schema (the contract's read fields used by the benchmark)."""
    return strawberry.Schema(query=Query, config=StrawberryConfig(scalar_map=scalar_map()))


class PeerGraphQL(GraphQL[Context, None]):
    """``strawberry.asgi.GraphQL`` with one AsyncSession and fresh loaders per request."""

    engine: AsyncEngine

    def __init__(
        self, schema: strawberry.Schema, sessions: async_sessionmaker[AsyncSession], secret: str
    ) -> None:
        super().__init__(schema, graphql_ide=None)
        self.sessions = sessions
        self.secret = secret

    def _claims(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        claims: dict[str, Any] = jwt.decode(
            token, self.secret, algorithms=["HS256"], issuer=ISSUER, audience=AUDIENCE
        )
        return claims

    async def run(self, request: Any, context: Any = None, root_value: Any = None) -> Any:
        if not isinstance(request, Request):  # websockets are not served
            return await super().run(request)
        try:
            claims = self._claims(request)
        except jwt.PyJWTError:
            return Response("invalid token", status_code=401)
        async with self.sessions() as session:
            db = Db(session)
            tenant_id, user_id = uuid.UUID(claims["tenant"]), uuid.UUID(claims["sub"])
            ctx = Context(
                db=db,
                tenant_id=tenant_id,
                user_id=user_id,
                users=UserByIdLoader(db, tenant_id),
                products=ProductByIdLoader(db, tenant_id),
                items=ItemsByOrderIdLoader(db, tenant_id),
                ratings=AverageRatingByProductIdLoader(db, tenant_id),
                reviews=ReviewsByProductIdLoader(db, tenant_id),
                orders_by_customer=OrdersByCustomerIdLoader(db, tenant_id),
            )
            return await super().run(request, context=ctx)  # type: ignore[call-overload]


def create_app(database_path: str, jwt_secret: str = DEMO_JWT_SECRET) -> PeerGraphQL:
    """The peer as an ASGI app over the SQLite file at ``database_path`` or a database URL
    (PostgreSQL through SQLAlchemy's asyncpg dialect); ``app.engine`` is exposed."""
    if "://" in database_path:
        url = make_url(database_path)
        if url.get_backend_name() in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
        engine = create_async_engine(url)
    else:
        engine = create_async_engine(f"sqlite+aiosqlite:///{database_path}")
    app = PeerGraphQL(
        build_schema(), async_sessionmaker(engine, expire_on_commit=False), jwt_secret
    )
    app.engine = engine
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the peer with uvicorn (one worker) on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.peer_strawberry")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--database", required=True, help="path of the seeded SQLite file, or a database URL"
    )
    parser.add_argument("--jwt-secret", default=DEMO_JWT_SECRET)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.database, args.jwt_secret),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
