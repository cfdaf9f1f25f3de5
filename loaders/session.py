"""The per-request database handle every loader and resolver reads through."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Protocol

from sqlalchemy import Executable
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from database.engine import tenant_transaction

# -- database faults (the breaker hook) ------------------------------------------------------

# SQLSTATE classes and codes that mean "the server is not there for us", not "the query is
# wrong": 08 connection exception, 53 insufficient resources (too many connections, out of
# memory, disk full), 57P01-57P04 admin/crash shutdown, cannot connect now, database dropped.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53")
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P04"})
# SQLite reports programming mistakes as OperationalError too; those are not outages.
_SQLITE_PROGRAMMING_ERRORS = (
    "no such table",
    "no such column",
    "no such function",
    "has no column named",
    "syntax error",
    'near "',
)
_DRIVER_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite", "sqlite3")
_CLOSED_MESSAGES = ("connection is closed", "connection was closed", "connection has been closed")
_MAX_CHAIN = 16
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ENOTCONN,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
        errno.ENOENT,  # a Unix socket path that is not there (the server is down)
    }
)


class DatabaseUnavailable(Exception):
    """The database cannot be reached, or its breaker is open: answer ``SERVICE_UNAVAILABLE``.

    Carries ``message`` and ``extensions`` like the resolvers' ``ApiError``, so graphql-core
    copies the code into the GraphQL error; ``retry_after`` (s) is for the Retry-After header.
    """

    code = "SERVICE_UNAVAILABLE"

    def __init__(
        self,
        message: str = "The database is unavailable; try again shortly.",
        *,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.extensions: dict[str, Any] = {
            "code": self.code,
            "retryAfter": max(1, math.ceil(retry_after)),
        }


class Breaker(Protocol):
    """What RequestDb needs of a circuit breaker (``guards.breaker.CircuitBreaker`` fits)."""

    def allow(self) -> bool: ...

    def record_success(self) -> None: ...

    def record_failure(self) -> None: ...

    def release(self) -> None: ...

    @property
    def retry_after(self) -> float: ...


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: SQLAlchemy's ``orig``, explicit causes, driver contexts."""
    seen: set[int] = set()
    pending = [exc]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            pending.append(orig)
        if current.__cause__ is not None:
            pending.append(current.__cause__)
        # Implicit contexts only inside driver code, where "raised while handling" means
        # "caused by"; elsewhere a context may be an unrelated, already handled error.
        module = type(current).__module__ or ""
        if (
            current.__context__ is not None
            and not current.__suppress_context__
            and module.startswith(_DRIVER_MODULES)
        ):
            pending.append(current.__context__)


def _one_is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give in time
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        # Refused, reset, unreachable, name resolution, a Unix socket path gone; errno None is
        # asyncio's "Multiple exceptions" from trying each address of a host.
        return isinstance(exc, socket.gaierror) or exc.errno is None or exc.errno in _NETWORK_ERRNOS
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or sqlstate in _UNAVAILABLE_SQLSTATES
    ):
        return True
    message = str(exc).lower()
    if type(exc).__name__ == "InterfaceError" and any(m in message for m in _CLOSED_MESSAGES):
        return True
    if isinstance(exc, sa_exc.OperationalError):
        return not any(m in message for m in _SQLITE_PROGRAMMING_ERRORS)
    return False


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable rather than the statement being wrong.

    True for connection-level failures of asyncpg, aiosqlite and SQLAlchemy: refused or reset
    connections, timeouts (connect, pool checkout), a connection SQLAlchemy invalidated, the
    server shutting down or not accepting connections yet, too many connections, SQLite's
    "database is locked"/"unable to open". False for integrity, data and programming errors,
    which a healthy database reports.
    """
    if isinstance(exc, (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.DataError)) and not (
        exc.connection_invalidated
    ):
        return False
    return any(_one_is_unavailable(cause) for cause in _causes(exc))


class RequestDb:
    """One lazily opened, tenant-scoped read transaction per request.

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
        self, stmt: Executable, params: dict[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Run a SELECT and return all its rows."""
        async with self._lock:
            try:
                async with self.guarded():
                    conn = await self._connection()
                    result = await conn.execute(stmt, params or {})
                    return result.all()
            except DatabaseUnavailable:
                await self._discard()
                raise

    async def scalar(self, stmt: Executable, params: dict[str, Any] | None = None) -> Any:
        """Run a SELECT and return the first column of the first row."""
        async with self._lock:
            try:
                async with self.guarded():
                    conn = await self._connection()
                    result = await conn.execute(stmt, params or {})
                    return result.scalar()
            except DatabaseUnavailable:
                await self._discard()
                raise

    async def close(self) -> None:
        """End the read transaction (if one was opened) and return the connection."""
        async with self._lock:
            await self._discard(quiet=False)

    async def _discard(self, *, quiet: bool = True) -> None:
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
