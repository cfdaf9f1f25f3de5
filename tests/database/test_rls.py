"""Row-level security on PostgreSQL: tenant isolation enforced by the database itself."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from database.engine import tenant_transaction
from database.models import TENANT_OWNED, Base, Product, Tenant
from database.seed import tenant_by_slug

pytestmark = pytest.mark.postgres


class _Rollback(Exception):
    """Raised to roll a test transaction back."""


async def _tenants(engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID]:
    async with tenant_transaction(engine, None) as conn:
        acme = await tenant_by_slug(conn, "acme")
        globex = await tenant_by_slug(conn, "globex")
    assert acme is not None and globex is not None
    return acme.id, globex.id


async def test_unfiltered_queries_see_only_the_current_tenant(
    seeded_pg: AsyncEngine, seeded_pg_app: AsyncEngine
) -> None:
    acme, globex = await _tenants(seeded_pg)
    for tenant in (acme, globex):
        for name in TENANT_OWNED:
            table = Base.metadata.tables[name]
            async with tenant_transaction(seeded_pg, None) as conn:
                expected = await conn.scalar(
                    select(func.count()).select_from(table).where(table.c.tenant_id == tenant)
                )
            async with tenant_transaction(seeded_pg_app, tenant) as conn:
                # Deliberately no WHERE tenant_id = ...: the database must add it.
                seen = (await conn.execute(select(table.c.tenant_id))).scalars().all()
            assert len(seen) == expected, name
            assert set(seen) <= {tenant}, name
    async with tenant_transaction(seeded_pg_app, acme) as conn:
        assert await conn.scalar(select(func.count()).select_from(Product)) == 200


async def test_no_tenant_sees_no_rows(seeded_pg_app: AsyncEngine) -> None:
    async with tenant_transaction(seeded_pg_app, None) as conn:
        for name in TENANT_OWNED:
            table = Base.metadata.tables[name]
            assert await conn.scalar(select(func.count()).select_from(table)) == 0, name
        # Tenants themselves are not tenant-owned: they are looked up by slug at login.
        assert await conn.scalar(select(func.count()).select_from(Tenant)) == 2
    # A connection that never set the tenant at all is just as blind.
    async with seeded_pg_app.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM orders")) == 0


async def test_writing_another_tenants_rows_is_refused(
    seeded_pg: AsyncEngine, seeded_pg_app: AsyncEngine
) -> None:
    acme, globex = await _tenants(seeded_pg)
    product = {
        "id": uuid.uuid4(),
        "tenant_id": globex,
        "sku": "RLS-0001",
        "name": "Smuggled",
        "price": 1,
        "currency": "USD",
        "stock": 1,
        "version": 1,
    }
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(seeded_pg_app, acme, write=True) as conn:
            await conn.execute(insert(Product).values(**product))
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(seeded_pg_app, None, write=True) as conn:
            await conn.execute(insert(Product).values(**product))
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(seeded_pg_app, acme, write=True) as conn:
            # Moving one's own row into another tenant is refused by WITH CHECK.
            await conn.execute(update(Product).values(tenant_id=globex))
    with pytest.raises(_Rollback):
        async with tenant_transaction(seeded_pg_app, acme, write=True) as conn:
            touched = await conn.execute(
                update(Product).where(Product.tenant_id == globex).values(stock=0)
            )
            assert touched.rowcount == 0
            deleted = await conn.execute(
                text("DELETE FROM reviews WHERE tenant_id = :t"), {"t": globex}
            )
            assert deleted.rowcount == 0
            raise _Rollback
    async with tenant_transaction(seeded_pg, None) as conn:
        assert await conn.scalar(select(func.count()).where(Product.sku == "RLS-0001")) == 0


async def test_the_app_role_cannot_switch_rls_off(
    seeded_pg_app: AsyncEngine,
) -> None:
    with pytest.raises(DBAPIError, match=r"must be owner|permission denied"):
        async with tenant_transaction(seeded_pg_app, None, write=True) as conn:
            await conn.execute(text("ALTER TABLE orders DISABLE ROW LEVEL SECURITY"))
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(seeded_pg_app, None) as conn:
            # Allowed to ask, but then any RLS-bound query errors instead of bypassing.
            await conn.execute(text("SET LOCAL row_security = off"))
            await conn.execute(text("SELECT count(*) FROM orders"))


async def test_the_app_role_may_use_every_table_including_later_ones(
    seeded_pg_app: AsyncEngine,
) -> None:
    # Tables created by migrations after the RLS one get their grants by default privileges.
    async with tenant_transaction(seeded_pg_app, None) as conn:
        for table in Base.metadata.sorted_tables:
            await conn.execute(select(func.count()).select_from(table))
        assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_transaction(seeded_pg_app, None, write=True) as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'x'"))
