"""Privacy use cases: export everything held about a user, and erase it (issue 7).

Erasure anonymises instead of deleting where accounting needs the rows: the user keeps its
id and role but loses name and email; orders stay (numbers, items, totals, status) with
``note`` and ``internal_note`` cleared; reviews stay with their rating (product averages
keep working) but lose their body; idempotency records are deleted. It runs in ONE
tenant-scoped write transaction, is idempotent (a repeat changes and reports nothing) and
every statement filters on the tenant, so another tenant's rows are never touched.

Each call logs ONE structured line (logger ``tollgate.privacy``) with who asked, the
tenant, the subject's id and the counts: never a name, email, note or review body.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import structlog
from sqlalchemy import ColumnElement, Table, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth import policy
from database import models
from database.engine import tenant_transaction
from resolvers.context import RequestContext
from resolvers.errors import ApiError, BadUserInput, Forbidden, UserErrorCode, UserFailure
from resolvers.ids import from_global_id, to_global_id
from resolvers.outbox import iso

PRIVACY_SCOPE = "privacy:admin"
ERASED_NAME = "Erased user"
EXPORT_FORMAT = "tollgate.privacy-export/1"
LOGGER_NAME = "tollgate.privacy"
MAX_REQUESTED_BY = 200

TENANTS: Table = models.Tenant.__table__  # type: ignore[assignment]
USERS: Table = models.User.__table__  # type: ignore[assignment]
PRODUCTS: Table = models.Product.__table__  # type: ignore[assignment]
ORDERS: Table = models.Order.__table__  # type: ignore[assignment]
ORDER_ITEMS: Table = models.OrderItem.__table__  # type: ignore[assignment]
REVIEWS: Table = models.Review.__table__  # type: ignore[assignment]
IDEMPOTENCY: Table = models.IdempotencyRecord.__table__  # type: ignore[assignment]


class NotFound(ApiError):
    """The user does not exist in the caller's tenant (another tenant's id reads the same)."""

    code = "NOT_FOUND"


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """How many rows one erasure changed; all zero when nothing was left to erase."""

    user_anonymised: int = 0
    orders_anonymised: int = 0
    reviews_cleared: int = 0
    idempotency_records_deleted: int = 0

    @property
    def changed(self) -> bool:
        """Whether this erasure changed anything."""
        return any(self.as_dict().values())

    def as_dict(self) -> dict[str, int]:
        """The counts by name (safe to log: no personal data)."""
        return asdict(self)


@dataclass(slots=True)
class EraseOutcome:
    """The result of ``privacyErase``: the report, or the business failures."""

    report: ErasureReport | None = None
    errors: list[UserFailure] = field(default_factory=list)

    @property
    def erased(self) -> bool:
        """True when this call erased something."""
        return self.report is not None and self.report.changed


def _log() -> Any:
    # structlog directly (configured by the server): resolvers import no observability code.
    return structlog.get_logger(LOGGER_NAME)


def _money(value: Decimal) -> str:
    return format(value, "f")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _own_subject(user_id: uuid.UUID) -> ColumnElement[bool]:
    # Idempotency records are keyed by the token's subject, which may spell the UUID in
    # upper case (Principal.user_id accepts that), so compare case-insensitively.
    return func.lower(IDEMPOTENCY.c.subject) == str(user_id)


def parse_user_id(value: str) -> uuid.UUID:
    """A user's UUID from a UUID string or a global ``User`` id; ``ValueError`` otherwise."""
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    try:
        return from_global_id(value, "User")[1]
    except BadUserInput as exc:
        raise ValueError(f"not a user id: {value!r}") from exc


async def resolve_tenant(engine: AsyncEngine, tenant: str) -> uuid.UUID | None:
    """The id of the tenant with this slug or id, or ``None``."""
    try:
        condition = TENANTS.c.id == uuid.UUID(tenant)
    except ValueError:
        condition = TENANTS.c.slug == tenant
    async with engine.connect() as conn:
        return (await conn.execute(select(TENANTS.c.id).where(condition))).scalar()


# -- export -------------------------------------------------------------------------------


