"""Contract tests for the cost-based rate limiter: one suite, run on memory and on real Redis."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from guards.ratelimit import (
    BucketPolicy,
    Decision,
    MemoryRateLimiter,
    MultiDecision,
    RateLimiter,
    RedisRateLimiter,
    rate_limit_headers,
)
from tests.live.servers import free_port
from tests.services import unavailable

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
# Generous per-call bound for the contract suite: it runs on shared, loaded CI machines; the
# fault tests check the tight default separately.
CONTRACT_TIMEOUT = 5.0
TOL = 0.005  # seconds of slack for rounding and clock granularity


async def redis_client_or_skip() -> aioredis.Redis:
    """A client for the shared Redis at 127.0.0.1:6379, or skip/fail when it is unreachable."""
    # A blocking pool, as in production: the default pool fails past 100 busy connections.
    pool = aioredis.BlockingConnectionPool(
        host=REDIS_HOST, port=REDIS_PORT, max_connections=32, timeout=CONTRACT_TIMEOUT
    )
    client = aioredis.Redis.from_pool(pool)
    try:
        async with asyncio.timeout(2.0):
            await client.ping()
    except Exception as exc:
        await client.aclose()
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT} unreachable ({exc!r})")
    return client


async def drop_keys(client: aioredis.Redis, prefix: str) -> None:
    """Delete every key a test wrote under its own ``prefix``."""
    keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
    if keys:
        await client.delete(*keys)


@dataclass
class Backend:
    """A limiter under test plus backend-specific probes of its storage."""

    name: str
    limiter: RateLimiter
    # Another process's limiter on the same store (the same object for the in-process twin).
    other: RateLimiter
    client: aioredis.Redis | None = None
    prefix: str = ""
    closers: list[object] = field(default_factory=list)

    async def holds(self, key: str, policy: BucketPolicy) -> bool:
        """True while the backend keeps state for the bucket."""
        if isinstance(self.limiter, MemoryRateLimiter):
            return self.limiter.holds(key, policy)
        assert self.client is not None
        return bool(await self.client.exists(f"{self.prefix}{policy.name}:{key}"))

    async def ttl_ms(self, key: str, policy: BucketPolicy) -> int:
        """Redis PTTL of the bucket's key."""
        assert self.client is not None
        return int(await self.client.pttl(f"{self.prefix}{policy.name}:{key}"))


@pytest.fixture
async def redis_space() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A client for the shared Redis and a key prefix of the test's own, dropped afterwards."""
    client = await redis_client_or_skip()
    prefix = f"tg:rl:test:{uuid.uuid4().hex}:"
    try:
        yield client, prefix
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        limiter = MemoryRateLimiter()
        yield Backend("memory", limiter, limiter)
        await limiter.close()
        return
    client = await redis_client_or_skip()
    prefix = f"tg:rl:test:{uuid.uuid4().hex}:"
    redis_limiter = RedisRateLimiter(client, prefix=prefix, timeout=CONTRACT_TIMEOUT)
    other = RedisRateLimiter(client, prefix=prefix, timeout=CONTRACT_TIMEOUT)
    try:
        yield Backend("redis", redis_limiter, other, client=client, prefix=prefix)
    finally:
        await drop_keys(client, prefix)
        await redis_limiter.close()
        await other.close()
        await client.aclose()


def slow(name: str = "user", capacity: int = 10) -> BucketPolicy:
    """A bucket that restores so slowly that a test never sees a point come back."""
    return BucketPolicy(name, capacity=capacity, restore_rate=0.001)


# --- contract: both backends -------------------------------------------------------------------


async def test_fills_then_refuses_without_charging(backend: Backend) -> None:
    limiter, policy = backend.limiter, slow(capacity=10)
    first = await limiter.debit("k", 4, policy)
    assert (first.allowed, first.remaining, first.limit, first.cost) == (True, 6, 10, 4)
    assert first.retry_after == 0.0
    second = await limiter.debit("k", 6, policy)
    assert (second.allowed, second.remaining) == (True, 0)

    refused = await limiter.debit("k", 1, policy)
    assert not refused.allowed and not refused.exceeds_capacity
    assert refused.remaining == 0
    assert refused.retry_after > 0 and refused.policy == policy

    # A refused debit takes nothing: after a refund of 3, exactly 3 fit again.
    await limiter.refund("k", 3, policy)
    assert (await limiter.debit("k", 3, policy)).allowed
    assert not (await limiter.debit("k", 1, policy)).allowed


