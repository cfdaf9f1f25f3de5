"""Database faults: which exceptions mean "the database is not there", and the breaker hook.

Used by the read path (``loaders.session.RequestDb``), the write path (``guarded()`` around a
write transaction) and the server (503 ``SERVICE_UNAVAILABLE``). Drivers covered: asyncpg,
aiosqlite, the standard library's ``sqlite3`` (the raw read path) and SQLAlchemy's wrappers.
"""

from __future__ import annotations

import errno
import math
import socket
import sqlite3
from collections.abc import Iterator
from typing import Any, Protocol

from sqlalchemy import exc as sa_exc

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
    if isinstance(exc, (sa_exc.OperationalError, sqlite3.OperationalError)):
        # SQLAlchemy's wrapper, or the raw driver's error on the read path.
        return not any(m in message for m in _SQLITE_PROGRAMMING_ERRORS)
    return False


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable rather than the statement being wrong.

    True for connection-level failures of asyncpg, aiosqlite, sqlite3 and SQLAlchemy: refused or reset
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


__all__ = ["Breaker", "DatabaseUnavailable", "is_database_unavailable"]
