"""Does a read belong on the event loop? One indexed SELECT inline vs one thread hop.

``python -m bench.read_hop [--db PATH] [--n 2000]`` times, on a seeded SQLite file, the
statements of the read path (``database.reader``) run (1) inline on the event loop with
``sqlite3``, (2) each in one hop to a worker thread (``asyncio.to_thread``, what an async
driver does at best), and prints wall and CPU microseconds per statement. See
docs/decisions.md, "The read path on the raw drivers".
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loaders.loaders import ORDERS, USERS, by_id_statement
from loaders.pages import PageArgs, page_statement


def _statements(conn: sqlite3.Connection) -> dict[str, tuple[str, list[Any]]]:
    tenant, user = conn.execute("SELECT tenant_id, id FROM users LIMIT 1").fetchone()
    by_id = by_id_statement(USERS).query("sqlite")
    page = page_statement(ORDERS, ("tenant_id",), PageArgs(20).shape).query("sqlite")
    return {
        "user by id": (by_id.sql, [tenant, f'["{user}"]']),
        "orders page (21 rows)": (page.sql, [tenant, 21, -1]),
    }


async def _measure(db: Path, n: int) -> list[tuple[str, str, float, float]]:
    conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
    out = []
    for name, (sql, args) in _statements(conn).items():

        def run(sql: str = sql, args: list[Any] = args) -> list[Any]:
            return conn.execute(sql, args).fetchall()

        for mode in ("inline", "thread hop"):
            for _ in range(50):  # warm the statement cache and the thread pool
                run() if mode == "inline" else await asyncio.to_thread(run)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                if mode == "inline":
                    run()
                else:
                    await asyncio.to_thread(run)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            out.append((name, mode, wall / n * 1e6, cpu / n * 1e6))
    conn.close()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_hop")
    parser.add_argument("--db", type=Path, default=Path("var/bench/tollgate.db"))
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args(argv)
    for name, mode, wall, cpu in asyncio.run(_measure(args.db, args.n)):
        print(f"{name:24} {mode:10}  wall {wall:7.1f} us  cpu {cpu:7.1f} us")


if __name__ == "__main__":
    main()