async def test_retry_after_and_reset_after_are_exact(backend: Backend) -> None:
    # Shopify-like numbers: 100 points, 10 points/s; 3 x 30 leaves 10.
    policy = BucketPolicy("user", capacity=100, restore_rate=10)
    started = time.monotonic()
    for expected in (70, 40, 10):
        assert (await backend.limiter.debit("k", 30, policy)).remaining == expected
    refused = await backend.limiter.debit("k", 30, policy)
    elapsed = time.monotonic() - started
    assert not refused.allowed
    assert refused.remaining == 10
    # 20 points missing at 10 points/s: 2 s, less what was restored while the test ran.
    assert 2.0 - elapsed - TOL <= refused.retry_after <= 2.0
    assert 9.0 - elapsed - TOL <= refused.reset_after <= 9.0


async def test_points_restore_over_time(backend: Backend) -> None:
    policy = BucketPolicy("fast", capacity=10, restore_rate=50)  # one point per 20 ms
    started = time.monotonic()
    assert (await backend.limiter.debit("k", 10, policy)).allowed
    refused = await backend.limiter.debit("k", 5, policy)
    elapsed = time.monotonic() - started
    if elapsed >= 0.09:
        pytest.skip(f"machine too loaded: two debits took {elapsed:.3f} s")
    assert not refused.allowed
    assert 0.1 - elapsed - TOL <= refused.retry_after <= 0.1
    await asyncio.sleep(refused.retry_after + 0.01)
    assert (await backend.limiter.debit("k", 5, policy)).allowed

    full = await backend.limiter.peek("k", policy)
    assert full.reset_after > 0
    await asyncio.sleep(full.reset_after + 0.01)
    after = await backend.limiter.peek("k", policy)
    assert (after.remaining, after.reset_after) == (10, 0.0)


async def test_peek_changes_nothing(backend: Backend) -> None:
    policy = slow(capacity=10)
    fresh = await backend.limiter.peek("k", policy)
    assert (fresh.allowed, fresh.remaining, fresh.cost, fresh.reset_after) == (True, 10, 0, 0.0)
    await backend.limiter.debit("k", 7, policy)
    for _ in range(3):
        assert (await backend.limiter.peek("k", policy)).remaining == 3


async def test_refund_gives_back_exactly_and_never_past_capacity(backend: Backend) -> None:
    limiter, policy = backend.limiter, slow(capacity=10)
    await limiter.debit("k", 8, policy)
    refunded = await limiter.refund("k", 5, policy)
    assert refunded.remaining == 7
    assert (await limiter.peek("k", policy)).remaining == 7

    capped = await limiter.refund("k", 1000, policy)
    assert (capped.remaining, capped.reset_after) == (10, 0.0)
    assert (await limiter.debit("k", 10, policy)).allowed
    assert not (await limiter.debit("k", 1, policy)).allowed

    # Refunding an untouched bucket creates nothing and stays at capacity.
    untouched = await limiter.refund("other", 5, policy)
    assert untouched.remaining == 10
    assert not await backend.holds("other", policy)


async def test_a_credit_is_counted_by_every_debit_after_it_returns(backend: Backend) -> None:
    """Issue #12 finding 1: once ``credit_all`` returns (and the request is answered), a debit
    by any process sharing the store counts the refund, so it is never refused for points
    already given back and its Retry-After is the true wait."""
    policy = BucketPolicy("user", capacity=3000, restore_rate=5)
    items = [("t1:u1", policy)]
    started = time.monotonic()
    for turn in range(7):  # requests priced 2042 that each cost 152, on either worker
        limiter = backend.limiter if turn % 2 == 0 else backend.other
        charged = await limiter.debit_all(items, 2042)
        assert charged.allowed, (turn, charged.binding)
        await limiter.credit_all(items, 2042 - 152)
    # 7 x 152 = 1064 spent: the next 2042 needs 106 more points, 21.2 s at 5 points/s (less
    # what came back while the test ran), and Retry-After says so to the second.
    refused = await backend.other.debit_all(items, 2042)
    elapsed = time.monotonic() - started
    assert not refused.allowed
    assert 21.2 - elapsed - TOL <= refused.retry_after <= 21.2 + TOL
    headers = dict(rate_limit_headers(refused))
    assert headers["Retry-After"] == "22"


