"""Write use cases, each in one transaction: orders (idempotent, stock-safe), reviews, products.

Business-rule failures raise ``UserFailure`` inside the transaction, so everything it did
is rolled back before the failure becomes a ``userErrors`` entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Table, and_, exists, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from auth import policy
from database.ids import new_id
from database.models import IdempotencyRecord
from loaders.loaders import ORDER_ITEMS, ORDERS, PRODUCTS, REVIEWS, TENANTS
from resolvers import outbox
from resolvers.context import RequestContext
from resolvers.errors import Forbidden, UserErrorCode, UserFailure
from resolvers.ids import input_id

IDEMPOTENCY: Table = IdempotencyRecord.__table__  # type: ignore[assignment]
MAX_ITEMS = 50
MAX_QUANTITY = 1000
CENT = Decimal("0.01")
MAX_MONEY = Decimal("9999999999.99")


@dataclass(slots=True)
class Outcome:
    """The result of a write: the affected row, or the business failures."""

    row: Row[Any] | None = None
    errors: list[UserFailure] | None = None
    replayed: bool = False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _money(value: Decimal | str | None, field: list[str]) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise UserFailure(UserErrorCode.INVALID_INPUT, "Not a decimal amount.", field) from exc
    if not amount.is_finite() or amount < 0 or amount > MAX_MONEY:
        raise UserFailure(
            UserErrorCode.INVALID_INPUT, "Amount must be between 0 and 9999999999.99.", field
        )
    if amount != amount.quantize(CENT):
        raise UserFailure(UserErrorCode.INVALID_INPUT, "At most two decimal places.", field)
    return amount.quantize(CENT)


async def _run(ctx: RequestContext, work: Any) -> Outcome:
    try:
        async with ctx.write() as conn:
            outcome: Outcome = await work(conn)
            return outcome
    except UserFailure as failure:
        return Outcome(errors=[failure])


# -- orders -------------------------------------------------------------------------------


def _request_hash(currency: str, items: list[tuple[str, int]], note: str | None) -> bytes:
    canonical = orjson.dumps(
        {"currency": currency, "items": [[p, q] for p, q in items], "note": note},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).digest()


async def _replay(
    conn: AsyncConnection, ctx: RequestContext, key: str, request_hash: bytes
) -> Outcome | None:
    record = (
        await conn.execute(
            select(IDEMPOTENCY).where(
                IDEMPOTENCY.c.tenant_id == ctx.tenant_id,
                IDEMPOTENCY.c.subject == ctx.principal.subject,
                IDEMPOTENCY.c.key == key,
            )
        )
    ).first()
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise UserFailure(
            UserErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotencyKey was used with a different input.",
            ["idempotencyKey"],
        )
    order = (await conn.execute(select(ORDERS).where(ORDERS.c.id == record.order_id))).first()
    return Outcome(row=order, replayed=True)


async def create_order(
    ctx: RequestContext,
    *,
    idempotency_key: str,
    currency: str,
    items: list[tuple[str, int]],
    note: str | None,
) -> Outcome:
    """Create an order for the caller, decrementing stock atomically; replays are idempotent."""
    user_id = ctx.require_user()
    if not policy.can_write_orders(ctx.principal):
        raise Forbidden("Creating orders needs the scope write:orders.")
    request_hash = _request_hash(currency, items, note)

    async def work(conn: AsyncConnection) -> Outcome:
        if not 1 <= len(idempotency_key) <= 200:
            raise UserFailure(
                UserErrorCode.INVALID_INPUT,
                "idempotencyKey must be 1-200 characters.",
                ["idempotencyKey"],
            )
        replay = await _replay(conn, ctx, idempotency_key, request_hash)
        if replay is not None:
            return replay
        # Claim the key first: a concurrent request with the same key blocks on the unique
        # index here and replays once this transaction commits.
        record_id = new_id()
        await conn.execute(
            insert(IDEMPOTENCY).values(
                id=record_id,
                tenant_id=ctx.tenant_id,
                subject=ctx.principal.subject,
                key=idempotency_key,
                request_hash=request_hash,
                order_id=None,
                created_at=_now(),
            )
        )
        quantities = _validate_items(items)
        if note is not None and len(note) > 2000:
            raise UserFailure(UserErrorCode.INVALID_INPUT, "note is too long.", ["note"])
        products = await _lock_stock(conn, ctx, quantities, currency)
        order_id, now = new_id(), _now()
        seq = (
            await conn.execute(
                update(TENANTS)
                .where(TENANTS.c.id == ctx.tenant_id)
                .values(order_seq=TENANTS.c.order_seq + 1)
                .returning(TENANTS.c.order_seq)
            )
        ).scalar_one()
        total = sum(
            (products[pid].price * qty for pid, qty in quantities.items()), Decimal(0)
        ).quantize(CENT)
        await conn.execute(
            insert(ORDERS).values(
                id=order_id,
                tenant_id=ctx.tenant_id,
                number=f"ORD-{seq:06d}",
                customer_id=user_id,
                status="PENDING",
                currency=currency,
                total=total,
                note=note,
                internal_note=None,
                created_at=now,
                updated_at=now,
                version=1,
            )
        )
        await conn.execute(
            insert(ORDER_ITEMS),
            [
                {
                    "id": new_id(),
                    "tenant_id": ctx.tenant_id,
                    "order_id": order_id,
                    "product_id": pid,
                    "position": position,
                    "quantity": qty,
                    "unit_price": products[pid].price,
                }
                for position, (pid, qty) in enumerate(quantities.items())
            ],
        )
        await conn.execute(
            update(IDEMPOTENCY).where(IDEMPOTENCY.c.id == record_id).values(order_id=order_id)
        )
        order = (await conn.execute(select(ORDERS).where(ORDERS.c.id == order_id))).one()
        await outbox.emit_order(conn, ctx.require_tenant(), "ORDER_CREATED", order)
        ctx.touched("Product", *quantities)  # stock
        ctx.touched("Order", order_id, lists=True, fields=False)  # a new order
        ctx.touched("User", user_id, fields=False)  # the customer's orders
        return Outcome(row=order)

    try:
        return await _run(ctx, work)
    except IntegrityError:
        # Lost the race for the idempotency key: the winner has committed; replay it.
        async def replay(conn: AsyncConnection) -> Outcome:
            found = await _replay(conn, ctx, idempotency_key, request_hash)
            if found is None:
                raise UserFailure(UserErrorCode.INVALID_STATE, "Please retry.")
            return found

        return await _run(ctx, replay)


def _validate_items(items: list[tuple[str, int]]) -> dict[uuid.UUID, int]:
    if not 1 <= len(items) <= MAX_ITEMS:
        raise UserFailure(
            UserErrorCode.INVALID_INPUT, f"An order has 1 to {MAX_ITEMS} items.", ["items"]
        )
    quantities: dict[uuid.UUID, int] = {}
    for index, (product_id, quantity) in enumerate(items):
        path = ["items", str(index)]
        pid = input_id(product_id, "Product", [*path, "productId"])
        if not 1 <= quantity <= MAX_QUANTITY:
            raise UserFailure(
                UserErrorCode.INVALID_INPUT,
                f"quantity must be between 1 and {MAX_QUANTITY}.",
                [*path, "quantity"],
            )
        if pid in quantities:
            raise UserFailure(
                UserErrorCode.INVALID_INPUT, "Each product may appear once.", [*path, "productId"]
            )
        quantities[pid] = quantity
    return quantities


async def _lock_stock(
    conn: AsyncConnection, ctx: RequestContext, quantities: dict[uuid.UUID, int], currency: str
) -> dict[uuid.UUID, Row[Any]]:
    """Decrement every product's stock or fail; rows are updated in id order (no deadlocks)."""
    products: dict[uuid.UUID, Row[Any]] = {}
    for index, pid in sorted(enumerate(quantities), key=lambda pair: pair[1]):
        path = ["items", str(index), "productId"]
        row = (
            await conn.execute(
                update(PRODUCTS)
                .where(
                    PRODUCTS.c.id == pid,
                    PRODUCTS.c.tenant_id == ctx.tenant_id,
                    PRODUCTS.c.stock >= quantities[pid],
                )
                .values(stock=PRODUCTS.c.stock - quantities[pid], version=PRODUCTS.c.version + 1)
                .returning(PRODUCTS.c.id, PRODUCTS.c.price, PRODUCTS.c.currency)
            )
        ).first()
        if row is None:
            found = (
                await conn.execute(
                    select(PRODUCTS.c.stock).where(
                        PRODUCTS.c.id == pid, PRODUCTS.c.tenant_id == ctx.tenant_id
                    )
                )
            ).first()
            if found is None:
                raise UserFailure(UserErrorCode.NOT_FOUND, "No such product.", path)
            raise UserFailure(
                UserErrorCode.INSUFFICIENT_STOCK, f"Only {found.stock} left in stock.", path
            )
        if row.currency != currency:
            raise UserFailure(
                UserErrorCode.INVALID_INPUT, f"This product is sold in {row.currency}.", path
            )
        products[pid] = row
    return products


