"""The per-request database handle every loader and resolver reads through."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Executable
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from database.engine import reader_of, tenant_transaction
from database.faults import Breaker, DatabaseUnavailable, is_database_unavailable
from database.reader import Prepared, ReadSession

# Re-exported: the fault classification lives in ``database.faults``.
__all__ = ["Breaker", "DatabaseUnavailable", "RequestDb", "is_database_unavailable"]


class RequestDb:
    """One lazily opened, tenant-scoped read transaction per request.

    A :class:`~database.reader.Prepared` statement runs on the engine's raw-driver reader
    (``database.reader``: sqlite3 on the event loop, asyncpg with prepared statements); any
    other statement, and every statement of an engine without a reader (in-memory SQLite),
    runs through SQLAlchemy's engine.

    DataLoaders of one request dispatch concurrently, but a database connection runs one
    statement at a time (asyncpg refuses overlapping use), so statements are serialised by a
    lock; they are few per request because the loaders batch.
    """

    def __init__(
        self, engine: AsyncEngine, tenant_id: uuid.UUID | None, breaker: Breaker | None = None
    ) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self.breaker = breaker
        self._lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None
        self._conn: AsyncConnection | None = None
        self.reader = reader_of(engine)
        self._session: ReadSession | None = None
        # After close() (the end of the request, or a mutation about to write), a read gets a
        # transaction of its own, ended with it: a batch that outlives its request (its waiters
        # were cancelled) must not keep a pooled connection.
        self._closed = False
        # Once the database failed this request, its later statements fail at once: one
        # request never waits on, or counts against the breaker, more than one outage.
        self._unavailable: DatabaseUnavailable | None = None

    @contextlib.asynccontextmanager
    async def guarded(self) -> AsyncIterator[None]:
        """Run a block of database work under the breaker.

        Raises ``DatabaseUnavailable`` when the breaker is open or the block fails because the
        database is unreachable (recorded as a breaker failure); any other outcome, including
        an integrity error, shows the database answered and is recorded as a success. Use it
        around write transactions too: ``async with db.guarded(), tenant_transaction(...)``.
        """
        if self._unavailable is not None:
            raise DatabaseUnavailable(
                self._unavailable.message, retry_after=self._unavailable.retry_after
            )
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            self._unavailable = DatabaseUnavailable(retry_after=breaker.retry_after)
            raise DatabaseUnavailable(retry_after=breaker.retry_after)
        try:
            yield
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            if not is_database_unavailable(exc):
                if breaker is not None:
                    breaker.record_success()
                raise
            retry_after = 1.0
            if breaker is not None:
                breaker.record_failure()
                retry_after = max(retry_after, breaker.retry_after)
            self._unavailable = DatabaseUnavailable(retry_after=retry_after)
            raise DatabaseUnavailable(retry_after=retry_after) from exc
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            breaker.record_success()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            stack = contextlib.AsyncExitStack()
            self._conn = await stack.enter_async_context(
                tenant_transaction(self.engine, self.tenant_id)
            )
            self._stack = stack
        return self._conn

    async def rows(
        self, stmt: Executable | Prepared, params: dict[str, Any] | None = None
    ) -> Sequence[Any]:
        """Run a SELECT and return all its rows (named tuples on the raw path)."""
        reader = self.reader
        async with self._lock:
            try:
                async with self.guarded():
                    if reader is not None and isinstance(stmt, Prepared):
                        query = stmt.query(reader.dialect_name)
                        args = query.args(params or {})
                        if self._closed:
                            once = reader.session(self.tenant_id)
                            try:
                                return query.decode(await once.fetch(query, args))
                            finally:
                                await once.close()
                        session = self._session
                        if session is None:
                            session = self._session = reader.session(self.tenant_id)
                        return query.decode(await session.fetch(query, args))
                    if isinstance(stmt, Prepared):
                        stmt = stmt.statement
                    conn = await self._connection()
                    result = await conn.execute(stmt, params or {})
                    return result.all()
            except DatabaseUnavailable:
                await self._discard()
                raise

    async def scalar(
        self, stmt: Executable | Prepared, params: dict[str, Any] | None = None
    ) -> Any:
        """Run a SELECT and return the first column of the first row."""
        rows = await self.rows(stmt, params)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        """End the read transaction (if one was opened) and return the connection."""
        self._closed = True
        async with self._lock:
            await self._discard(quiet=False)

    async def _discard(self, *, quiet: bool = True) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await session.close()
            except Exception as exc:
                if not (quiet or is_database_unavailable(exc)):
                    raise
        stack, conn = self._stack, self._conn
        self._stack, self._conn = None, None
        if stack is None:
            return
        invalidated = conn is not None and conn.invalidated
        try:
            await stack.aclose()
        except Exception as exc:
            # Ending the transaction fails on a connection the server dropped, or one that
            # SQLAlchemy invalidated when a deadline cancelled its statement (it then refuses
            # to commit: PendingRollbackError); there is nothing left to end, the pool
            # discards such connections, and the request already has its answer.
            gone = invalidated or isinstance(exc, sa_exc.PendingRollbackError)
            if not (quiet or gone or is_database_unavailable(exc)):
                raise
