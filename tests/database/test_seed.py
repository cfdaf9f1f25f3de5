"""The deterministic demo seed."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from database import migrate
from database.engine import make_engine, tenant_transaction
from database.models import Order, OrderItem, Product, Review, Tenant, User
from database.seed import BASE_INSTANT, build_tenant, demo_user, seed, tenant_by_slug
from tests.database.helpers import sqlite_url, table_checksums

BASE = BASE_INSTANT.replace(tzinfo=None)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


async def test_seed_is_deterministic(
    seeded_sqlite_checksums: dict[str, tuple[int, str]], tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "again.db")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        await seed(engine)
        async with engine.connect() as conn:
            again = await table_checksums(conn)
    finally:
        await engine.dispose()
    assert again == seeded_sqlite_checksums


def test_other_seed_values_give_other_data() -> None:
    default, other = build_tenant(7, "acme", "Acme Corp"), build_tenant(8, "acme", "Acme Corp")
    assert default.tenant["id"] != other.tenant["id"]
    assert {u["id"] for u in default.users}.isdisjoint(u["id"] for u in other.users)
    assert [p["sku"] for p in default.products] == [p["sku"] for p in other.products]


async def test_seed_into_a_non_empty_database_does_nothing(
    seeded_sqlite: AsyncEngine, seeded_sqlite_checksums: dict[str, tuple[int, str]]
) -> None:
    assert await seed(seeded_sqlite) is None
    async with seeded_sqlite.connect() as conn:
        assert await table_checksums(conn) == seeded_sqlite_checksums


async def test_seed_counts_per_tenant(seeded_sqlite: AsyncEngine) -> None:
    async with tenant_transaction(seeded_sqlite, None) as conn:
        tenants = {row.slug: row for row in (await conn.execute(select(Tenant))).all()}
        assert {slug: row.name for slug, row in tenants.items()} == {
            "acme": "Acme Corp",
            "globex": "Globex Corporation",
        }
        for tenant in tenants.values():
            roles = Counter(
                (await conn.execute(select(User.role).where(User.tenant_id == tenant.id)))
                .scalars()
                .all()
            )
            assert roles == {"CUSTOMER": 470, "STAFF": 25, "ADMIN": 5}
            for model, expected in ((Product, 200), (Order, 5000), (Review, 2000)):
                count = await conn.scalar(
                    select(func.count()).select_from(model).where(model.tenant_id == tenant.id)
                )
                assert count == expected, model.__tablename__
            assert tenant.order_seq == 5000


async def test_seeded_products_are_plausible(seeded_sqlite: AsyncEngine) -> None:
    async with tenant_transaction(seeded_sqlite, None) as conn:
        products = (await conn.execute(select(Product))).all()
        slugs = dict((await conn.execute(select(Tenant.id, Tenant.slug))).all())
    assert len(products) == 400
    for product in products:
        assert re.fullmatch(rf"{slugs[product.tenant_id].upper()}-\d{{4}}", product.sku)
        assert Decimal("1.00") <= product.price <= Decimal("500.00")
        assert product.unit_cost is not None and 0 < product.unit_cost < product.price
        assert 0 <= product.stock <= 500
        assert len(product.name.split()) >= 3
    assert sum(p.stock > 20 for p in products) > 0.8 * len(products)
    currencies = Counter(p.currency for p in products)
    assert set(currencies) == {"USD", "EUR", "INR"}
    assert currencies["USD"] > currencies["EUR"] + currencies["INR"]


async def test_seeded_orders_are_consistent(seeded_sqlite: AsyncEngine) -> None:
    async with tenant_transaction(seeded_sqlite, None) as conn:
        products = {p.id: p for p in (await conn.execute(select(Product))).all()}
        users = {u.id: u for u in (await conn.execute(select(User))).all()}
        orders = (await conn.execute(select(Order).order_by(Order.created_at))).all()
        items = (await conn.execute(select(OrderItem))).all()
        reviews = (await conn.execute(select(Review))).all()
    by_order = defaultdict(list)
    for item in items:
        by_order[item.order_id].append(item)
    bought: dict[tuple[object, object], dt.datetime] = {}
    numbers: dict[object, list[str]] = defaultdict(list)
    for order in orders:
        lines = by_order[order.id]
        assert 1 <= len(lines) <= 5
        assert len({line.product_id for line in lines}) == len(lines)
        assert sorted(line.position for line in lines) == list(range(1, len(lines) + 1))
        assert users[order.customer_id].role == "CUSTOMER"
        assert users[order.customer_id].tenant_id == order.tenant_id
        for line in lines:
            product = products[line.product_id]
            assert product.tenant_id == order.tenant_id
            assert line.unit_price == product.price
            assert product.currency == order.currency
            if order.status != "CANCELLED":
                bought.setdefault((order.customer_id, line.product_id), order.created_at)
        assert order.total == sum(line.unit_price * line.quantity for line in lines)
        created = _naive_utc(order.created_at)
        assert BASE - dt.timedelta(days=365) <= created <= BASE
        assert created <= _naive_utc(order.updated_at) <= BASE
        numbers[order.tenant_id].append(order.number)
    for tenant_numbers in numbers.values():
        assert tenant_numbers == [f"ORD-{n:06d}" for n in range(1, 5001)]
    statuses = Counter(order.status for order in orders)
    assert set(statuses) == {"PENDING", "CONFIRMED", "SHIPPED", "CANCELLED"}
    assert statuses["SHIPPED"] > len(orders) / 2
    assert 0 < sum(o.note is not None for o in orders) < len(orders) / 4
    assert 0 < sum(o.internal_note is not None for o in orders) < len(orders) / 4

    assert len({(r.author_id, r.product_id) for r in reviews}) == len(reviews) == 4000
    for review in reviews:
        assert (review.author_id, review.product_id) in bought
        assert 1 <= review.rating <= 5
        assert _naive_utc(review.created_at) > _naive_utc(
            bought[(review.author_id, review.product_id)]
        )
    assert set(Counter(r.rating for r in reviews)) == {1, 2, 3, 4, 5}


async def test_demo_users_are_the_first_of_each_role(seeded_sqlite: AsyncEngine) -> None:
    async with tenant_transaction(seeded_sqlite, None) as conn:
        acme = await tenant_by_slug(conn, "acme")
        assert acme is not None and acme.name == "Acme Corp"
        for role in ("CUSTOMER", "STAFF", "ADMIN"):
            user = await demo_user(conn, "acme", role)
            assert user is not None
            assert (user.tenant_id, user.role) == (acme.id, role)
            first = (
                await conn.execute(
                    text(
                        "SELECT id FROM users WHERE tenant_id = :t AND role = :r"
                        " ORDER BY created_at, id LIMIT 1"
                    ),
                    {"t": acme.id.hex, "r": role},
                )
            ).scalar_one()
            assert first == user.id.hex
        assert await demo_user(conn, "initech", "ADMIN") is None
        assert await tenant_by_slug(conn, "initech") is None
        with pytest.raises(ValueError, match="role"):
            await demo_user(conn, "acme", "ROOT")


@pytest.mark.postgres
async def test_postgres_seed_matches_sqlite_row_for_row(
    seeded_sqlite_checksums: dict[str, tuple[int, str]], seeded_pg: AsyncEngine
) -> None:
    async with seeded_pg.connect() as conn:
        assert await table_checksums(conn) == seeded_sqlite_checksums


@pytest.mark.postgres
async def test_postgres_demo_user_works_under_row_level_security(
    seeded_pg_app: AsyncEngine,
) -> None:
    async with tenant_transaction(seeded_pg_app, None) as conn:
        user = await demo_user(conn, "globex", "STAFF")
        assert user is not None and user.role == "STAFF"
        # The caller's tenant setting (none) is restored afterwards.
        assert await conn.scalar(text("SELECT count(*) FROM users")) == 0
