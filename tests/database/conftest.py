"""Fixtures for the database tests: SQLite files, throwaway PostgreSQL databases, seeds."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from database import migrate
from database.engine import make_engine
from database.seed import seed
from tests.database.helpers import service_unavailable, sqlite_url, table_checksums

PG_ADMIN_URL = os.environ.get(
    "TOLLGATE_TEST_PG_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    """A URL for a fresh, not yet migrated SQLite file."""
    return sqlite_url(tmp_path / "tollgate.db")


@pytest.fixture(scope="session")
async def pg_admin() -> AsyncIterator[AsyncEngine]:
    """An autocommit engine on the maintenance database, for CREATE/DROP DATABASE."""
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
async def pg_database(pg_admin: AsyncEngine) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of empty PostgreSQL databases (owner URLs), all dropped at the end."""
    created: list[str] = []

    async def create() -> str:
        name = f"tollgate_db_test_{uuid.uuid4().hex[:12]}"
        async with pg_admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield create
    async with pg_admin.connect() as conn:
        for name in created:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_url(pg_database: Callable[[], Awaitable[str]]) -> str:
    """The owner URL of a fresh, not yet migrated PostgreSQL database."""
    return await pg_database()


@pytest.fixture(scope="session")
async def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated SQLite file holding the default seed."""
    url = sqlite_url(tmp_path_factory.mktemp("seeded") / "tollgate.db")
    migrate.upgrade(url)
    engine = make_engine(url)
    assert await seed(engine) is not None
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def seeded_sqlite_checksums(seeded_sqlite: AsyncEngine) -> dict[str, tuple[int, str]]:
    """Row counts and checksums of the seeded SQLite database, taken right after seeding."""
    async with seeded_sqlite.connect() as conn:
        return await table_checksums(conn)


@pytest.fixture(scope="session")
async def seeded_pg_owner_url(pg_database: Callable[[], Awaitable[str]]) -> str:
    """The owner URL of a migrated PostgreSQL database seeded through the RLS-bound role."""
    url = await pg_database()
    migrate.upgrade(url)
    app_engine = make_engine(migrate.app_url(url))
    try:
        assert await seed(app_engine) is not None
    finally:
        await app_engine.dispose()
    return url


@pytest.fixture(scope="session")
async def seeded_pg(seeded_pg_owner_url: str) -> AsyncIterator[AsyncEngine]:
    """An owner (superuser) engine on the seeded PostgreSQL database; RLS does not bind it."""
    engine = make_engine(seeded_pg_owner_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def seeded_pg_app(seeded_pg_owner_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the seeded PostgreSQL database connecting as the RLS-bound app role."""
    engine = make_engine(migrate.app_url(seeded_pg_owner_url))
    yield engine
    await engine.dispose()
