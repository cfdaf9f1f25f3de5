"""The response stores (memory and Redis, one contract), the key and single flight."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from guards.responsecache import (
    CachedResponse,
    MemoryResponseStore,
    RedisResponseStore,
    ResponseStore,
    SingleFlight,
    cache_key,
)
from tests.guards.test_ratelimit import drop_keys, redis_client_or_skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    if request.param == "memory":
        yield MemoryResponseStore(1 << 20)
        return
    client = await redis_client_or_skip()
    prefix = f"tg:rc:test:{uuid.uuid4().hex}:"
    try:
        yield RedisResponseStore(client, prefix=prefix)
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


def entry(body: bytes = b'{"a":1}', max_age: int = 60) -> CachedResponse:
    return CachedResponse(body, 1_000_000.5, max_age, "PUBLIC")


async def test_stores_and_returns_per_partition(store: ResponseStore) -> None:
    found, generation = await store.get("t1", "k")
    assert found is None
    assert await store.put("t1", "k", entry(), {"Product:1"}, generation)
    got, _ = await store.get("t1", "k")
    assert got == entry()
    other, _ = await store.get("t2", "k")
    assert other is None  # partitions never share


async def test_invalidating_a_tag_drops_exactly_its_responses(store: ResponseStore) -> None:
    _, gen = await store.get("t1", "a")
    await store.put("t1", "a", entry(b"a"), {"Product:1", "Product:list"}, gen)
    await store.put("t1", "b", entry(b"b"), {"Product:2"}, gen)
    await store.put("t2", "a", entry(b"c"), {"Product:1"}, gen)
    assert await store.invalidate("t1", {"Product:1"}) == 1
    assert (await store.get("t1", "a"))[0] is None
    assert (await store.get("t1", "b"))[0] == entry(b"b")
    assert (await store.get("t2", "a"))[0] == entry(b"c")  # another tenant's tag is untouched
    await store.invalidate("t1", {"*"})  # every response carries the partition-wide tag
    assert (await store.get("t1", "b"))[0] is None


async def test_a_store_after_an_invalidation_is_refused(store: ResponseStore) -> None:
    """A read that began before a write must not store what it read."""
    _, before = await store.get("t1", "k")
    await store.invalidate("t1", {"Order:9"})
    assert not await store.put("t1", "k", entry(), {"Product:1"}, before)
    assert (await store.get("t1", "k"))[0] is None
    _, after = await store.get("t1", "k")
    assert after != before and await store.put("t1", "k", entry(), {"Product:1"}, after)


async def test_redis_entries_expire_after_max_age() -> None:
    client = await redis_client_or_skip()
    prefix = f"tg:rc:test:{uuid.uuid4().hex}:"
    store = RedisResponseStore(client, prefix=prefix)
    try:
        _, gen = await store.get("t1", "k")
        await store.put("t1", "k", entry(max_age=7), {"Product:1"}, gen)
        base = f"{prefix}{{t1}}:"
        assert 0 < await client.ttl(base + "e:k") <= 7
        assert 0 < await client.ttl(base + "t:Product:1") <= 7
        assert 0 < await client.ttl(base + "k:k") <= 7
        await store.put("t1", "k2", entry(max_age=30), {"Product:1"}, gen)
        assert await client.ttl(base + "t:Product:1") > 7  # tag sets outlive their members
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


async def test_memory_store_is_bounded_in_bytes_and_evicts_lru() -> None:
    events: list[tuple[str, int]] = []
    store = MemoryResponseStore(8192, on_event=lambda name, n: events.append((name, n)))
    body = b"x" * 1000
    for i in range(20):
        _, gen = await store.get("t", str(i))
        if i == 10:
            await store.get("t", "0")  # recently used: survives
        await store.put("t", str(i), entry(body), {f"P:{i}"}, gen)
        assert store.bytes <= store.max_bytes
    assert (await store.get("t", "19"))[0] is not None
    assert (await store.get("t", "1"))[0] is None
    assert sum(n for name, n in events if name == "eviction") == 20 - len(store)
    await store.invalidate("t", {"*"})
    assert len(store) == 0 and store.bytes == 0
    too_big = entry(b"y" * 4000)
    assert not await store.put("t", "big", too_big, (), (await store.get("t", "big"))[1])


async def test_memory_entries_expire() -> None:
    clock = Clock()
    store = MemoryResponseStore(1 << 16, clock=clock)
    await store.put("t", "k", entry(max_age=10), (), 0)
    clock.now += 9.9
    assert (await store.get("t", "k"))[0] is not None
    clock.now += 0.2
    assert (await store.get("t", "k"))[0] is None and store.bytes == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5), st.randoms())
def test_the_key_is_canonical_in_the_variables(variables: dict[str, Any], rnd: Any) -> None:
    items = list(variables.items())
    rnd.shuffle(items)
    view = ["role:CUSTOMER", "scope:read:orders"]
    assert cache_key("d", "Q", dict(items), view) == cache_key("d", "Q", variables, view[::-1])


def test_the_key_separates_everything_that_shapes_a_view() -> None:
    base = cache_key("doc", "Q", {"first": 3}, ["role:CUSTOMER"])
    assert (
        len(
            {
                base,
                cache_key("doc2", "Q", {"first": 3}, ["role:CUSTOMER"]),
                cache_key("doc", "R", {"first": 3}, ["role:CUSTOMER"]),
                cache_key("doc", "Q", {"first": 4}, ["role:CUSTOMER"]),
                cache_key("doc", "Q", {"first": 3}, ["role:STAFF"]),
                cache_key("doc", "Q", {"first": 3}, ["role:CUSTOMER"], subject="u1"),
                cache_key("doc", "Q", {"first": 3}, ["role:CUSTOMER"], subject="u2"),
            }
        )
        == 7
    )


async def test_single_flight_runs_once_and_shares() -> None:
    flight = SingleFlight()
    runs = 0
    gate = asyncio.Event()

    async def caller() -> Any:
        nonlocal runs
        shared = await flight.wait("k")
        if shared is not None:
            return shared
        async with flight.lead("k") as publish:
            runs += 1
            await gate.wait()
            publish(b"result")
            return b"result"

    tasks = [asyncio.create_task(caller()) for _ in range(10)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*tasks) == [b"result"] * 10
    assert runs == 1 and len(flight) == 0


async def test_a_failed_leader_releases_its_followers() -> None:
    flight = SingleFlight()
    started = asyncio.Event()

    async def leader() -> None:
        async with flight.lead("k"):
            started.set()
            await asyncio.sleep(0.01)
            raise RuntimeError("boom")

    task = asyncio.create_task(leader())
    await started.wait()
    assert await flight.wait("k") is None  # nothing to share: the follower runs itself
    with pytest.raises(RuntimeError):
        await task
    assert len(flight) == 0


def test_entries_round_trip() -> None:
    original = CachedResponse(b'{"x":[1,2]}\nwith newline', 12.5, 30, "PRIVATE")
    assert CachedResponse.decode(original.encode()) == original
    assert original.age(now=20.9) == 8


async def test_redis_failure_raises_for_the_caller_to_decide() -> None:
    from tests.live.servers import free_port

    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.05)
    store = RedisResponseStore(dead, prefix="tg:rc:dead:")
    try:
        with pytest.raises(aioredis.ConnectionError):
            await store.get("t", "k")
    finally:
        await dead.aclose()


operations = st.lists(
    st.tuples(
        st.sampled_from(["get", "put", "invalidate", "stale_put"]),
        st.sampled_from(["t1", "t2"]),
        st.sampled_from(["a", "b", "c"]),
        st.sets(st.sampled_from(["P:1", "P:2", "P:list", "O:1", "*"]), max_size=2),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(operations)
async def test_memory_and_redis_stores_agree_on_any_sequence(
    steps: list[tuple[str, str, str, set[str]]],
) -> None:
    """Gets, stores (fresh or from before an invalidation) and invalidations: both stores
    answer alike, and like a plain model of tags."""
    client = await redis_client_or_skip()
    prefix = f"tg:rc:test:{uuid.uuid4().hex}:"
    stores: list[ResponseStore] = [MemoryResponseStore(1 << 20), RedisResponseStore(client, prefix)]
    model: dict[tuple[str, str], set[str]] = {}
    try:
        for step, (op, partition, key, tags) in enumerate(steps):
            answers = []
            for store in stores:
                if op == "get":
                    found, _ = await store.get(partition, key)
                    answers.append(None if found is None else found.body)
                elif op in ("put", "stale_put"):
                    _, generation = await store.get(partition, key)
                    if op == "stale_put":
                        generation -= 1  # looked up before the latest invalidation
                    body = f"{step}".encode()
                    answers.append(
                        await store.put(partition, key, entry(body), tags - {"*"}, generation)
                    )
                else:
                    answers.append(await store.invalidate(partition, tags))
            assert answers[0] == answers[1], (op, partition, key, tags, answers)
            if op == "get":
                assert (answers[0] is not None) == ((partition, key) in model)
            elif op == "put" or (op == "stale_put" and answers[0]):
                model[(partition, key)] = (tags - {"*"}) | {"*"}
            elif op == "invalidate":
                for slot, carried in list(model.items()):
                    if slot[0] == partition and carried & tags:
                        del model[slot]
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


async def test_a_response_stored_again_carries_only_its_own_tags(store: ResponseStore) -> None:
    _, gen = await store.get("t1", "a")
    await store.put("t1", "a", entry(b"1"), {"P:1", "P:2"}, gen)
    await store.put("t1", "a", entry(b"2"), {"P:3"}, gen)
    assert await store.invalidate("t1", {"P:1"}) == 0  # the replaced response's tag
    _, gen = await store.get("t1", "a")
    assert await store.invalidate("t1", {"P:3"}) == 1
    _, gen = await store.get("t1", "a")
    await store.put("t1", "a", entry(b"3"), {"O:1"}, gen)
    assert await store.invalidate("t1", {"P:2"}) == 0  # left over from the first one
    assert (await store.get("t1", "a"))[0] == entry(b"3")