async def _collect(
    conn: AsyncConnection, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> dict[str, Any] | None:
    user = (
        await conn.execute(
            select(USERS).where(USERS.c.id == user_id, USERS.c.tenant_id == tenant_id)
        )
    ).first()
    if user is None:
        return None
    tenant = (
        await conn.execute(select(TENANTS.c.slug, TENANTS.c.name).where(TENANTS.c.id == tenant_id))
    ).one()
    orders = (
        await conn.execute(
            select(ORDERS)
            .where(ORDERS.c.customer_id == user_id, ORDERS.c.tenant_id == tenant_id)
            .order_by(ORDERS.c.created_at, ORDERS.c.id)
        )
    ).all()
    items = (
        await conn.execute(
            select(
                ORDER_ITEMS.c.order_id,
                ORDER_ITEMS.c.product_id,
                ORDER_ITEMS.c.position,
                ORDER_ITEMS.c.quantity,
                ORDER_ITEMS.c.unit_price,
                PRODUCTS.c.sku,
                PRODUCTS.c.name,
            )
            .join(ORDERS, ORDERS.c.id == ORDER_ITEMS.c.order_id)
            .join(PRODUCTS, PRODUCTS.c.id == ORDER_ITEMS.c.product_id)
            .where(
                ORDERS.c.customer_id == user_id,
                ORDERS.c.tenant_id == tenant_id,
                ORDER_ITEMS.c.tenant_id == tenant_id,
            )
            .order_by(ORDER_ITEMS.c.order_id, ORDER_ITEMS.c.position)
        )
    ).all()
    reviews = (
        await conn.execute(
            select(REVIEWS, PRODUCTS.c.name.label("product_name"))
            .join(PRODUCTS, PRODUCTS.c.id == REVIEWS.c.product_id)
            .where(REVIEWS.c.author_id == user_id, REVIEWS.c.tenant_id == tenant_id)
            .order_by(REVIEWS.c.created_at, REVIEWS.c.id)
        )
    ).all()
    records = (
        await conn.execute(
            select(IDEMPOTENCY.c.key, IDEMPOTENCY.c.order_id, IDEMPOTENCY.c.created_at)
            .where(IDEMPOTENCY.c.tenant_id == tenant_id, _own_subject(user_id))
            .order_by(IDEMPOTENCY.c.created_at, IDEMPOTENCY.c.id)
        )
    ).all()
    items_by_order: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for item in items:
        items_by_order.setdefault(item.order_id, []).append(
            {
                "productId": to_global_id("Product", item.product_id),
                "sku": item.sku,
                "productName": item.name,
                "quantity": item.quantity,
                "unitPrice": _money(item.unit_price),
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "exportedAt": iso(_now()),
        "tenant": {"id": str(tenant_id), "slug": tenant.slug, "name": tenant.name},
        "user": {
            "id": to_global_id("User", user.id),
            "uuid": str(user.id),
            "name": user.name,
            "email": user.email,
            "role": user.role,
            "createdAt": iso(user.created_at),
        },
        "orders": [
            {
                "id": to_global_id("Order", order.id),
                "number": order.number,
                "status": order.status,
                "currency": order.currency,
                "total": _money(order.total),
                "note": order.note,
                "internalNote": order.internal_note,
                "createdAt": iso(order.created_at),
                "updatedAt": iso(order.updated_at),
                "items": items_by_order.get(order.id, []),
            }
            for order in orders
        ],
        "reviews": [
            {
                "id": to_global_id("Review", review.id),
                "productId": to_global_id("Product", review.product_id),
                "productName": review.product_name,
                "rating": review.rating,
                "body": review.body,
                "createdAt": iso(review.created_at),
            }
            for review in reviews
        ],
        "idempotencyRecords": [
            {
                "key": record.key,
                "orderId": None
                if record.order_id is None
                else to_global_id("Order", record.order_id),
                "createdAt": iso(record.created_at),
            }
            for record in records
        ],
    }


async def export_user(
    engine: AsyncEngine,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    requested_by: str,
    via: str = "api",
) -> dict[str, Any] | None:
    """Everything held about one user of ``tenant_id`` as a JSON-ready dict, or ``None``.

    Reads in one transaction; logs one ``privacy.export`` line (who, tenant, subject, counts).
    """
    async with tenant_transaction(engine, tenant_id) as conn:
        document = await _collect(conn, tenant_id, user_id)
    counts = (
        None
        if document is None
        else {
            "orders": len(document["orders"]),
            "reviews": len(document["reviews"]),
            "idempotency_records": len(document["idempotencyRecords"]),
        }
    )
    _log().info(
        "privacy.export",
        requested_by=requested_by[:MAX_REQUESTED_BY],
        via=via,
        tenant=str(tenant_id),
        subject_id=str(user_id),
        outcome="not_found" if document is None else "exported",
        counts=counts,
    )
    return document


def dumps(document: dict[str, Any], *, indent: bool = False) -> str:
    """Serialise an export document as JSON text."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 if indent else 0).decode()


# -- erasure ------------------------------------------------------------------------------


async def _erase(conn: AsyncConnection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> ErasureReport:
    now = _now()
    user = await conn.execute(
        update(USERS)
        .where(
            USERS.c.id == user_id,
            USERS.c.tenant_id == tenant_id,
            or_(USERS.c.name != ERASED_NAME, USERS.c.email.is_not(None)),
        )
        .values(name=ERASED_NAME, email=None)
    )
    orders = await conn.execute(
        update(ORDERS)
        .where(
            ORDERS.c.customer_id == user_id,
            ORDERS.c.tenant_id == tenant_id,
            or_(ORDERS.c.note.is_not(None), ORDERS.c.internal_note.is_not(None)),
        )
        .values(note=None, internal_note=None, updated_at=now, version=ORDERS.c.version + 1)
    )
    reviews = await conn.execute(
        update(REVIEWS)
        .where(
            REVIEWS.c.author_id == user_id,
            REVIEWS.c.tenant_id == tenant_id,
            REVIEWS.c.body.is_not(None),
        )
        .values(body=None)
    )
    records = await conn.execute(
        delete(IDEMPOTENCY).where(IDEMPOTENCY.c.tenant_id == tenant_id, _own_subject(user_id))
    )
    return ErasureReport(
        user_anonymised=user.rowcount,
        orders_anonymised=orders.rowcount,
        reviews_cleared=reviews.rowcount,
        idempotency_records_deleted=records.rowcount,
    )


def _erase_outcome(report: ErasureReport | None) -> str:
    if report is None:
        return "not_found"
    return "erased" if report.changed else "nothing_left"


async def erase_user(
    engine: AsyncEngine,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    requested_by: str,
    via: str = "api",
) -> ErasureReport | None:
    """Anonymise one user of ``tenant_id`` in one transaction; ``None`` when no such user.

    Idempotent: a repeat returns a report of zeros. Logs one ``privacy.erase`` line after
    the transaction ends (who asked, tenant, subject id, counts; no personal data).
    """
    if not requested_by.strip():
        raise ValueError("requested_by must name who asked for the erasure")
    report: ErasureReport | None = None
    async with tenant_transaction(engine, tenant_id, write=True) as conn:
        exists = (
            await conn.execute(
                select(USERS.c.id).where(USERS.c.id == user_id, USERS.c.tenant_id == tenant_id)
            )
        ).first()
        if exists is not None:
            report = await _erase(conn, tenant_id, user_id)
    _log().info(
        "privacy.erase",
        requested_by=requested_by[:MAX_REQUESTED_BY],
        via=via,
        tenant=str(tenant_id),
        subject_id=str(user_id),
        outcome=_erase_outcome(report),
        counts=None if report is None else report.as_dict(),
    )
    return report


# -- GraphQL use cases (ADMIN with privacy:admin) ------------------------------------------


def _require_privacy_admin(ctx: RequestContext) -> uuid.UUID:
    ctx.require_user()
    if not (policy.is_admin(ctx.principal) and ctx.principal.has_scope(PRIVACY_SCOPE)):
        raise Forbidden(f"Only ADMIN with the scope {PRIVACY_SCOPE} may export or erase users.")
    return ctx.require_tenant()


async def export_for(ctx: RequestContext, user_global_id: str) -> str:
    """``privacyExport``: the JSON document of a user of the caller's tenant."""
    tenant_id = _require_privacy_admin(ctx)
    _, user_id = from_global_id(user_global_id, "User")
    document = await export_user(
        ctx.engine, tenant_id, user_id, requested_by=ctx.principal.subject, via="graphql"
    )
    if document is None:
        raise NotFound("No such user.", argument="userId")
    return dumps(document)


async def erase_for(ctx: RequestContext, user_global_id: str) -> EraseOutcome:
    """``privacyErase``: anonymise a user of the caller's tenant."""
    tenant_id = _require_privacy_admin(ctx)
    try:
        _, user_id = from_global_id(user_global_id, "User")
    except BadUserInput:
        return EraseOutcome(
            errors=[UserFailure(UserErrorCode.INVALID_INPUT, "Not a valid User id.", ["userId"])]
        )
    # The request's read transaction must not hold a snapshot (or, on SQLite, a lock)
    # across the write; afterwards cached reads must see the anonymised rows.
    await ctx.db.close()
    try:
        report = await erase_user(
            ctx.engine, tenant_id, user_id, requested_by=ctx.principal.subject, via="graphql"
        )
    finally:
        ctx.loaders.clear_all()
        # Names, emails, notes and review bodies anywhere in the tenant: every cached answer.
        ctx.cache_tags.add("*")
    if report is None:
        return EraseOutcome(
            errors=[UserFailure(UserErrorCode.NOT_FOUND, "No such user.", ["userId"])]
        )
    return EraseOutcome(report=report)
