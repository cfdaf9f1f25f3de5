"""Helpers shared by the database tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from database.models import Base
from tests.services import unavailable

SEEDED_TABLES = ("tenants", "users", "products", "orders", "order_items", "reviews")


def service_unavailable(service: str, error: BaseException) -> NoReturn:
    """Skip loudly when a service is unreachable; under CI=true, fail instead."""
    unavailable(f"{service} is unreachable: {type(error).__name__}: {error}")


def sqlite_url(path: Path) -> str:
    """Return the plain (sync-scheme) SQLite URL of a file, as a user would write it."""
    return f"sqlite:///{path}"


def _canonical(value: Any) -> str:
    # SQLite hands back naive datetimes and floats-turned-Decimals; normalise both so that
    # the same rows hash the same on either backend.
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    return repr(value)


async def table_checksums(conn: AsyncConnection) -> dict[str, tuple[int, str]]:
    """Return ``{table: (row count, sha256 of every row ordered by id)}`` for seeded tables."""
    checksums = {}
    for name in SEEDED_TABLES:
        table = Base.metadata.tables[name]
        digest = hashlib.sha256()
        count = 0
        result = await conn.execute(select(table).order_by(table.c.id))
        for row in result:
            digest.update("|".join(_canonical(value) for value in row).encode())
            digest.update(b"\n")
            count += 1
        checksums[name] = (count, digest.hexdigest())
    return checksums
