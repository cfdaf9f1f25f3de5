"""Alembic migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from database import migrate
from database.engine import make_engine
from database.models import TENANT_OWNED, Base

MODEL_TABLES = set(Base.metadata.tables)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _schema_drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _inspect_schema(url: str) -> tuple[set[str], list[Any]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            drift = await conn.run_sync(_schema_drift)
        return tables, drift
    finally:
        await engine.dispose()


def test_upgrade_runs_without_an_event_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()


async def test_sqlite_upgrade_creates_every_model_table_exactly(sqlite_file_url: str) -> None:
    migrate.upgrade(sqlite_file_url)
    assert migrate.current(sqlite_file_url) == migrate.head()
    tables, drift = await _inspect_schema(sqlite_file_url)
    assert tables == MODEL_TABLES | {"alembic_version"}
    assert drift == [], "models.py and the migrations disagree; add a migration"
    migrate.upgrade(sqlite_file_url)  # already at head: a no-op
    migrate.downgrade(sqlite_file_url, "base")
    assert migrate.current(sqlite_file_url) is None
    tables, _ = await _inspect_schema(sqlite_file_url)
    assert tables == {"alembic_version"}


@pytest.mark.postgres
async def test_postgres_upgrade_creates_every_model_table_exactly(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    assert migrate.current(pg_url) == migrate.head()
    tables, drift = await _inspect_schema(pg_url)
    assert tables == MODEL_TABLES | {"alembic_version"}
    assert drift == [], "models.py and the migrations disagree; add a migration"
    migrate.downgrade(pg_url, "base")
    tables, _ = await _inspect_schema(pg_url)
    assert tables == {"alembic_version"}
    migrate.upgrade(pg_url)
    assert migrate.current(pg_url) == migrate.head()


@pytest.mark.postgres
async def test_concurrent_upgrades_in_threads_both_succeed(pg_url: str) -> None:
    both = asyncio.gather(*(asyncio.to_thread(migrate.upgrade, pg_url) for _ in range(2)))
    await asyncio.wait_for(both, timeout=120)
    assert migrate.current(pg_url) == migrate.head()


@pytest.mark.postgres
async def test_concurrent_upgrades_in_processes_both_succeed(pg_url: str) -> None:
    # Several server workers may migrate at start-up; the advisory lock makes them queue.
    code = "import sys; from database.migrate import upgrade; upgrade(sys.argv[1])"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, pg_url, cwd=REPO_ROOT, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(process.communicate() for process in processes)), timeout=120
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr.decode()
    assert migrate.current(pg_url) == migrate.head()


@pytest.mark.postgres
async def test_postgres_forces_row_level_security_on_tenant_owned_tables(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
                        " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
                        " FROM pg_class c WHERE c.relkind = 'r'"
                        " AND c.relnamespace = current_schema()::regnamespace"
                    )
                )
            ).all()
            role = (
                await conn.execute(
                    text(
                        "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles"
                        " WHERE rolname = :role"
                    ),
                    {"role": migrate.DEFAULT_APP_ROLE},
                )
            ).one()
    finally:
        await engine.dispose()
    secured = {name for name, enabled, forced, policies in rows if enabled and forced and policies}
    assert secured == set(TENANT_OWNED)
    assert tuple(role) == (True, False, False)


def test_rls_migration_covers_models_tenant_owned_tables() -> None:
    secured: set[str] = set()
    for revision in ("0002_tenant_rls", "0005_webhooks"):
        path = migrate.MIGRATIONS_DIR / "versions" / f"{revision}.py"
        spec = importlib.util.spec_from_file_location(f"rls_migration_{revision}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        secured |= set(module.TENANT_OWNED)
    assert secured == set(TENANT_OWNED)


def test_app_url_swaps_the_user_and_keeps_the_rest() -> None:
    owner = "postgresql+asyncpg://postgres:secret@db.internal:5433/tollgate?ssl=require"
    assert migrate.app_url(owner) == (
        "postgresql+asyncpg://tollgate_app@db.internal:5433/tollgate?ssl=require"
    )
    assert migrate.app_url(owner, "reader", "pw") == (
        "postgresql+asyncpg://reader:pw@db.internal:5433/tollgate?ssl=require"
    )
    with pytest.raises(ValueError, match="invalid role"):
        migrate.app_url(owner, 'x"; DROP TABLE users; --')
