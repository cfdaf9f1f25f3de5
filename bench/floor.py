"""Floor (c): a hand-written Starlette endpoint, no GraphQL, the server's SQL on the raw driver.

For each benchmark operation (OrdersPage, ProductCatalog, ViewerProfile) it sends exactly the
statements the server sends: the server's own statements (``loaders.pages``,
``loaders.loaders``), compiled once to SQL text per dialect, run on the raw driver the server
reads with (``database.reader``: sqlite3, or asyncpg with prepared statements and the tenant
set for row-level security), and it writes the response's ``data`` by hand with orjson. No
SQLAlchemy runs at request time. It is what a request costs with the same database work and
none of GraphQL's: the lower bound the server can approach.

It accepts a POST body ``{"query", "variables", "operationName"}``, picks the handler by
``operationName`` (or the first ``query Name`` of the text) and honours ``first``; any other
argument is ignored. The bearer JWT is verified with PyJWT like peer (b) does; every caller is
treated as STAFF.

Run it alone with ``python -m bench.floor --port 8002 --database PATH-or-URL``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from database.engine import normalize_url
from database.reader import Prepared, Reader, ReadSession, make_reader
from loaders.loaders import (
    ORDERS,
    PRODUCTS,
    REVIEWS,
    USERS,
    average_rating_statement,
    by_id_statement,
    items_statement,
)
from loaders.pages import (
    PageArgs,
    count_statement,
    page_params,
    page_statement,
    per_parent_statement,
)
from resolvers.ids import encode_cursor, to_global_id
from server.settings import DEMO_JWT_SECRET

ISSUER = "tollgate"
AUDIENCE = "tollgate-api"
_OPERATION_NAME = re.compile(r"\bquery\s+([A-Za-z_][A-Za-z0-9_]*)")


class Sql:
    """One request's statements on the raw driver (compiled once per dialect, then cached)."""

    __slots__ = ("dialect", "session", "tenant_id")

    def __init__(self, reader: Reader, session: ReadSession, tenant_id: uuid.UUID) -> None:
        self.dialect = reader.dialect_name
        self.session = session
        self.tenant_id = tenant_id

    async def rows(self, prepared: Prepared, **params: Any) -> list[Any]:
        query = prepared.query(self.dialect)
        params["scope_tenant_id"] = self.tenant_id
        return query.decode(await self.session.fetch(query, query.args(params)))


Handler = Callable[[Sql, uuid.UUID, dict[str, Any]], Awaitable[dict[str, Any]]]


def _datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": format(amount, "f"), "currency": currency}


def _first(variables: dict[str, Any], default: int = 20) -> int:
    first = variables.get("first")
    return default if first is None else int(first)


async def orders_page(sql: Sql, user_id: uuid.UUID, variables: dict[str, Any]) -> dict[str, Any]:
    """OrdersPage: page, count, customers, items, products (5 statements, as the server)."""
    args = PageArgs(first=_first(variables))
    scope = {"tenant_id": sql.tenant_id}
    rows = await sql.rows(
        page_statement(ORDERS, ("tenant_id",), args.shape), **page_params(args, scope)
    )
    orders, has_next = rows[: args.first], len(rows) > args.first
    (count,) = await sql.rows(
        count_statement(ORDERS, ("tenant_id",), ()), **page_params(args, scope)
    )
    total = count[0]
    users = {
        row.id: row
        for row in await sql.rows(
            by_id_statement(USERS), keys=list({o.customer_id for o in orders})
        )
    }
    item_rows = await sql.rows(items_statement(), keys=list({o.id for o in orders}))
    items: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for item in item_rows:
        items[item.order_id].append(item)
    products = {
        row.id: row
        for row in await sql.rows(
            by_id_statement(PRODUCTS), keys=list({item.product_id for item in item_rows})
        )
    }
    nodes = []
    for order in orders:
        customer = users[order.customer_id]
        lines = []
        for item in items.get(order.id, ()):
            product = products[item.product_id]
            lines.append(
                {
                    "quantity": item.quantity,
                    "unitPrice": _money(item.unit_price, order.currency),
                    "product": {
                        "id": to_global_id("Product", product.id),
                        "name": product.name,
                        "price": _money(product.price, product.currency),
                    },
                }
            )
        nodes.append(
            {
                "id": to_global_id("Order", order.id),
                "number": order.number,
                "status": order.status,
                "createdAt": _datetime(order.created_at),
                "total": _money(order.total, order.currency),
                "customer": {"id": to_global_id("User", customer.id), "name": customer.name},
                "items": lines,
            }
        )
    end = encode_cursor(orders[-1].created_at, orders[-1].id) if orders else None
    return {
        "orders": {
            "totalCount": int(total or 0),
            "pageInfo": {"hasNextPage": has_next, "endCursor": end},
            "nodes": nodes,
        }
    }


