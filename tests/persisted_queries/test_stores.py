"""Store contract on memory, SQLite and PostgreSQL; the memory and Redis caches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis

from persisted_queries import (
    ManifestEntry,
    MemoryCache,
    MemoryStore,
    Mode,
    PQError,
    RedisCache,
    Registry,
    Store,
    StoredDocument,
    extract,
    sha256_hex,
)
from tests.persisted_queries.conftest import REDIS_URL, Pricer

BODY_A = "query A { a }"
BODY_B = "query B { b }"


def stored(client: str, document_id: str, body: str, cost: int = 1) -> StoredDocument:
    return StoredDocument(client, document_id, sha256_hex(body), body, None, cost)


async def test_store_lookup_by_id_then_hash_with_client_priority(store: Store) -> None:
    await store.save(
        [
            stored("default", "a-custom", BODY_A),
            stored("default", sha256_hex(BODY_B), BODY_B),
            stored("web", "a-web", BODY_A),
        ]
    )
    by_id = await store.lookup(["default"], "a-custom")
    assert by_id is not None and by_id.body == BODY_A
    by_hash = await store.lookup(["web", "default"], sha256_hex(BODY_A))
    assert by_hash is not None and (by_hash.client_name, by_hash.document_id) == ("web", "a-web")
    fallback = await store.lookup(["web", "default"], sha256_hex(BODY_B))
    assert fallback is not None and fallback.client_name == "default"
    assert await store.lookup(["ios"], sha256_hex(BODY_B)) is None
    assert await store.lookup(["default"], "a-web") is None


async def test_store_version_grows_with_every_change(store: Store) -> None:
    start = await store.version()
    await store.save([stored("default", "a", BODY_A)])
    after_save = await store.version()
    assert after_save > start
    assert await store.retire("default", ["a", "missing"]) == ["a"]
    after_retire = await store.version()
    assert after_retire > after_save
    assert await store.retire("default", ["a"]) == []  # nothing changed, no bump
    assert await store.version() == after_retire
    assert await store.lookup(["default"], "a") is None


async def test_store_save_reactivates_and_reprices(store: Store) -> None:
    await store.save([stored("default", "a", BODY_A, cost=3)])
    [first] = await store.documents("default")
    await store.retire("default", ["a"])
    await store.save([stored("default", "a", BODY_A, cost=9)])
    [row] = await store.documents("default", include_retired=True)
    assert (row.cost, row.retired_at, row.body) == (9, None, BODY_A)
    assert row.created_at == first.created_at
    assert [d.document_id for d in await store.documents("default", ids=["a", "zzz"])] == ["a"]


async def test_memory_cache_is_bounded_and_expires() -> None:
    cache = MemoryCache(maxsize=3)
    for key in "abcd":
        await cache.set(key, key.encode(), ttl=60)
    assert len(cache) == 3
    assert await cache.get("a") is None
    assert await cache.get("d") == b"d"
    await cache.set("short", b"x", ttl=0.05)
    await asyncio.sleep(0.1)
    assert await cache.get("short") is None


async def test_redis_cache_round_trip_and_expiry(redis_client: Any, redis_prefix: str) -> None:
    cache = RedisCache(redis_client, prefix=redis_prefix)
    await cache.set("k", b"value", ttl=60)
    assert await cache.get("k") == b"value"
    assert await redis_client.exists(redis_prefix + "k") == 1
    assert 0 < await redis_client.pttl(redis_prefix + "k") <= 60_000
    await cache.set("short", b"x", ttl=0.1)
    await asyncio.sleep(0.3)
    assert await cache.get("short") is None
    decoding = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        assert await RedisCache(decoding, prefix=redis_prefix).get("k") == b"value"
    finally:
        await decoding.aclose()


async def test_unreachable_redis_degrades_to_misses() -> None:
    # Nothing listens on port 1: every command fails, and the cache must not raise.
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        cache = RedisCache(dead)
        await cache.set("k", b"v", ttl=1)
        assert await cache.get("k") is None
        registry = Registry(MemoryStore(), mode=Mode.ALLOWLIST, analyse=Pricer(), cache=cache)
        await registry.register(None, [ManifestEntry("a", BODY_A)])
        resolved = await registry.resolve(
            extract({"documentId": "a"}), client_name=None, may_run_adhoc=False
        )
        assert resolved.text == BODY_A
    finally:
        await dead.aclose()


async def test_apq_documents_are_shared_by_workers_through_redis(
    redis_client: Any, redis_prefix: str
) -> None:
    store = MemoryStore()
    workers = [
        Registry(
            store,
            mode=Mode.OPEN,
            analyse=Pricer(),
            cache=RedisCache(redis_client, prefix=redis_prefix),
        )
        for _ in range(2)
    ]
    digest = sha256_hex(BODY_A)
    register = extract(
        {"query": BODY_A, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    )
    await workers[0].resolve(register, client_name=None, may_run_adhoc=False)
    hit = await workers[1].resolve(
        extract({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}),
        client_name=None,
        may_run_adhoc=False,
    )
    assert (hit.text, hit.source) == (BODY_A, "apq")
    assert 0 < await redis_client.pttl(f"{redis_prefix}apq:{digest}") <= 86_400_000


async def test_poisoned_apq_cache_entry_is_ignored(redis_client: Any, redis_prefix: str) -> None:
    digest = sha256_hex(BODY_A)
    await redis_client.set(f"{redis_prefix}apq:{digest}", BODY_B, px=60_000)
    registry = Registry(
        MemoryStore(),
        mode=Mode.OPEN,
        analyse=Pricer(),
        cache=RedisCache(redis_client, prefix=redis_prefix),
    )
    pq = extract({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}})
    with pytest.raises(PQError) as caught:
        await registry.resolve(pq, client_name=None, may_run_adhoc=False)
    assert caught.value.code == "PERSISTED_QUERY_NOT_FOUND"  # the wrong text is never served


async def test_store_handles_id_sets_beyond_parameter_limits(store: Store) -> None:
    bodies = [f"query Q{i} {{ q{i} }}" for i in range(1_200)]
    await store.save([stored("big", sha256_hex(body), body) for body in bodies])
    ids = [sha256_hex(body) for body in bodies]
    assert len(await store.documents("big", ids=ids)) == 1_200
    assert len(await store.retire("big", ids[:1_100])) == 1_100
    assert len(await store.documents("big")) == 100