async def _transition(
    ctx: RequestContext,
    global_id: str,
    expected_version: int,
    *,
    target: str,
    allowed_from: tuple[str, ...],
    may: Any,
    restore_stock: bool,
) -> Outcome:
    ctx.require_user()
    if not policy.can_write_orders(ctx.principal):
        raise Forbidden("Changing orders needs the scope write:orders.")

    async def work(conn: AsyncConnection) -> Outcome:
        order_id = input_id(global_id, "Order", ["id"])
        row = (
            await conn.execute(
                select(ORDERS).where(ORDERS.c.id == order_id, ORDERS.c.tenant_id == ctx.tenant_id)
            )
        ).first()
        if row is None or not policy.order_visible_to(ctx.principal, row.customer_id):
            raise UserFailure(UserErrorCode.NOT_FOUND, "No such order.", ["id"])
        if not may(row):
            raise Forbidden("You may not change this order.")
        if row.version != expected_version:
            raise UserFailure(
                UserErrorCode.VERSION_CONFLICT,
                f"The order is at version {row.version}, not {expected_version}.",
                ["expectedVersion"],
            )
        if row.status not in allowed_from:
            raise UserFailure(
                UserErrorCode.INVALID_STATE, f"A {row.status} order cannot become {target}.", ["id"]
            )
        changed = (
            await conn.execute(
                update(ORDERS)
                .where(ORDERS.c.id == order_id, ORDERS.c.version == expected_version)
                .values(status=target, version=ORDERS.c.version + 1, updated_at=_now())
                .returning(*ORDERS.c)
            )
        ).first()
        if changed is None:
            raise UserFailure(
                UserErrorCode.VERSION_CONFLICT, "The order changed meanwhile.", ["expectedVersion"]
            )
        ctx.touched("Order", order_id, lists=True)  # status filters move it between lists
        ctx.touched("User", row.customer_id, fields=False)
        if restore_stock:
            items = (
                await conn.execute(
                    select(ORDER_ITEMS.c.product_id, ORDER_ITEMS.c.quantity)
                    .where(ORDER_ITEMS.c.order_id == order_id)
                    .order_by(ORDER_ITEMS.c.product_id)
                )
            ).all()
            for item in items:
                await conn.execute(
                    update(PRODUCTS)
                    .where(PRODUCTS.c.id == item.product_id, PRODUCTS.c.tenant_id == ctx.tenant_id)
                    .values(stock=PRODUCTS.c.stock + item.quantity, version=PRODUCTS.c.version + 1)
                )
            ctx.touched("Product", *(item.product_id for item in items))
        await outbox.emit_order(conn, ctx.require_tenant(), outbox.ORDER_TOPICS[target], changed)
        return Outcome(row=changed)

    return await _run(ctx, work)