@pytest.mark.parametrize("turns", range(1, 7))
async def test_closing_waits_for_a_credit_in_flight(
    turns: int, redis_space: tuple[aioredis.Redis, str]
) -> None:
    """``close`` while a credit is waiting, being sent or waiting for Redis's answer: the
    credit is applied either way (cancelling a call in flight would lose it)."""
    client, prefix = redis_space
    policy = slow("user", 10)
    # The worker's own client: its first call connects, so the credit is in flight longer.
    fresh = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    worker = RedisRateLimiter(fresh, prefix=prefix, timeout=CONTRACT_TIMEOUT)
    other = RedisRateLimiter(client, prefix=prefix, timeout=CONTRACT_TIMEOUT)
    try:
        await other.debit("k", 9, policy)
        credit = asyncio.ensure_future(worker.credit_all([("k", policy)], 4))
        for _ in range(turns):
            await asyncio.sleep(0)
        await worker.close()
        assert (await credit) is not None
        assert (await other.peek("k", policy)).remaining == 5
    finally:
        await fresh.aclose()


async def test_concurrent_credits_share_calls_and_all_arrive(
    redis_space: tuple[aioredis.Redis, str],
) -> None:
    """Credits to the same buckets that arrive while one is on its way travel together (one
    call for many), and every caller returns only after its own points are in Redis."""
    client, prefix = redis_space
    user, tenant = slow("user", 1000), slow("tenant", 1000)
    items = [("t1:u1", user), ("t1", tenant)]
    worker = RedisRateLimiter(client, prefix=prefix, timeout=CONTRACT_TIMEOUT)
    other = RedisRateLimiter(client, prefix=prefix, timeout=CONTRACT_TIMEOUT)
    calls = 0
    run = worker._run

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await run(*args, **kwargs)  # type: ignore[arg-type]

    worker._run = counting  # type: ignore[method-assign]
    try:
        assert (await worker.debit_all(items, 1000)).allowed
        calls = 0

        async def credit(points: int) -> None:
            settled = await worker.credit_all(items, points)
            assert settled is not None
            # Applied before returning: another worker sees at least this caller's points.
            assert (await other.peek("t1:u1", user)).remaining >= points

        await asyncio.gather(*(credit(1 + i % 3) for i in range(60)))
        assert (await other.peek("t1:u1", user)).remaining == sum(1 + i % 3 for i in range(60))
        assert (await other.peek("t1", tenant)).remaining == 120
        assert calls < 60, calls
    finally:
        await worker.close()


async def test_a_credit_against_a_failing_redis_is_dropped_at_once(
    caplog: pytest.LogCaptureFixture, redis_space: tuple[aioredis.Redis, str]
) -> None:
    """A credit whose call fails is dropped and logged (the call may have applied it; the
    buckets stay over-charged, the safe direction); it never fails the request, and the
    wait is one timeout per group of buckets, not one per credit."""
    _, prefix = redis_space
    policy = slow("user", 10)
    dead = aioredis.Redis(host=REDIS_HOST, port=free_port(), socket_connect_timeout=0.05)
    failing = RedisRateLimiter(dead, prefix=prefix, timeout=0.05)
    try:
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *(failing.credit_all([(f"u{i % 3}", policy)], 3) for i in range(300))
            )
        assert results == [None] * 300
        await failing.close()
    finally:
        await dead.aclose()
    assert "rate limiter unavailable during refund" in caplog.text


async def test_buckets_are_separate_per_key_and_policy(backend: Backend) -> None:
    read, write = slow("read", 10), slow("write", 3)
    await backend.limiter.debit("u1", 10, read)
    assert (await backend.limiter.debit("u2", 10, read)).allowed
    assert (await backend.limiter.debit("u1", 3, write)).allowed


