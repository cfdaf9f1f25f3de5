"""Engines, tenant transactions and SQLite write serialisation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from database.engine import is_postgres, make_engine, normalize_url, ping, tenant_transaction


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///tollgate.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///tollgate.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_are_normalised_to_async_drivers(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.database == normalize_url(given).database


def test_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        make_engine("mysql://u@h/db")


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert not is_postgres(engine)
        await ping(engine)
        async with tenant_transaction(engine, None) as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
            assert await conn.scalar(text("PRAGMA busy_timeout")) >= 5000
    finally:
        await engine.dispose()


async def test_ping_raises_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    try:
        with pytest.raises(DBAPIError):
            await ping(engine)
    finally:
        await engine.dispose()


async def test_tenant_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        async with tenant_transaction(engine, None, write=True) as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError):
            async with tenant_transaction(engine, None, write=True) as conn:
                await conn.execute(text("INSERT INTO t VALUES (2)"))
                raise RuntimeError("boom")
        async with tenant_transaction(engine, None) as conn:
            assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == [1]
    finally:
        await engine.dispose()


async def test_concurrent_sqlite_writers_queue_instead_of_failing(tmp_path: Path) -> None:
    # Read-then-write in every transaction: without BEGIN IMMEDIATE, overlapping ones fail
    # with "database is locked" (or lose updates); with it they run one after another.
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(url, pool_size=8)
    writers, rounds = 16, 5
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
            await conn.execute(text("INSERT INTO counter VALUES (0)"))

        async def bump() -> None:
            for _ in range(rounds):
                async with tenant_transaction(engine, None, write=True) as conn:
                    n = await conn.scalar(text("SELECT n FROM counter"))
                    await asyncio.sleep(0.001)
                    await conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

        await asyncio.wait_for(asyncio.gather(*(bump() for _ in range(writers))), timeout=60)
        async with tenant_transaction(engine, None) as conn:
            assert await conn.scalar(text("SELECT n FROM counter")) == writers * rounds
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_transaction_sets_the_tenant_for_row_level_security(
    pg_database: Callable[[], Awaitable[str]],
) -> None:
    engine = make_engine(await pg_database())
    tenant = uuid.uuid4()
    try:
        assert is_postgres(engine)
        await ping(engine)
        async with tenant_transaction(engine, tenant) as conn:
            setting = text("SELECT current_setting('app.tenant_id', true)")
            assert await conn.scalar(setting) == str(tenant)
        async with tenant_transaction(engine, None, write=True) as conn:
            assert await conn.scalar(setting) == ""
        # The setting is transaction-local: a pooled connection does not leak it.
        async with engine.connect() as conn:
            assert await conn.scalar(setting) in (None, "")
    finally:
        await engine.dispose()