async def confirm_order(ctx: RequestContext, global_id: str, expected_version: int) -> Outcome:
    """PENDING -> CONFIRMED, by STAFF or ADMIN."""
    if not policy.is_staff(ctx.principal):
        ctx.require_user()
        raise Forbidden("Only STAFF and ADMIN may confirm orders.")
    return await _transition(
        ctx,
        global_id,
        expected_version,
        target="CONFIRMED",
        allowed_from=("PENDING",),
        may=lambda row: True,
        restore_stock=False,
    )


async def cancel_order(
    ctx: RequestContext, global_id: str, expected_version: int, reason: str | None
) -> Outcome:
    """The customer while PENDING, or STAFF/ADMIN while PENDING or CONFIRMED; restores stock."""
    staff = policy.is_staff(ctx.principal)
    if reason is not None and len(reason) > 2000:
        return Outcome(
            errors=[UserFailure(UserErrorCode.INVALID_INPUT, "reason is too long.", ["reason"])]
        )
    return await _transition(
        ctx,
        global_id,
        expected_version,
        target="CANCELLED",
        allowed_from=("PENDING", "CONFIRMED") if staff else ("PENDING",),
        may=lambda row: staff or row.customer_id == ctx.principal.user_id,
        restore_stock=True,
    )


# -- reviews and products -------------------------------------------------------------------