async def test_cost_above_capacity_is_flagged_and_charges_nothing(backend: Backend) -> None:
    policy = slow(capacity=10)
    await backend.limiter.debit("k", 2, policy)
    decision = await backend.limiter.debit("k", 11, policy)
    assert not decision.allowed
    assert decision.exceeds_capacity
    assert decision.retry_after == math.inf
    assert decision.remaining == 8
    assert (await backend.limiter.peek("k", policy)).remaining == 8
    # A cost equal to the capacity is an ordinary request.
    full = await backend.limiter.debit("new", 10, policy)
    assert full.allowed and not full.exceeds_capacity


async def test_debit_all_is_all_or_nothing(backend: Backend) -> None:
    user, tenant = slow("user", 10), slow("tenant", 5)
    items = [("t1:u1", user), ("t1", tenant)]
    ok = await backend.limiter.debit_all(items, 4)
    assert isinstance(ok, MultiDecision) and ok.allowed
    assert [d.remaining for d in ok.decisions] == [6, 1]
    assert ok.binding.policy == tenant  # lowest remaining

    refused = await backend.limiter.debit_all(items, 4)
    assert not refused.allowed
    assert refused.binding.policy == tenant and refused.binding.retry_after > 0
    assert refused.retry_after == refused.binding.retry_after
    assert all(not d.allowed for d in refused.decisions)
    assert refused.decisions[0].retry_after == 0.0  # the user bucket alone would have fitted
    # Neither bucket was charged by the refusal.
    assert (await backend.limiter.peek("t1:u1", user)).remaining == 6
    assert (await backend.limiter.peek("t1", tenant)).remaining == 1

    refunds = await backend.limiter.credit_all(items, 2)
    assert refunds is not None
    assert [d.remaining for d in refunds.decisions] == [8, 3]


async def test_a_credit_reaches_the_next_debit_of_the_same_buckets(backend: Backend) -> None:
    """What the pipeline does after each request: the unused points come back, and the
    caller's next debit (even a refused one) sees them."""
    user, tenant = slow("user", 10), slow("tenant", 20)
    items = [("t1:u1", user), ("t1", tenant)]
    await backend.limiter.debit_all(items, 8)
    await backend.limiter.credit_all(items, 5)
    following = await backend.limiter.debit_all(items, 4)
    assert following.allowed
    assert [d.remaining for d in following.decisions] == [3, 13]
    refused = await backend.limiter.debit_all(items, 4)  # 3 left: refused, credit kept
    await backend.limiter.credit_all(items, 1)
    assert not refused.allowed
    after_refusal = await backend.limiter.debit_all(items, 5)
    assert not after_refusal.allowed
    assert [d.remaining for d in after_refusal.decisions] == [4, 14]
    # Never past capacity, and a zero credit is nothing.
    await backend.limiter.credit_all(items, 1000)
    await backend.limiter.credit_all(items, 0)
    full = await backend.limiter.debit_all(items, 10)
    assert full.allowed and [d.remaining for d in full.decisions] == [0, 10]
    with pytest.raises(ValueError):
        await backend.limiter.credit_all(items, -1)


async def test_a_credit_to_a_shared_bucket_reaches_other_callers(backend: Backend) -> None:
    """The tenant bucket is shared by every user of the tenant, and a mutation debits a
    different set of buckets than the same user's queries: a credit owed to a bucket is
    paid by any debit that touches it, so neither is refused for points already given back."""
    tenant, user, write = slow("tenant", 100), slow("user", 1000), slow("write", 1000)
    alice = [("t1:alice", user), ("t1", tenant)]
    assert (await backend.limiter.debit_all(alice, 100)).allowed
    await backend.limiter.credit_all(alice, 99)  # alice's request cost 1 of its 100
    bob = await backend.limiter.debit_all([("t1:bob", user), ("t1", tenant)], 40)
    assert bob.allowed and bob.decisions[1].remaining == 59
    mutation = await backend.limiter.debit_all([*alice, ("t1:alice", write)], 40)
    assert mutation.allowed and [d.remaining for d in mutation.decisions] == [959, 19, 960]


