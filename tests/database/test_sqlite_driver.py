"""The one-hop aiosqlite connection behind every SQLite engine: fewer hops, same semantics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from database.engine import make_engine, tenant_transaction
from database.sqlite_driver import OneHopConnection


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
        await conn.execute(text("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')"))
    yield engine
    await engine.dispose()


class Hops:
    """Counts the calls a connection sends to its thread."""

    def __init__(self, connection: OneHopConnection) -> None:
        self.count = 0
        inner = connection._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await inner(fn, *args, **kwargs)

        connection._execute = counted  # type: ignore[method-assign]


async def _driver(conn: Any) -> OneHopConnection:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, OneHopConnection)
    return driver


async def test_a_read_transaction_costs_one_hop_per_statement_plus_the_commit(
    engine: AsyncEngine,
) -> None:
    async with tenant_transaction(engine, None) as conn:
        hops = Hops(await _driver(conn))
        for _ in range(3):
            rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
        assert hops.count == 3  # BEGIN travelled with the first SELECT
    assert hops.count == 4  # COMMIT; the pool's reset of a finished connection is free


async def test_an_empty_transaction_sends_nothing(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        hops = Hops(await _driver(conn))
        async with conn.begin():
            pass
    assert hops.count == 0


async def test_rollback_discards_writes_and_errors_keep_the_connection_usable(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(RuntimeError):
        async with tenant_transaction(engine, None, write=True) as conn:
            result = await conn.execute(text("UPDATE t SET v = 'z' WHERE id <= 2"))
            assert result.rowcount == 2
            inserted = await conn.execute(text("INSERT INTO t (v) VALUES ('d')"))
            assert inserted.lastrowid == 4
            raise RuntimeError("abort")
    async with engine.connect() as conn:
        with pytest.raises(sa_exc.OperationalError):
            await conn.execute(text("SELECT nope FROM t"))
        await conn.rollback()
        rows = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
        assert rows == ["a", "b", "c"]
        result = await conn.execute(text("SELECT v FROM t ORDER BY id"))
        assert result.fetchone() == ("a",)
        assert result.fetchmany(1) == [("b",)]
        assert result.fetchall() == [("c",)]


async def test_immediate_transactions_still_take_the_write_lock_before_their_first_statement(
    engine: AsyncEngine,
) -> None:
    """Two writers that read then write: the second waits for the first, no lost update."""

    async def increment(name: str) -> None:
        async with tenant_transaction(engine, None, write=True) as conn:
            current = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await asyncio.sleep(0.05)  # the other writer tries to start meanwhile
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{name}{current}"})

    await asyncio.wait_for(asyncio.gather(increment("x"), increment("y")), 30)
    async with engine.connect() as conn:
        values = (await conn.execute(text("SELECT v FROM t WHERE id > 3"))).scalars().all()
    # Serialised: the second writer's first statement waited for the first's commit, so it
    # counted the first's row (3 then 4). Deferred transactions would both count 3, and the
    # second to write would fail with "database is locked" (no busy wait on lock upgrades).
    assert sorted(v[1:] for v in values) == ["3", "4"]


async def test_executemany_runs_in_one_hop(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        hops = Hops(await _driver(conn))
        await conn.execute(
            text("INSERT INTO t (v) VALUES (:v)"), [{"v": str(i)} for i in range(50)]
        )
        assert hops.count == 1
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 53
