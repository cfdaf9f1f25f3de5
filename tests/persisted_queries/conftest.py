"""Fixtures for the persisted-query tests: stores on every backend, Redis, a stand-in analyser."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis.asyncio as redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from persisted_queries import Analysis, MemoryStore, SQLStore, Store, create_tables
from persisted_queries.stores import DOCUMENTS
from tests.services import unavailable

PG_ADMIN_URL = os.environ.get(
    "TOLLGATE_TEST_PG_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TOLLGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
OPERATIONS = Path("/work/shared/contract/operations")
MAX_COST = 500
_NAME = re.compile(r"\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


def service_unavailable(service: str, error: BaseException) -> NoReturn:
    """Skip loudly when a service is unreachable; under CI=true, fail instead."""
    unavailable(f"{service} is unreachable: {type(error).__name__}: {error}")


def operations() -> dict[str, str]:
    """The contract's sample operations, by file stem."""
    return {path.stem: path.read_text() for path in sorted(OPERATIONS.glob("*.graphql"))}


class Pricer:
    """Stands in for the server's parse+validate+price step: 7 per selection set, max 500.

    ``factor`` scales every price (a schema change re-pricing documents); a text containing
    ``syntax error`` is refused as invalid. ``calls`` counts analyses.
    """

    def __init__(self, factor: int = 1) -> None:
        self.factor = factor
        self.calls = 0

    def __call__(self, document: str) -> Analysis:
        self.calls += 1
        if "syntax error" in document:
            return Analysis(False, 0, None, "Syntax Error: Unexpected Name 'syntax'.")
        cost = document.count("{") * 7 * self.factor
        match = _NAME.search(document)
        name = match.group(1) if match else None
        if cost > MAX_COST:
            return Analysis(False, cost, name, f"cost {cost} exceeds the maximum {MAX_COST}")
        return Analysis(True, cost, name)


class AsyncPricer(Pricer):
    """The same analyser as a coroutine, as the server's will be."""

    async def __call__(self, document: str) -> Analysis:  # type: ignore[override]
        return super().__call__(document)


@pytest.fixture
def pricer() -> Pricer:
    """A fresh synchronous analyser."""
    return Pricer()


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh SQLite file holding this package's tables."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'pq.db'}")
    await create_tables(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def pg_admin() -> AsyncIterator[AsyncEngine]:
    """An autocommit engine for CREATE/DROP DATABASE (skips loudly when unreachable)."""
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure to connect means "unreachable" here
        await engine.dispose()
        service_unavailable("PostgreSQL at " + PG_ADMIN_URL, error)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def pg_session_engine(pg_admin: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine on a throwaway PostgreSQL database of our own, dropped at the end."""
    name = f"tollgate_pq_test_{uuid.uuid4().hex[:12]}"
    async with pg_admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(make_url(PG_ADMIN_URL).set(database=name), pool_size=5)
    try:
        await create_tables(engine)
        yield engine
    finally:
        await engine.dispose()
        async with pg_admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_engine(pg_session_engine: AsyncEngine) -> AsyncEngine:
    """The PostgreSQL engine with an empty registry (the version keeps growing)."""
    async with pg_session_engine.begin() as conn:
        await conn.execute(DOCUMENTS.delete())
    return pg_session_engine


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest) -> Callable[[], Awaitable[Store]]:
    """Builds stores of one backend; all stores from one factory share their data."""
    backend = request.param
    if backend == "memory":
        shared = MemoryStore()

        async def memory() -> Store:
            return shared

        return memory
    # Sync on purpose: pytest-asyncio sets async fixtures up outside the running loop.
    engine: AsyncEngine = request.getfixturevalue(
        "sqlite_engine" if backend == "sqlite" else "pg_engine"
    )

    async def sql() -> Store:
        return SQLStore(engine)

    return sql


@pytest.fixture
async def store(store_factory: Callable[[], Awaitable[Store]]) -> Store:
    """One store on each backend in turn."""
    return await store_factory()


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    """A real Redis client; its keys under the test's prefix are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as error:
        await client.aclose()
        service_unavailable("Redis at " + REDIS_URL, error)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Any) -> AsyncIterator[str]:
    """A key prefix unique to one test, cleaned up afterwards."""
    prefix = f"tollgate:pqtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=prefix + "*")]
    if keys:
        await redis_client.delete(*keys)
