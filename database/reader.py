"""The read path on the raw drivers: SQL built with SQLAlchemy, compiled once, run by sqlite3/asyncpg.

A :class:`Prepared` wraps a SELECT built once (with named ``bindparam``\\ s only, so its text
never depends on a request). The first time it runs on a dialect it is compiled to SQL text
with positional parameters (``?`` for SQLite, ``$n`` for PostgreSQL), the order of its
parameters, each parameter's bind processor, and the converters of the columns that need one
(SQLite stores UUIDs, timestamps and decimals as text or floats; asyncpg decodes natively, so
PostgreSQL rows are used as they come). Every later run is a dict look-up, the driver call and
a tuple per row.

Readers, one per engine (``database.engine.make_engine`` attaches it):

- :class:`SqliteReader`: stdlib ``sqlite3`` connections used on the event loop itself. One
  indexed SELECT takes 10 to 60 microseconds here, less than one hop to a thread and back
  (see docs/decisions.md, "The read path on the raw drivers").
- :class:`PostgresReader`: an asyncpg pool; statements are prepared once per connection
  (asyncpg's statement cache) and the tenant's ``set_config('app.tenant_id', ..., true)`` is
  sent with ``BEGIN`` in one round trip, so row-level security holds for every read.

A :class:`ReadSession` is one request's read transaction: opened at its first statement,
ended by :meth:`ReadSession.close`. Writes keep the SQLAlchemy engine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, TypeDecorator, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, TypeEngine

TENANT_SETTING = "app.tenant_id"
SQLITE_READ_BUSY_TIMEOUT_MS = 2_000

StatementListener = Callable[[str], None]

# -- a list of keys bound as one parameter -------------------------------------------------------


class KeyList(TypeDecorator[Any]):
    """A list of keys as ONE parameter: a PostgreSQL array, a JSON array text on SQLite.

    One parameter keeps a statement's text the same whatever the number of keys, so it is
    compiled and prepared once (an expanding ``IN`` has a text per list length).
    """

    impl = String
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.item_type))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return list(value)
        return orjson.dumps([k.hex if isinstance(k, uuid.UUID) else k for k in value]).decode()


class KeysIn(ColumnElement[bool]):
    """``column IN (the keys bound as :name)``: ``= ANY($n)`` on PostgreSQL, ``json_each`` on
    SQLite (both use the column's index)."""

    __visit_name__ = "keys_in"
    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("keys", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate: no "= 1" on SQLite

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.keys = bindparam(name, type_=KeyList(column.type))


def keys_in(column: ColumnElement[Any], name: str = "keys") -> KeysIn:
    return KeysIn(column, name)


@compiles(KeysIn)
def _keys_in_json(element: KeysIn, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    keys = compiler.process(element.keys, **kw)
    return f"{column} IN (SELECT value FROM json_each({keys}))"  # noqa: S608 (compiled SQL)


@compiles(KeysIn, "postgresql")
def _keys_in_any(element: KeysIn, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.keys, **kw)})"


# -- statements compiled once --------------------------------------------------------------------

_DIALECTS: dict[str, Dialect] = {}


def dialect(name: str) -> Dialect:
    """The SQLAlchemy dialect a reader's SQL is compiled for (``sqlite`` or ``postgresql``)."""
    found = _DIALECTS.get(name)
    if found is None:
        found = SQLiteDialect_pysqlite() if name == "sqlite" else PGDialect_asyncpg()
        _DIALECTS[name] = found
    return found


_MISSING = object()


@dataclass(frozen=True, slots=True)
class Query:
    """One SELECT compiled for one dialect."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    binders: tuple[Callable[[Any], Any] | None, ...]
    row: type
    decode: Callable[[Sequence[Any]], list[Any]]
    """Rows as named tuples (``row.id``, ``row[0]``), converted where the driver does not."""

    def args(self, params: dict[str, Any]) -> list[Any]:
        """The positional parameters for ``params`` (named as the statement's bindparams)."""
        out: list[Any] = []
        for name, default, bind in zip(self.names, self.defaults, self.binders, strict=True):
            value = params.get(name, default)
            if value is _MISSING:
                raise KeyError(f"missing parameter {name!r} for: {self.sql}")
            out.append(value if bind is None or value is None else bind(value))
        return out


def _decoder(
    row: type, width: int, converters: dict[int, Callable[[Any], Any]]
) -> Callable[[Sequence[Any]], list[Any]]:
    """A function made for one column list: a tuple per row, a converter call per column that
    needs one (the converters take None), nothing else per cell."""
    if not converters:
        new = tuple.__new__
        return lambda raw: [new(row, r) for r in raw]
    cells = ", ".join(f"c{i}(r[{i}])" if i in converters else f"r[{i}]" for i in range(width))
    source = f"lambda raw: [new(row, ({cells},)) for r in raw]"
    namespace: dict[str, Any] = {"new": tuple.__new__, "row": row}
    namespace.update({f"c{i}": convert for i, convert in converters.items()})
    return eval(source, namespace)  # type: ignore[no-any-return]  # noqa: S307 (indexes only)


def compile_query(statement: Select[Any], dialect_name: str) -> Query:
    d = dialect(dialect_name)
    compiled: Any = statement.compile(dialect=d)
    names = tuple(compiled.positiontup or ())
    processors = compiled._bind_processors
    defaults: list[Any] = []
    for name in names:
        bind = compiled.binds[name]
        if bind.callable is not None or bind.value is not None:
            defaults.append(bind.effective_value)
        else:
            defaults.append(_MISSING)
    columns = compiled._result_columns
    keys = [c.keyname for c in columns]
    row = collections.namedtuple("Row", keys, rename=True)  # type: ignore[misc]
    converters: dict[int, Callable[[Any], Any]] = {}
    if dialect_name == "sqlite":  # asyncpg returns native uuid, datetime, Decimal
        for index, column in enumerate(columns):
            processor = column.type._cached_result_processor(d, None)
            if processor is not None:
                converters[index] = processor
    return Query(
        sql=compiled.string,
        names=names,
        defaults=tuple(defaults),
        binders=tuple(processors.get(name) for name in names),
        row=row,
        decode=_decoder(row, len(keys), converters),
    )


class Prepared:
    """A SELECT built once, compiled at its first run on each dialect."""

    __slots__ = ("_queries", "statement")

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._queries: dict[str, Query] = {}

    def query(self, dialect_name: str) -> Query:
        found = self._queries.get(dialect_name)
        if found is None:
            found = self._queries[dialect_name] = compile_query(self.statement, dialect_name)
        return found


# -- readers -------------------------------------------------------------------------------------


class ReadSession:
    """One request's read transaction on one raw connection (opened at its first statement)."""

    async def fetch(self, query: Query, args: list[Any]) -> Sequence[Any]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class Reader:
    dialect_name: str

    def __init__(self) -> None:
        self.listeners: list[StatementListener] = []

    def listen(self, listener: StatementListener) -> None:
        """Call ``listener(sql)`` before every statement (statement counts, tests)."""
        self.listeners.append(listener)

    def unlisten(self, listener: StatementListener) -> None:
        self.listeners.remove(listener)

    def session(self, tenant_id: uuid.UUID | None) -> ReadSession:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteReader(Reader):
    """sqlite3 connections used on the event loop (a read is shorter than a thread hop)."""

    dialect_name = "sqlite"

    def __init__(self, database: str, *, uri: bool = False, max_idle: int = 16) -> None:
        super().__init__()
        self.database = database
        self.uri = uri
        self.max_idle = max_idle
        self._idle: list[sqlite3.Connection] = []

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.database,
            uri=self.uri,
            isolation_level=None,  # we send BEGIN ourselves
            check_same_thread=False,  # used on the loop's thread, handed between requests
            cached_statements=512,
        )
        # A reader in WAL mode never waits for a writer; a short timeout bounds the rare wait
        # (recovery, a checkpoint in TRUNCATE mode) that would otherwise hold the event loop.
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_READ_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
        return conn

    def acquire(self) -> sqlite3.Connection:
        return self._idle.pop() if self._idle else self.connect()

    def release(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            conn.close()
            return
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def session(self, tenant_id: uuid.UUID | None) -> ReadSession:
        return _SqliteSession(self)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _SqliteSession(ReadSession):
    __slots__ = ("_conn", "_reader")

    def __init__(self, reader: SqliteReader) -> None:
        self._reader = reader
        self._conn: sqlite3.Connection | None = None

    async def fetch(self, query: Query, args: list[Any]) -> Sequence[Any]:
        conn = self._conn
        if conn is None:
            conn = self._reader.acquire()
            try:
                conn.execute("BEGIN")  # one snapshot for the request's reads
            except BaseException:
                self._reader.release(conn)
                raise
            self._conn = conn
        for listener in self._reader.listeners:
            listener(query.sql)
        return conn.execute(query.sql, args).fetchall()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._reader.release(conn)  # ROLLBACK: a read-only transaction has nothing to commit


async def _reset(conn: Any) -> None:
    """Pool reset: end a transaction a cancelled request left open; nothing else to undo (the
    tenant is set with ``is_local`` and dies with its transaction)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresReader(Reader):
    """An asyncpg pool (made at the first read, on the running loop)."""

    dialect_name = "postgresql"

    def __init__(
        self, dsn: str, *, max_size: int = 10, timeout: float = 5.0, connect_timeout: float = 3.0
    ) -> None:
        super().__init__()
        self.dsn = dsn
        self.max_size = max_size
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._creating: asyncio.Future[Any] | None = None

    async def pool(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        import asyncpg

        if self._pool is not None:  # made on another loop (tests): that one is gone
            self._pool.terminate()
            self._pool = None
        self._loop = loop
        self._pool = asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self.max_size,
            reset=_reset,
            statement_cache_size=512,
            timeout=self.connect_timeout,
        )
        try:
            await self._pool
        except BaseException:
            pool, self._pool = self._pool, None
            pool.terminate()
            raise
        return self._pool

    def session(self, tenant_id: uuid.UUID | None) -> ReadSession:
        return _PostgresSession(self, tenant_id)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):  # then terminated below
                await asyncio.wait_for(pool.close(), timeout=5)
                return
        pool.terminate()


class _PostgresSession(ReadSession):
    __slots__ = ("_begin", "_conn", "_pool", "_reader")

    def __init__(self, reader: PostgresReader, tenant_id: uuid.UUID | None) -> None:
        self._reader = reader
        tid = "" if tenant_id is None else str(uuid.UUID(str(tenant_id)))  # a UUID: safe text
        # BEGIN and the tenant for row-level security in one round trip (simple protocol).
        self._begin = f"BEGIN READ ONLY; SELECT set_config('{TENANT_SETTING}', '{tid}', true)"
        self._conn: Any = None
        self._pool: Any = None

    async def fetch(self, query: Query, args: list[Any]) -> Sequence[Any]:
        conn = self._conn
        if conn is None:
            pool = await self._reader.pool()
            conn = await pool.acquire(timeout=self._reader.timeout)
            try:
                await conn.execute(self._begin)
            except BaseException:
                await _release(pool, conn, broken=True)
                raise
            self._conn, self._pool = conn, pool
        for listener in self._reader.listeners:
            listener(query.sql)
        return await conn.fetch(query.sql, *args)  # type: ignore[no-any-return]

    async def close(self) -> None:
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if conn is None:
            return
        broken = False
        try:
            if conn.is_in_transaction():
                await conn.execute("COMMIT")
        except Exception:
            # A read-only transaction has nothing to lose: a connection that cannot end it
            # (a statement cancelled by a deadline, the server gone) is dropped, not raised.
            broken = True
        except BaseException:
            broken = True
            raise
        finally:
            await _release(pool, conn, broken=broken)


async def _release(pool: Any, conn: Any, *, broken: bool) -> None:
    if broken or conn.is_closed():
        conn.terminate()
    try:
        await pool.release(conn, timeout=2)
    except Exception:
        conn.terminate()


def make_reader(url: URL, *, pool_size: int = 10) -> Reader | None:
    """The raw-driver reader for ``url``; None for in-memory SQLite (one shared connection,
    which only the engine's pool holds)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or "mode=memory" in database:
            return None
        uri = bool(url.query.get("uri")) or database.startswith("file:")
        return SqliteReader(database, uri=uri, max_idle=max(4, pool_size * 2))
    if backend == "postgresql":
        plain = url.set(drivername="postgresql")
        dsn = plain.render_as_string(hide_password=False)
        return PostgresReader(dsn, max_size=max(2, pool_size))
    return None


__all__ = [
    "KeyList",
    "KeysIn",
    "PostgresReader",
    "Prepared",
    "Query",
    "ReadSession",
    "Reader",
    "SqliteReader",
    "keys_in",
    "make_reader",
]
