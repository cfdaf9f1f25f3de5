"""Deterministic demo data: two tenants with products, users, orders and reviews.

The same ``seed`` always yields the same rows (ids included) on SQLite and PostgreSQL: every
random choice comes from a ``random.Random`` per tenant, ids are UUIDv7 built from that
generator, and timestamps count back from ``BASE_INSTANT``, never from the wall clock.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from database.engine import TENANT_SETTING, is_postgres, set_tenant, tenant_transaction
from database.ids import uuid7
from database.models import Base

BASE_INSTANT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TENANTS = (("acme", "Acme Corp"), ("globex", "Globex Corporation"))
PRODUCTS_PER_TENANT = 200
ORDERS_PER_TENANT = 5_000
REVIEWS_PER_TENANT = 2_000
# The first user of each role is created in this order; they are the demo users.
ROLE_COUNTS = (("ADMIN", 5), ("STAFF", 25), ("CUSTOMER", 470))
ROLES = tuple(role for role, _ in ROLE_COUNTS)
CHUNK = 2_000
# Arbitrary constant: the advisory lock that keeps concurrent seeders from racing.
SEED_LOCK_KEY = 7_140_623_002

_MINUTE = 60_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "Ada Alan Amara Ana Aron Bea Carlos Chen Dana Diego Elif Emil Farah Felix Grace Hana "
    "Hugo Ines Ivan Jonas Kai Kenji Lea Leila Luca Maya Mateo Mina Nadia Noah Omar Priya "
    "Quinn Ravi Rosa Sami Sofia Tariq Uma Vera Wei Yara Yusuf Zoe"
)
_LAST = _words(
    "Adams Baker Becker Chen Costa Dubois Evans Fischer Garcia Gupta Hansen Ito Jensen Kaur "
    "Khan Kim Kowalski Larsen Lopez Martin Meyer Moreau Murphy Nakamura Novak Okafor Olsen "
    "Patel Petrov Quinn Rossi Santos Schmidt Silva Singh Sato Tanaka Torres Vogel Walsh "
    "Weber Yilmaz Zhang"
)
_ADJECTIVES = _words(
    "Compact Deluxe Durable Ergonomic Essential Everyday Heavy-Duty Lightweight Modern "
    "Portable Premium Rugged Sleek Smart Classic Eco Pro Ultra Vintage Wireless"
)
_MATERIALS = _words(
    "Aluminum Bamboo Canvas Carbon Ceramic Copper Cotton Glass Granite Leather Linen Maple "
    "Oak Rubber Silicone Steel Titanium Walnut Wool"
)
_NOUNS = _words(
    "Backpack Blender Bottle Chair Clock Desk Drill Headphones Kettle Keyboard Knife Lamp "
    "Mug Notebook Pan Pen Router Scale Speaker Stool Table Tent Toolkit Tray Umbrella "
    "Wallet"
)
_PITCHES = (
    "Built to last and easy to clean.",
    "A customer favourite for everyday use.",
    "Ships in recyclable packaging.",
    "Backed by a two-year warranty.",
    "Designed in-house and tested in the field.",
    "Pairs well with the rest of the range.",
)
_NOTES = (
    "Please leave the parcel at the front door.",
    "Gift wrap, please.",
    "Deliver after 5pm if possible.",
    "Call on arrival; the buzzer is broken.",
    "Second floor, office 204.",
    "No plastic packaging, thanks.",
)
_INTERNAL_NOTES = (
    "Customer called about delivery time.",
    "Fraud check passed manually.",
    "Priority shipping granted as goodwill.",
    "Address verified by phone.",
    "Split shipment approved by warehouse.",
)
_REVIEWS = {
    1: ("Broke within a week.", "Not as described.", "Would not buy again."),
    2: ("Disappointing quality.", "Arrived late and scratched.", "Works, barely."),
    3: ("Does the job.", "Average, nothing special.", "Fine for the price."),
    4: ("Very good, minor quirks.", "Solid purchase.", "Would recommend."),
    5: ("Excellent!", "Exactly what I needed.", "Best purchase this year."),
}


@dataclass(frozen=True)
class SeedSummary:
    """How many rows the seed inserted, per table."""

    tenants: int
    users: int
    products: int
    orders: int
    order_items: int
    reviews: int
    tenant_slugs: tuple[str, ...] = field(default=())


def _at(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def _ms(instant: dt.datetime) -> int:
    return (instant - EPOCH) // dt.timedelta(milliseconds=1)


def _money(cents: int) -> Decimal:
    return Decimal(cents) / 100


@dataclass
class TenantRows:
    """One tenant's generated rows, as dicts keyed by column name, ready for ``insert()``."""

    tenant: dict[str, Any]
    users: list[dict[str, Any]]
    products: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    order_items: list[dict[str, Any]]
    reviews: list[dict[str, Any]]


