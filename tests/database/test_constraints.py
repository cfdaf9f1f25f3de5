"""Database constraints that the application relies on."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from database.engine import tenant_transaction
from database.models import Product


class _Rollback(Exception):
    """Raised to roll a test transaction back."""


async def _assert_stock_cannot_go_negative(engine: AsyncEngine) -> None:
    async with tenant_transaction(engine, None) as conn:
        product = (await conn.execute(select(Product.id, Product.tenant_id).limit(1))).one()
    with pytest.raises(IntegrityError):
        async with tenant_transaction(engine, product.tenant_id, write=True) as conn:
            await conn.execute(
                update(Product).where(Product.id == product.id).values(stock=Product.stock - 10_000)
            )
    with pytest.raises(IntegrityError):
        async with tenant_transaction(engine, product.tenant_id, write=True) as conn:
            await conn.execute(
                Product.__table__.insert().values(
                    id=uuid.uuid4(),
                    tenant_id=product.tenant_id,
                    sku="NEG-0001",
                    name="Negative",
                    price=1,
                    currency="USD",
                    stock=-1,
                    version=1,
                )
            )
    with pytest.raises(_Rollback):
        async with tenant_transaction(engine, product.tenant_id, write=True) as conn:
            result = await conn.execute(
                update(Product).where(Product.id == product.id).values(stock=0)
            )
            assert result.rowcount == 1  # exactly zero is allowed
            raise _Rollback  # leave the shared seeded database untouched


async def test_sqlite_refuses_negative_stock(seeded_sqlite: AsyncEngine) -> None:
    await _assert_stock_cannot_go_negative(seeded_sqlite)


@pytest.mark.postgres
async def test_postgres_refuses_negative_stock(seeded_pg: AsyncEngine) -> None:
    await _assert_stock_cannot_go_negative(seeded_pg)
