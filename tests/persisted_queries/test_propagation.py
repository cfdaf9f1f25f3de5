"""Changes made through one registry reach every other one within a second, no restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from persisted_queries import (
    ManifestEntry,
    Mode,
    PQError,
    RedisCache,
    Registry,
    Resolved,
    Store,
    extract,
    sha256_hex,
)
from tests.persisted_queries.conftest import Pricer, operations

BODY = operations()["OrdersPage"]
DIGEST = sha256_hex(BODY)
DEADLINE = 1.0


async def resolve(registry: Registry) -> Resolved:
    pq = extract({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": DIGEST}}})
    return await registry.resolve(pq, client_name="web", may_run_adhoc=False)


async def seconds_until(check: Callable[[], Awaitable[bool]]) -> float:
    """Poll ``check`` (bounded to twice the deadline) and return how long it took to hold."""
    start = time.monotonic()
    while time.monotonic() - start < 2 * DEADLINE:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    pytest.fail(f"not seen within {2 * DEADLINE} s")


async def known(registry: Registry) -> bool:
    try:
        return (await resolve(registry)).registered
    except PQError as error:
        assert error.code == "PERSISTED_QUERY_NOT_IN_LIST"
        return False


async def propagation(writer: Registry, reader: Registry) -> None:
    assert not await known(reader)  # the reader now holds a cached miss
    await writer.register(None, [ManifestEntry(DIGEST, BODY)])
    assert await seconds_until(lambda: known(reader)) < DEADLINE
    assert await known(reader)  # the reader's cache now holds the document
    await writer.retire(None, [DIGEST])
    assert await seconds_until(lambda: _not(known(reader))) < DEADLINE


async def _not(value: Awaitable[bool]) -> bool:
    return not await value


async def test_registration_and_retirement_propagate_within_a_second(
    store_factory: Callable[[], Awaitable[Store]],
) -> None:
    writer, reader = [
        Registry(await store_factory(), mode=Mode.ALLOWLIST, analyse=Pricer()) for _ in range(2)
    ]
    await propagation(writer, reader)


async def test_propagation_through_a_shared_redis_cache(
    store_factory: Callable[[], Awaitable[Store]], redis_client: Any, redis_prefix: str
) -> None:
    # Versioned cache keys: a shared Redis never serves an entry from before the change.
    writer, reader = [
        Registry(
            await store_factory(),
            mode=Mode.ALLOWLIST,
            analyse=Pricer(),
            cache=RedisCache(redis_client, prefix=redis_prefix),
        )
        for _ in range(2)
    ]
    await propagation(writer, reader)