def _products(
    rng: random.Random, tenant_id: uuid.UUID, slug: str, start_ms: int
) -> list[dict[str, Any]]:
    currencies = ["USD"] * 170 + ["EUR"] * 20 + ["INR"] * 10
    rng.shuffle(currencies)
    rows = []
    for i in range(PRODUCTS_PER_TENANT):
        created_ms = start_ms + i * 3 * _HOUR + rng.randrange(3 * _HOUR)
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_MATERIALS)} {rng.choice(_NOUNS)}"
        # Log-uniform prices look like a real catalogue: many cheap items, a few dear ones.
        cents = min(50_000, max(100, int(math.exp(rng.uniform(0, math.log(500))) * 100)))
        if cents >= 200 and rng.random() < 0.6:
            cents = cents - cents % 100 - 1
        cost_cents = max(1, min(cents - 1, int(cents * rng.uniform(0.35, 0.8))))
        stock = rng.randint(0, 20) if rng.random() < 0.08 else rng.randint(21, 500)
        rows.append(
            {
                "id": uuid7(rng, created_ms),
                "tenant_id": tenant_id,
                "sku": f"{slug.upper()}-{i + 1:04d}",
                "name": name,
                "description": f"{name}. {rng.choice(_PITCHES)}",
                "price": _money(cents),
                "currency": currencies[i],
                "unit_cost": _money(cost_cents),
                "stock": stock,
                "created_at": _at(created_ms),
                "version": 1,
            }
        )
    return rows


def _users(
    rng: random.Random, tenant_id: uuid.UUID, slug: str, start_ms: int
) -> list[dict[str, Any]]:
    rest = [role for role, count in ROLE_COUNTS for _ in range(count - 1)]
    rng.shuffle(rest)
    roles = [*ROLES, *rest]
    step = 17 * _HOUR
    rows = []
    for i, role in enumerate(roles):
        created_ms = start_ms + i * step + rng.randrange(step // 2)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        rows.append(
            {
                "id": uuid7(rng, created_ms),
                "tenant_id": tenant_id,
                "name": f"{first} {last}",
                "email": f"{first}.{last}.{i + 1}@{slug}.example".lower(),
                "role": role,
                "created_at": _at(created_ms),
            }
        )
    return rows


def _status(rng: random.Random, age_ms: int) -> str:
    if age_ms < 3 * _DAY:
        weights = (60, 35, 0, 5)
    elif age_ms < 14 * _DAY:
        weights = (15, 45, 30, 10)
    else:
        weights = (3, 5, 82, 10)
    return rng.choices(("PENDING", "CONFIRMED", "SHIPPED", "CANCELLED"), weights)[0]


_STATUS_DELAY_MS = {"PENDING": (0, 0), "CONFIRMED": (5 * _MINUTE, 6 * _HOUR)}
_STATUS_DELAY_MS |= {"SHIPPED": (_DAY, 5 * _DAY), "CANCELLED": (_HOUR, 2 * _DAY)}
_STATUS_VERSION = {"PENDING": 1, "CONFIRMED": 2, "SHIPPED": 3, "CANCELLED": 2}