async def add_review(
    ctx: RequestContext, product_global_id: str, rating: int, body: str | None
) -> Outcome:
    """One review per customer and product, by a customer who ordered it."""
    user_id = ctx.require_user()

    async def work(conn: AsyncConnection) -> Outcome:
        product_id = input_id(product_global_id, "Product", ["productId"])
        if not 1 <= rating <= 5:
            raise UserFailure(UserErrorCode.INVALID_INPUT, "rating is 1 to 5.", ["rating"])
        if body is not None and len(body) > 5000:
            raise UserFailure(UserErrorCode.INVALID_INPUT, "body is too long.", ["body"])
        product = (
            await conn.execute(
                select(PRODUCTS.c.id).where(
                    PRODUCTS.c.id == product_id, PRODUCTS.c.tenant_id == ctx.tenant_id
                )
            )
        ).first()
        if product is None:
            raise UserFailure(UserErrorCode.NOT_FOUND, "No such product.", ["productId"])
        ordered = (
            await conn.execute(
                select(
                    exists().where(
                        and_(
                            ORDERS.c.id == ORDER_ITEMS.c.order_id,
                            ORDERS.c.customer_id == user_id,
                            ORDERS.c.tenant_id == ctx.tenant_id,
                            ORDERS.c.status != "CANCELLED",
                            ORDER_ITEMS.c.product_id == product_id,
                        )
                    )
                )
            )
        ).scalar()
        if not ordered:
            raise Forbidden("Only customers who ordered this product may review it.")
        duplicate = (
            await conn.execute(
                select(REVIEWS.c.id).where(
                    REVIEWS.c.product_id == product_id, REVIEWS.c.author_id == user_id
                )
            )
        ).first()
        if duplicate is not None:
            raise UserFailure(
                UserErrorCode.DUPLICATE, "You reviewed this product already.", ["productId"]
            )
        review_id = new_id()
        await conn.execute(
            insert(REVIEWS).values(
                id=review_id,
                tenant_id=ctx.tenant_id,
                product_id=product_id,
                author_id=user_id,
                rating=rating,
                body=body,
                created_at=_now(),
            )
        )
        ctx.touched("Product", product_id)  # averageRating and its reviews
        ctx.touched("Review", review_id, lists=True, fields=False)  # a new review
        ctx.touched("User", user_id, fields=False)  # the author's reviews
        return Outcome(
            row=(await conn.execute(select(REVIEWS).where(REVIEWS.c.id == review_id))).one()
        )

    return await _run(ctx, work)


def _require_product_admin(ctx: RequestContext) -> None:
    ctx.require_user()
    if not policy.can_manage_products(ctx.principal):
        raise Forbidden("Only ADMIN with the scope write:products may change products.")


