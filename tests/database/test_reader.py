"""The raw-driver read path: SQL compiled once, tenant set with BEGIN, cancellations survived."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, literal_column, select, table
from sqlalchemy.engine import make_url

from database import models
from database.faults import is_database_unavailable
from database.reader import PostgresReader, Prepared, SqliteReader, keys_in, make_reader

USERS = models.User.__table__


def test_a_key_list_is_one_parameter_on_both_dialects() -> None:
    stmt = Prepared(
        select(USERS.c.id, USERS.c.name).where(
            USERS.c.tenant_id == bindparam("scope_tenant_id"), keys_in(USERS.c.id)
        )
    )
    sqlite, postgres = stmt.query("sqlite"), stmt.query("postgresql")
    assert "IN (SELECT value FROM json_each(?))" in sqlite.sql and "= 1" not in sqlite.sql
    assert "= ANY($2" in postgres.sql
    assert sqlite.names == postgres.names == ("scope_tenant_id", "keys")
    key = uuid.uuid4()
    tenant = uuid.uuid4()
    assert sqlite.args({"scope_tenant_id": tenant, "keys": [key]}) == [tenant.hex, f'["{key.hex}"]']
    assert postgres.args({"scope_tenant_id": tenant, "keys": [key]}) == [tenant, [key]]
    with pytest.raises(KeyError):
        sqlite.args({"keys": []})
    assert stmt.query("sqlite") is sqlite  # compiled once


def test_in_memory_sqlite_has_no_reader() -> None:
    assert make_reader(make_url("sqlite+aiosqlite://")) is None
    assert make_reader(make_url("sqlite+aiosqlite:///:memory:")) is None
    assert isinstance(make_reader(make_url("sqlite:///x.db")), SqliteReader)
    assert isinstance(make_reader(make_url("postgresql://u@h/db")), PostgresReader)


async def test_sqlite_session_reads_in_one_transaction_and_returns_the_connection(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "r.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    reader = SqliteReader(str(path))
    seen: list[str] = []
    reader.listen(seen.append)
    stmt = Prepared(select(literal_column("name")).select_from(table("t")))
    query = stmt.query("sqlite")
    session = reader.session(None)
    rows = query.decode(await session.fetch(query, []))
    assert sorted(r[0] for r in rows) == ["a", "b"] and seen == [query.sql]
    await session.close()
    assert len(reader._idle) == 1 and not reader._idle[0].in_transaction
    await reader.close()


async def test_an_unopenable_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    reader = SqliteReader(str(tmp_path / "missing-dir" / "x.db"))
    query = Prepared(select(func.count())).query("sqlite")
    with pytest.raises(Exception) as raised:
        await reader.session(None).fetch(query, [])
    assert is_database_unavailable(raised.value)


async def test_postgres_sets_the_tenant_with_begin_and_survives_a_cancelled_read(
    pg_url: str,
) -> None:
    reader = make_reader(make_url(pg_url), pool_size=2)
    assert isinstance(reader, PostgresReader)
    setting = Prepared(select(func.current_setting("app.tenant_id", True))).query("postgresql")
    sleep = Prepared(select(func.pg_sleep(bindparam("s")))).query("postgresql")
    tenant = uuid.uuid4()
    try:
        session = reader.session(tenant)
        rows = await session.fetch(setting, setting.args({}))
        assert rows[0][0] == str(tenant)
        await session.close()
        # A deadline cancels a read mid-statement; ending the request must not raise, and
        # the pool must serve the next request (with the next tenant).
        session = reader.session(tenant)
        task = asyncio.ensure_future(session.fetch(sleep, sleep.args({"s": 5.0})))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(session.close(), timeout=10)
        other = uuid.uuid4()
        for _ in range(3):  # every pooled connection, including the one that was cancelled
            session = reader.session(other)
            assert (await session.fetch(setting, setting.args({})))[0][0] == str(other)
            await session.close()
        session = reader.session(None)  # no tenant: row-level security admits none
        assert (await session.fetch(setting, setting.args({})))[0][0] == ""
        await session.close()
    finally:
        await reader.close()