def _orders(
    rng: random.Random,
    tenant_id: uuid.UUID,
    base_ms: int,
    customers: Sequence[dict[str, Any]],
    products: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for product in products:
        by_currency.setdefault(product["currency"], []).append(product)
    ages = sorted((rng.randrange(365 * _DAY) for _ in range(ORDERS_PER_TENANT)), reverse=True)
    # Some customers are regulars: weight each one once, then draw all orders at once.
    weights = [rng.uniform(0.2, 3.0) for _ in customers]
    buyers = rng.choices(customers, weights, k=ORDERS_PER_TENANT)
    orders, items = [], []
    for n, (age_ms, buyer) in enumerate(zip(ages, buyers, strict=True), start=1):
        created_ms = base_ms - age_ms
        currency = rng.choice(products)["currency"]
        count = rng.choices((1, 2, 3, 4, 5), (30, 28, 20, 12, 10))[0]
        chosen = rng.sample(by_currency[currency], count)
        status = _status(rng, age_ms)
        low, high = _STATUS_DELAY_MS[status]
        updated_ms = min(base_ms, created_ms + (rng.randint(low, high) if high else 0))
        order_id = uuid7(rng, created_ms)
        total = Decimal(0)
        for position, product in enumerate(chosen, start=1):
            quantity = rng.choices((1, 2, 3, 4, 5), (60, 20, 10, 6, 4))[0]
            total += product["price"] * quantity
            items.append(
                {
                    "id": uuid7(rng, created_ms),
                    "tenant_id": tenant_id,
                    "order_id": order_id,
                    "product_id": product["id"],
                    "position": position,
                    "quantity": quantity,
                    "unit_price": product["price"],
                }
            )
        orders.append(
            {
                "id": order_id,
                "tenant_id": tenant_id,
                "number": f"ORD-{n:06d}",
                "customer_id": buyer["id"],
                "status": status,
                "currency": currency,
                "total": total,
                "note": rng.choice(_NOTES) if rng.random() < 0.12 else None,
                "internal_note": rng.choice(_INTERNAL_NOTES) if rng.random() < 0.08 else None,
                "created_at": _at(created_ms),
                "updated_at": _at(updated_ms),
                "version": _STATUS_VERSION[status],
            }
        )
    return orders, items


def _reviews(
    rng: random.Random,
    tenant_id: uuid.UUID,
    base_ms: int,
    orders: Sequence[dict[str, Any]],
    items: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    order_by_id = {order["id"]: order for order in orders}
    first_bought: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for item in items:
        order = order_by_id[item["order_id"]]
        if order["status"] == "CANCELLED":
            continue
        pair = (order["customer_id"], item["product_id"])
        if pair not in first_bought:
            first_bought[pair] = _ms(order["created_at"])
    pairs = rng.sample(list(first_bought.items()), REVIEWS_PER_TENANT)
    rows = []
    for (author_id, product_id), bought_ms in pairs:
        created_ms = min(base_ms, bought_ms + rng.randrange(_DAY, 30 * _DAY))
        rating = rng.choices((1, 2, 3, 4, 5), (5, 7, 13, 33, 42))[0]
        rows.append(
            {
                "id": uuid7(rng, created_ms),
                "tenant_id": tenant_id,
                "product_id": product_id,
                "author_id": author_id,
                "rating": rating,
                "body": rng.choice(_REVIEWS[rating]) if rng.random() < 0.8 else None,
                "created_at": _at(created_ms),
            }
        )
    return rows


def build_tenant(seed: int, slug: str, name: str) -> TenantRows:
    """Generate (without inserting) one tenant's demo rows; pure and deterministic."""
    rng = random.Random(f"tollgate-seed:{seed}:{slug}")
    base_ms = _ms(BASE_INSTANT)
    tenant_ms = base_ms - 800 * _DAY
    tenant_id = uuid7(rng, tenant_ms)
    products = _products(rng, tenant_id, slug, tenant_ms + _DAY)
    users = _users(rng, tenant_id, slug, base_ms - 730 * _DAY)
    customers = [user for user in users if user["role"] == "CUSTOMER"]
    orders, items = _orders(rng, tenant_id, base_ms, customers, products)
    reviews = _reviews(rng, tenant_id, base_ms, orders, items)
    tenant = {
        "id": tenant_id,
        "slug": slug,
        "name": name,
        # New orders continue the numbering after the seeded ones.
        "order_seq": len(orders),
        "created_at": _at(tenant_ms),
    }
    return TenantRows(tenant, users, products, orders, items, reviews)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


async def _insert(conn: AsyncConnection, table: str, rows: Iterable[dict[str, Any]]) -> None:
    batch = list(rows)
    for start in range(0, len(batch), CHUNK):
        await conn.execute(insert(_table(table)), batch[start : start + CHUNK])


async def seed(engine: AsyncEngine, *, seed: int = 7) -> SeedSummary | None:
    """Insert the demo tenants and their data if ``tenants`` is empty; else return ``None``.

    Runs in one transaction (then ANALYZE), so a failure leaves the database empty and concurrent callers
    are serialised (the loser sees the winner's rows and returns ``None``). On PostgreSQL it
    also works through the row-level-security-bound app role.
    """
    async with tenant_transaction(engine, None, write=True) as conn:
        if is_postgres(conn):
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEED_LOCK_KEY})
        existing = await conn.scalar(select(func.count()).select_from(_table("tenants")))
        if existing:
            return None
        built = [build_tenant(seed, slug, name) for slug, name in TENANTS]
        await _insert(conn, "tenants", (rows.tenant for rows in built))
        for rows in built:
            await set_tenant(conn, rows.tenant["id"])
            await _insert(conn, "users", rows.users)
            await _insert(conn, "products", rows.products)
            await _insert(conn, "orders", rows.orders)
            await _insert(conn, "order_items", rows.order_items)
            await _insert(conn, "reviews", rows.reviews)
        await set_tenant(conn, None)
    # Fresh statistics for the query planner: SQLite has none until ANALYZE, and without
    # them it may pick a tenant-wide index over the primary key for by-id batches.
    # (PostgreSQL skips, with a warning, tables the connecting role does not own.)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    return SeedSummary(
        tenants=len(built),
        users=sum(len(rows.users) for rows in built),
        products=sum(len(rows.products) for rows in built),
        orders=sum(len(rows.orders) for rows in built),
        order_items=sum(len(rows.order_items) for rows in built),
        reviews=sum(len(rows.reviews) for rows in built),
        tenant_slugs=tuple(rows.tenant["slug"] for rows in built),
    )


