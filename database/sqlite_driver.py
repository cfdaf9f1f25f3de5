"""aiosqlite with one thread hop per statement instead of four.

aiosqlite runs every call on its connection's thread: SQLAlchemy's adapter creates a cursor
(one hop), executes (two), fetches all rows (three) and closes the cursor (four), and each hop
costs a queue put, a wake-up of the event loop through its self-pipe and a greenlet switch,
about 90 microseconds of CPU here: more than SQLite needs to run a batched SELECT. The cursor
below does its whole statement in one hop (create, execute, fetch every row, close, on the
connection's thread) and serves ``fetchall`` and friends from the buffered rows, which is what
SQLAlchemy's adapter does with them anyway (it buffers every non-server-side result).

Two more hops go: ``BEGIN`` (SQLAlchemy's, see ``database.engine``) is held back and sent in
the hop of the transaction's first statement, which is when SQLite takes its locks anyway
(``BEGIN IMMEDIATE`` too: the write lock is still taken before the first statement runs, and
"database is locked" surfaces from that statement); and the pool's rollback of a connection
that is in no transaction (after a commit) needs no hop at all.

It is aiosqlite's own Connection, thread and error handling; only ``cursor()``, ``commit()``
and ``rollback()`` differ.
``database.engine.make_engine`` installs it through SQLAlchemy's ``async_creator`` with the
arguments the aiosqlite dialect itself would pass to ``sqlite3.connect``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.engine import URL


class BufferedCursor:
    """aiosqlite's cursor API; ``execute`` runs, fetches and closes in one hop."""

    __slots__ = ("_conn", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, conn: OneHopConnection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> BufferedCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, call: Callable[[sqlite3.Cursor], Any]) -> BufferedCursor:
        connection = self._conn._conn  # the sqlite3 connection, used on its own thread only
        begin = self._conn.take_pending_begin()

        def whole_statement() -> tuple[Any, list[Any], int, int | None]:
            cursor = connection.cursor()
            try:
                if begin is not None:
                    cursor.execute(begin)
                call(cursor)
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        (
            self.description,
            self._rows,
            self.rowcount,
            self.lastrowid,
        ) = await self._conn._execute(whole_statement)
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> BufferedCursor:
        if sql in _BEGINS and not parameters:
            self._conn.hold_begin(sql)
            self.description, self._rows, self.rowcount, self.lastrowid = None, [], -1, None
            return self
        if parameters is None:
            return await self._run(lambda cursor: cursor.execute(sql))
        return await self._run(lambda cursor: cursor.execute(sql, parameters))

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> BufferedCursor:
        return await self._run(lambda cursor: cursor.executemany(sql, parameters))

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN EXCLUSIVE"})


class OneHopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors buffer: see the module's docstring."""

    _pending_begin: str | None = None

    def cursor(self) -> BufferedCursor:  # type: ignore[override]
        return BufferedCursor(self)

    def hold_begin(self, sql: str) -> None:
        if self._pending_begin is not None:  # as SQLite would say
            raise sqlite3.OperationalError("cannot start a transaction within a transaction")
        self._pending_begin = sql

    def take_pending_begin(self) -> str | None:
        begin, self._pending_begin = self._pending_begin, None
        return begin

    def _in_transaction(self) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            return connection.in_transaction
        except sqlite3.ProgrammingError:  # check_same_thread (in-memory databases): ask there
            return True

    async def commit(self) -> None:
        if self.take_pending_begin() is not None and not self._in_transaction():
            return  # a transaction that never ran a statement: nothing to commit
        await super().commit()

    async def rollback(self) -> None:
        self.take_pending_begin()
        if not self._in_transaction():
            return  # nothing to roll back: no hop (the pool rolls back every returned connection)
        await super().rollback()


def async_creator(url: URL) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: a OneHopConnection for ``url``."""
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)

    async def connect() -> OneHopConnection:
        connection = OneHopConnection(partial(sqlite3.connect, *args, **kwargs), 64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's thread
        await connection
        return connection

    return connect