def _check_product_fields(name: str | None, sku: str | None, stock: int | None) -> None:
    if sku is not None and not 1 <= len(sku) <= 64:
        raise UserFailure(UserErrorCode.INVALID_INPUT, "sku is 1-64 characters.", ["sku"])
    if name is not None and not 1 <= len(name) <= 200:
        raise UserFailure(UserErrorCode.INVALID_INPUT, "name is 1-200 characters.", ["name"])
    if stock is not None and not 0 <= stock <= 1_000_000_000:
        raise UserFailure(UserErrorCode.INVALID_INPUT, "stock must be 0 or more.", ["stock"])


async def create_product(ctx: RequestContext, values: dict[str, Any]) -> Outcome:
    """Create a product (ADMIN); a SKU is unique within the tenant."""
    _require_product_admin(ctx)

    async def work(conn: AsyncConnection) -> Outcome:
        _check_product_fields(values["name"], values["sku"], values["stock"])
        price = _money(values["price"], ["price"])
        unit_cost = _money(values.get("unit_cost"), ["unitCost"])
        taken = (
            await conn.execute(
                select(PRODUCTS.c.id).where(
                    PRODUCTS.c.tenant_id == ctx.tenant_id, PRODUCTS.c.sku == values["sku"]
                )
            )
        ).first()
        if taken is not None:
            raise UserFailure(UserErrorCode.DUPLICATE, "A product with this sku exists.", ["sku"])
        product_id = new_id()
        await conn.execute(
            insert(PRODUCTS).values(
                id=product_id,
                tenant_id=ctx.tenant_id,
                sku=values["sku"],
                name=values["name"],
                description=values.get("description"),
                price=price,
                currency=values["currency"],
                unit_cost=unit_cost,
                stock=values["stock"],
                created_at=_now(),
                version=1,
            )
        )
        row = (await conn.execute(select(PRODUCTS).where(PRODUCTS.c.id == product_id))).one()
        ctx.touched("Product", product_id, lists=True, fields=False)  # a new product
        return Outcome(row=row)

    return await _run(ctx, work)


async def update_product(
    ctx: RequestContext, global_id: str, expected_version: int, changes: dict[str, Any]
) -> Outcome:
    """Change a product (ADMIN) under optimistic concurrency."""
    _require_product_admin(ctx)

    async def work(conn: AsyncConnection) -> Outcome:
        product_id = input_id(global_id, "Product", ["id"])
        _check_product_fields(changes.get("name"), None, changes.get("stock"))
        values = {k: v for k, v in changes.items() if v is not None}
        for key, field in (("price", "price"), ("unit_cost", "unitCost")):
            if key in values:
                values[key] = _money(values[key], [field])
        row = (
            await conn.execute(
                select(PRODUCTS).where(
                    PRODUCTS.c.id == product_id, PRODUCTS.c.tenant_id == ctx.tenant_id
                )
            )
        ).first()
        if row is None:
            raise UserFailure(UserErrorCode.NOT_FOUND, "No such product.", ["id"])
        if row.version != expected_version:
            raise UserFailure(
                UserErrorCode.VERSION_CONFLICT,
                f"The product is at version {row.version}, not {expected_version}.",
                ["expectedVersion"],
            )
        changed = (
            await conn.execute(
                update(PRODUCTS)
                .where(PRODUCTS.c.id == product_id, PRODUCTS.c.version == expected_version)
                .values(**values, version=PRODUCTS.c.version + 1)
                .returning(*PRODUCTS.c)
            )
        ).first()
        if changed is None:
            raise UserFailure(
                UserErrorCode.VERSION_CONFLICT,
                "The product changed meanwhile.",
                ["expectedVersion"],
            )
        await outbox.emit_product(conn, ctx.require_tenant(), "PRODUCT_UPDATED", changed)
        # A new name or price can move it within, into or out of sorted and searched lists.
        ctx.touched("Product", product_id, lists=bool({"name", "price"} & values.keys()))
        return Outcome(row=changed)

    return await _run(ctx, work)