async def tenant_by_slug(
    conn: AsyncConnection, slug: str
) -> Row[uuid.UUID, str, str, dt.datetime] | None:
    """Return the tenant ``(id, slug, name, created_at)`` with this slug, or ``None``."""
    tenants = _table("tenants")
    result = await conn.execute(
        select(tenants.c.id, tenants.c.slug, tenants.c.name, tenants.c.created_at).where(
            tenants.c.slug == slug
        )
    )
    return result.first()


async def demo_user(
    conn: AsyncConnection, tenant_slug: str, role: str
) -> Row[uuid.UUID, uuid.UUID, str, str] | None:
    """Return the demo user ``(id, tenant_id, name, role)``: the tenant's earliest of ``role``.

    On PostgreSQL the lookup runs with that tenant admitted by row-level security and then
    restores the transaction's previous tenant setting.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    tenant = await tenant_by_slug(conn, tenant_slug)
    if tenant is None:
        return None
    users = _table("users")
    query = (
        select(users.c.id, users.c.tenant_id, users.c.name, users.c.role)
        .where(users.c.tenant_id == tenant.id, users.c.role == role)
        .order_by(users.c.created_at, users.c.id)
        .limit(1)
    )
    if not is_postgres(conn):
        return (await conn.execute(query)).first()
    previous = await conn.scalar(
        text("SELECT current_setting(:name, true)"), {"name": TENANT_SETTING}
    )
    await set_tenant(conn, tenant.id)
    row = (await conn.execute(query)).first()
    await conn.execute(
        text("SELECT set_config(:name, :tid, true)"),
        {"name": TENANT_SETTING, "tid": previous or ""},
    )
    return row