async def test_debit_all_reports_capacity_overflow_as_binding(backend: Backend) -> None:
    items = [("u", slow("user", 100)), ("w", slow("write", 5))]
    decision = await backend.limiter.debit_all(items, 6)
    assert not decision.allowed and decision.exceeds_capacity
    assert decision.binding.policy.name == "write"
    assert (await backend.limiter.peek("u", items[0][1])).remaining == 100


async def test_concurrent_debits_never_admit_more_than_capacity(backend: Backend) -> None:
    policy = slow(capacity=50)
    results = await asyncio.gather(*(backend.limiter.debit("hot", 1, policy) for _ in range(200)))
    assert sum(d.allowed for d in results) == 50
    assert sorted(d.remaining for d in results if d.allowed) == list(range(50))


async def test_concurrent_debit_all_never_charges_partially(backend: Backend) -> None:
    user, tenant = slow("user", 30), slow("tenant", 20)
    items = [("u", user), ("t", tenant)]
    results = await asyncio.gather(*(backend.limiter.debit_all(items, 1) for _ in range(100)))
    assert sum(d.allowed for d in results) == 20
    assert (await backend.limiter.peek("u", user)).remaining == 10
    assert (await backend.limiter.peek("t", tenant)).remaining == 0


async def test_idle_buckets_vanish(backend: Backend) -> None:
    policy = BucketPolicy("idle", capacity=10, restore_rate=10)  # 100 ms per point
    decision = await backend.limiter.debit("k", 4, policy)
    assert decision.reset_after == pytest.approx(0.4, abs=0.05)
    assert await backend.holds("k", policy)
    if backend.client is not None:
        ttl = await backend.ttl_ms("k", policy)
        assert 0 < ttl <= math.ceil(decision.reset_after * 1000)
    await asyncio.sleep(decision.reset_after)
    for _ in range(200):  # Redis expires keys lazily or on its 10 Hz cycle: allow up to 2 s
        if not await backend.holds("k", policy):
            break
        await asyncio.sleep(0.01)
    assert not await backend.holds("k", policy)
    # A full refund also deletes the state at once.
    await backend.limiter.debit("k2", 5, slow())
    await backend.limiter.refund("k2", 5, slow())
    assert not await backend.holds("k2", slow())


async def test_invalid_arguments_are_refused(backend: Backend) -> None:
    policy = slow()
    with pytest.raises(ValueError):
        await backend.limiter.debit("k", -1, policy)
    with pytest.raises(ValueError):
        await backend.limiter.refund("k", -1, policy)
    with pytest.raises(ValueError):
        await backend.limiter.debit_all([], 1)
    with pytest.raises(ValueError):
        await backend.limiter.debit_all([("k", policy), ("k", policy)], 1)
    zero = await backend.limiter.debit("k", 0, policy)
    assert zero.allowed and zero.remaining == 10


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        BucketPolicy("p", capacity=0, restore_rate=1)
    with pytest.raises(ValueError):
        BucketPolicy("p", capacity=1, restore_rate=0)
    with pytest.raises(ValueError):
        BucketPolicy("", capacity=1, restore_rate=1)
    assert BucketPolicy("user", 1000, 50).window == 20
    assert BucketPolicy("user", 10, 3).window == 4


# --- memory twin with a fake clock: exact numbers ---------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_arithmetic_is_exact_with_a_fake_clock() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    policy = BucketPolicy("user", capacity=100, restore_rate=10)
    assert [(await limiter.debit("k", 30, policy)).remaining for _ in range(3)] == [70, 40, 10]
    refused = await limiter.debit("k", 30, policy)
    assert (refused.allowed, refused.remaining) == (False, 10)
    assert (refused.retry_after, refused.reset_after) == (2.0, 9.0)

    clock.now += 2.0  # exactly enough for the refused debit
    again = await limiter.debit("k", 30, policy)
    assert (again.allowed, again.remaining, again.reset_after) == (True, 0, 10.0)

    refunded = await limiter.refund("k", 25, policy)
    assert (refunded.remaining, refunded.reset_after) == (25, 7.5)

    clock.now += 1.5
    assert (await limiter.peek("k", policy)).remaining == 40
    clock.now += 100
    assert (await limiter.peek("k", policy)).remaining == 100


