"""Async engines for SQLite and PostgreSQL, and tenant-scoped transactions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from database.reader import TENANT_SETTING, Reader, make_reader
from database.sqlite_driver import async_creator

SQLITE_BUSY_TIMEOUT_MS = 30_000

# Execution option read by the SQLite "begin" hook: take the write lock at BEGIN.
_WRITE_OPTION = "tollgate_sqlite_write"

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with its async driver: ``sqlite+aiosqlite`` or ``postgresql+asyncpg``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def _is_memory_sqlite(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or (
        database.startswith("file:") and "mode=memory" in database
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin) instead of the driver's
    # legacy implicit transactions, which start too late for correct locking.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts the database; it may lose the last commits on
        # power loss, which is acceptable for the single-machine deployment.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that later writes fails at once with SQLITE_BUSY when another
    # writer got there first (busy_timeout does not apply to lock upgrades in WAL mode);
    # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue instead.
    if conn.get_execution_options().get(_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


class Engine(AsyncEngine):
    """SQLAlchemy's async engine plus the raw-driver :class:`~database.reader.Reader` of the
    read path (None for in-memory SQLite); ``dispose`` closes both."""

    __slots__ = ("reader",)
    reader: Reader | None

    async def dispose(self, close: bool = True) -> None:
        reader: Reader | None = getattr(self, "reader", None)
        if reader is not None:
            await reader.close()
        await super().dispose(close)


def reader_of(engine: AsyncEngine) -> Reader | None:
    """The read path's raw-driver reader of ``engine``, if it has one."""
    return getattr(engine, "reader", None)


def _with_reader(engine: AsyncEngine, url: URL, pool_size: int) -> Engine:
    wrapped = Engine(engine.sync_engine)
    wrapped.reader = make_reader(url, pool_size=pool_size)
    return wrapped


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create an async engine for a SQLite or PostgreSQL URL (sync schemes are normalised).

    The engine carries the read path's raw-driver reader (``database.reader``), which uses
    the same URL. SQLite connections are aiosqlite's, with cursors that run a statement in one thread hop
    (``database.sqlite_driver``); they get WAL, ``foreign_keys=ON`` and a busy timeout; transactions opened
    by :func:`tenant_transaction` with ``write=True`` begin with ``BEGIN IMMEDIATE``.
    """
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        kwargs["async_creator"] = async_creator(parsed)  # one thread hop per statement
        if not _is_memory_sqlite(parsed):
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        engine = create_async_engine(parsed, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return _with_reader(engine, parsed, pool_size)
    # A host that silently drops packets must fail fast (asyncpg's default connect timeout
    # is 60 s), so outages reach the circuit breaker instead of piling up requests.
    kwargs.update(
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        pool_timeout=5,
        connect_args={"timeout": 3},
    )
    return _with_reader(create_async_engine(parsed, **kwargs), parsed, pool_size)


def is_postgres(engine: AsyncEngine | AsyncConnection) -> bool:
    """Return whether ``engine`` talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1``; raises when the database cannot be reached."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def set_tenant(conn: AsyncConnection, tenant_id: uuid.UUID | None) -> None:
    """Set the tenant that row-level security admits for the rest of this transaction.

    A no-op on SQLite, which has no row-level security.
    """
    if is_postgres(conn):
        await conn.execute(
            text("SELECT set_config(:name, :tid, true)"),
            {"name": TENANT_SETTING, "tid": "" if tenant_id is None else str(tenant_id)},
        )


@asynccontextmanager
async def tenant_transaction(
    engine: AsyncEngine, tenant_id: uuid.UUID | None, *, write: bool = False
) -> AsyncIterator[AsyncConnection]:
    """Yield a connection inside a transaction scoped to ``tenant_id``.

    Commits when the block succeeds and rolls back when it raises. On PostgreSQL the tenant
    is set for row-level security (``None`` admits no tenant-owned row); on SQLite
    ``write=True`` takes the write lock up-front so concurrent writers wait their turn.
    """
    async with engine.connect() as conn:
        if write and not is_postgres(engine):
            await conn.execution_options(**{_WRITE_OPTION: True})
        async with conn.begin():
            await set_tenant(conn, tenant_id)
            yield conn