async def product_catalog(
    sql: Sql, user_id: uuid.UUID, variables: dict[str, Any]
) -> dict[str, Any]:
    """ProductCatalog: page, ratings, 3 reviews per product, authors (4 statements)."""
    args = PageArgs(first=_first(variables), sort="name", desc=False)
    scope = {"tenant_id": sql.tenant_id}
    rows = await sql.rows(
        page_statement(PRODUCTS, ("tenant_id",), args.shape), **page_params(args, scope)
    )
    page, has_next = rows[: args.first], len(rows) > args.first
    product_ids = list({row.id for row in page})
    ratings = {
        product_id: round(float(average), 2)
        for product_id, average in await sql.rows(average_rating_statement(), keys=product_ids)
    }
    review_args = PageArgs(first=3)
    review_rows = await sql.rows(
        per_parent_statement(REVIEWS, "product_id", review_args.shape),
        keys=sorted(product_ids),
        **page_params(review_args, scope),
    )
    reviews: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for review in review_rows:
        # The statement returns first + 1 rows per product (to tell whether more follow).
        if len(reviews[review.product_id]) < review_args.first:
            reviews[review.product_id].append(review)
    author_ids = list({review.author_id for shown in reviews.values() for review in shown})
    authors = {row.id: row for row in await sql.rows(by_id_statement(USERS), keys=author_ids)}
    edges = []
    for product in page:
        edges.append(
            {
                "cursor": encode_cursor(product.name, product.id),
                "node": {
                    "id": to_global_id("Product", product.id),
                    "sku": product.sku,
                    "name": product.name,
                    "price": _money(product.price, product.currency),
                    "stock": product.stock,
                    "averageRating": ratings.get(product.id),
                    "reviews": {
                        "nodes": [
                            {
                                "rating": review.rating,
                                "body": review.body,
                                "author": {"name": authors[review.author_id].name},
                            }
                            for review in reviews.get(product.id, [])
                        ]
                    },
                },
            }
        )
    end = encode_cursor(page[-1].name, page[-1].id) if page else None
    return {"products": {"pageInfo": {"hasNextPage": has_next, "endCursor": end}, "edges": edges}}


async def viewer_profile(sql: Sql, user_id: uuid.UUID, variables: dict[str, Any]) -> dict[str, Any]:
    """ViewerProfile: the user, then their 5 newest orders (2 statements)."""
    (user,) = await sql.rows(by_id_statement(USERS), keys=[user_id])
    args = PageArgs(first=5)
    orders = await sql.rows(
        per_parent_statement(ORDERS, "customer_id", args.shape),
        keys=[user_id],
        **page_params(args, {"tenant_id": sql.tenant_id}),
    )
    return {
        "viewer": {
            "id": to_global_id("User", user.id),
            "name": user.name,
            "email": user.email,
            "role": user.role,
            "orders": {
                "nodes": [
                    {
                        "id": to_global_id("Order", order.id),
                        "number": order.number,
                        "status": order.status,
                        "total": _money(order.total, order.currency),
                    }
                    for order in orders[: args.first]
                ]
            },
        }
    }


HANDLERS: dict[str, Handler] = {
    "OrdersPage": orders_page,
    "ProductCatalog": product_catalog,
    "ViewerProfile": viewer_profile,
}


def _error(message: str, status: int) -> Response:
    body = orjson.dumps({"errors": [{"message": message}]})
    return Response(body, status_code=status, media_type="application/json")


def create_app(database: str, jwt_secret: str = DEMO_JWT_SECRET) -> Starlette:
    """The floor as a Starlette app over a SQLite file path or a database URL."""
    url = normalize_url(database if "://" in database else f"sqlite:///{database}")
    reader = make_reader(url)
    if reader is None:
        raise ValueError(f"the floor needs a file or server database, not {database!r}")

    async def graphql(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        try:
            claims = jwt.decode(
                header[7:], jwt_secret, algorithms=["HS256"], issuer=ISSUER, audience=AUDIENCE
            )
        except jwt.PyJWTError:
            return _error("invalid token", 401)
        try:
            body = orjson.loads(await request.body())
            name = body.get("operationName")
            if not name:
                match = _OPERATION_NAME.search(body.get("query") or "")
                name = match.group(1) if match else None
            handler = HANDLERS[name]
        except (orjson.JSONDecodeError, KeyError, AttributeError, TypeError):
            return _error("unknown operation", 400)
        tenant_id, user_id = uuid.UUID(claims["tenant"]), uuid.UUID(claims["sub"])
        session = reader.session(tenant_id)
        try:
            data = await handler(
                Sql(reader, session, tenant_id), user_id, body.get("variables") or {}
            )
        finally:
            await session.close()
        return Response(orjson.dumps({"data": data}), media_type="application/json")

    app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])
    app.state.reader = reader
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the floor with uvicorn (one worker) on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.floor")
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
