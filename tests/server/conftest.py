"""The app on a migrated, seeded database: SQLite always, PostgreSQL when reachable."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from auth import Role
from auth.tokens import mint_token
from database import migrate
from database.engine import make_engine, set_tenant
from database.models import User
from database.seed import demo_user, seed, tenant_by_slug
from server.app import create_app
from server.settings import Settings
from tests.services import PG_ADMIN_URL, require_postgres

OPERATIONS = Path(__file__).resolve().parents[3] / "shared" / "contract" / "operations"
if not OPERATIONS.exists():
    OPERATIONS = Path(os.environ.get("TOLLGATE_CONTRACT_DIR", "../shared/contract")) / "operations"


def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text(encoding="utf-8")


async def _admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _seed(url: str) -> None:
    engine = make_engine(url)
    try:
        await seed(engine)
    finally:
        await engine.dispose()


def seeded_database(backend: str, tmp: Path) -> Iterator[str]:
    """Yield the URL of a fresh, migrated and seeded database of ``backend``."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'app.db'}"
        migrate.upgrade(url)
        asyncio.run(_seed(url))
        yield url
        return
    require_postgres()
    name = f"tollgate_app_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate.upgrade(url)
        asyncio.run(_seed(url))
        # The app connects as the role that row-level security binds, as in production: every
        # HTTP test on PostgreSQL runs with tenancy enforced by the database a second time.
        yield migrate.app_url(url)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from seeded_database(request.param, tmp_path_factory.mktemp(request.param))


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: generous budgets unless a test asks otherwise."""
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "redis_url": None,
        "user_capacity": 10_000_000,
        "tenant_capacity": 100_000_000,
        "write_capacity": 10_000_000,
        "anonymous_capacity": 1_000_000,
        "log_json": False,
        # No delivery worker unless a test starts one (tests/server/test_webhooks*.py).
        "webhooks": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class Tokens:
    """Tokens for the seeded demo users, by tenant and role, plus a second customer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.users: dict[tuple[str, str], Any] = {}
        self.tenants: dict[str, uuid.UUID] = {}

    async def load(self) -> None:
        engine = make_engine(self.settings.database_url)
        try:
            async with engine.connect() as conn:
                for slug in ("acme", "globex"):
                    tenant = await tenant_by_slug(conn, slug)
                    assert tenant is not None
                    self.tenants[slug] = tenant.id
                    for role in ("CUSTOMER", "STAFF", "ADMIN"):
                        self.users[(slug, role)] = await demo_user(conn, slug, role)
                    await set_tenant(conn, tenant.id)  # row-level security on PostgreSQL
                    users = User.__table__
                    other = (
                        await conn.execute(
                            select(users)
                            .where(
                                users.c.tenant_id == tenant.id,
                                users.c.role == "CUSTOMER",
                                users.c.id != self.users[(slug, "CUSTOMER")].id,
                            )
                            .order_by(users.c.created_at, users.c.id)
                            .limit(1)
                        )
                    ).one()
                    self.users[(slug, "CUSTOMER2")] = other
        finally:
            await engine.dispose()

    def token(self, role: str = "STAFF", tenant: str = "acme", **kwargs: Any) -> str:
        user = self.users[(tenant, role.upper())]
        return mint_token(
            self.settings.jwt(),
            subject=str(user.id),
            tenant_id=self.tenants[tenant],
            role=Role(user.role),
            **kwargs,
        )

    def headers(self, role: str = "STAFF", tenant: str = "acme", **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, tenant, **kwargs)}"}


@pytest.fixture(scope="session")
async def tokens(settings: Settings) -> Tokens:
    found = Tokens(settings)
    await found.load()
    return found


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    """POST one operation as a GraphQL-over-HTTP client would."""
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    body.update(extra)
    return await client.post(
        "/graphql",
        json=body,
        headers={"Accept": "application/graphql-response+json", **(headers or {})},
    )