async def test_memory_sweeps_full_buckets_as_it_grows() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock, sweep_threshold=8)
    policy = BucketPolicy("user", capacity=10, restore_rate=10)
    for i in range(7):
        await limiter.debit(f"k{i}", 1, policy)
    assert len(limiter) == 7
    clock.now += 1.0  # every bucket is full again
    await limiter.debit("k7", 1, policy)  # the 8th entry triggers a sweep
    assert len(limiter) == 1
    clock.now += 1.0
    assert limiter.sweep() == 1 and len(limiter) == 0


# --- headers ----------------------------------------------------------------------------------

USER = BucketPolicy("user", capacity=1000, restore_rate=50)


def make(policy: BucketPolicy = USER, **overrides: object) -> Decision:
    values: dict[str, object] = {
        "allowed": True,
        "limit": policy.capacity,
        "remaining": 935,
        "retry_after": 0.0,
        "reset_after": 1.3,
        "cost": 65,
        "policy": policy,
    }
    values.update(overrides)
    return Decision(**values)  # type: ignore[arg-type]


def test_headers_for_an_admitted_request() -> None:
    headers = rate_limit_headers(make(), now=1_700_000_000.2)
    assert headers == [
        ("RateLimit-Policy", '"user";q=1000;w=20'),
        ("RateLimit", '"user";r=935;t=2'),
        ("X-RateLimit-Limit", "1000"),
        ("X-RateLimit-Remaining", "935"),
        ("X-RateLimit-Reset", "1700000002"),
    ]


def test_headers_for_a_throttled_request() -> None:
    decision = make(allowed=False, remaining=12, retry_after=2.0001, reset_after=19.76)
    headers = dict(rate_limit_headers(decision, now=1_700_000_000.0))
    assert headers["Retry-After"] == "3"
    # Retry-After must not point before the reset the RateLimit field announces.
    assert headers["RateLimit"] == '"user";r=12;t=3'
    assert headers["X-RateLimit-Reset"] == "1700000020"
    tiny = dict(rate_limit_headers(make(allowed=False, remaining=0, retry_after=0.002)))
    assert tiny["Retry-After"] == "1"


def test_headers_without_retry_after_when_cost_can_never_fit() -> None:
    decision = make(allowed=False, retry_after=math.inf, exceeds_capacity=True, cost=5000)
    headers = dict(rate_limit_headers(decision, now=0.0))
    assert "Retry-After" not in headers
    assert headers["RateLimit"] == '"user";r=935;t=2'


def test_headers_list_every_bucket_of_a_multi_decision() -> None:
    tenant = BucketPolicy("tenant", capacity=5000, restore_rate=250)
    user_d = make(remaining=935)
    tenant_d = make(tenant, remaining=40, reset_after=19.8)
    multi = MultiDecision(allowed=True, decisions=(user_d, tenant_d), binding=tenant_d)
    headers = dict(rate_limit_headers(multi, now=100.0))
    assert headers["RateLimit-Policy"] == '"user";q=1000;w=20, "tenant";q=5000;w=20'
    assert headers["RateLimit"] == '"user";r=935;t=2, "tenant";r=40;t=20'
    assert headers["X-RateLimit-Remaining"] == "40"
    assert headers["X-RateLimit-Limit"] == "5000"
    assert "Retry-After" not in headers


def test_header_policy_names_are_structured_field_strings() -> None:
    odd = BucketPolicy('a"b\\c', capacity=10, restore_rate=1)
    assert dict(rate_limit_headers(make(odd)))["RateLimit-Policy"] == '"a\\"b\\\\c";q=10;w=10'
    with pytest.raises(ValueError):
        rate_limit_headers(make(BucketPolicy("naïve", capacity=10, restore_rate=1)))


async def test_headers_from_a_real_decision(backend: Backend) -> None:
    policy = BucketPolicy("user", capacity=100, restore_rate=10)
    await backend.limiter.debit("k", 95, policy)
    refused = await backend.limiter.debit("k", 10, policy)
    headers = dict(rate_limit_headers(refused))
    assert headers["Retry-After"] == "1"  # 5 points missing at 10/s: 0.5 s, rounded up
    assert headers["RateLimit"] == '"user";r=5;t=1'
    assert headers["RateLimit-Policy"] == '"user";q=100;w=10'
