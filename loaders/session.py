"""The per-request database handle every loader and resolver reads through."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from database.engine import tenant_transaction


class RequestDb:
    """One lazily opened, tenant-scoped read transaction per request.

    DataLoaders of one request dispatch concurrently, but a database connection runs one
    statement at a time (asyncpg refuses overlapping use), so statements are serialised by a
    lock; they are few per request because the loaders batch.
    """

    def __init__(self, engine: AsyncEngine, tenant_id: uuid.UUID | None) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self._lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None
        self._conn: AsyncConnection | None = None

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            stack = contextlib.AsyncExitStack()
            self._conn = await stack.enter_async_context(
                tenant_transaction(self.engine, self.tenant_id)
            )
            self._stack = stack
        return self._conn

    async def rows(
        self, stmt: Executable, params: dict[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Run a SELECT and return all its rows."""
        async with self._lock:
            conn = await self._connection()
            result = await conn.execute(stmt, params or {})
            return result.all()

    async def scalar(self, stmt: Executable, params: dict[str, Any] | None = None) -> Any:
        """Run a SELECT and return the first column of the first row."""
        async with self._lock:
            conn = await self._connection()
            result = await conn.execute(stmt, params or {})
            return result.scalar()

    async def close(self) -> None:
        """End the read transaction (if one was opened) and return the connection."""
        async with self._lock:
            stack, self._stack, self._conn = self._stack, None, None
            if stack is not None:
                await stack.aclose()
