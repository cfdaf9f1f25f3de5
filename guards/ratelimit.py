"""Cost-weighted rate limiting: GCRA buckets in memory or in Redis, and their HTTP headers.

A bucket holds ``capacity`` points and restores ``restore_rate`` points per second. Its whole
state is one number, the theoretical arrival time (TAT): the instant at which the bucket will
be full again. A debit of ``c`` points moves the TAT forward by ``c`` emission intervals and is
admitted while the TAT stays within ``capacity`` intervals of now; a refund moves it back, but
never before now (a bucket never holds more than its capacity). Both backends run exactly the
same arithmetic, in microseconds, with the same rounding:

    limiter = MemoryRateLimiter()                      # or RedisRateLimiter(redis_client)
    user = BucketPolicy("user", capacity=1000, restore_rate=50)
    decision = await limiter.debit_all([("tenant-1:user-7", user)], 70)
    if not decision.allowed:
        ...  # 429 THROTTLED, or COST_LIMIT_EXCEEDED when decision.exceeds_capacity
    await limiter.credit_all([("tenant-1:user-7", user)], 70 - actual_cost)

``credit_all`` returns once the refund is applied: a debit made after it, by this process or
any other sharing the store, counts it. Answer the request only after it returns, and no
client ever sees a refusal for points already given back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = [
    "BucketPolicy",
    "Decision",
    "LimiterUnavailable",
    "MemoryRateLimiter",
    "MultiDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "rate_limit_headers",
]

_US = 1_000_000.0
# Redis timestamps in microseconds are ~1.8e15, where doubles are spaced 0.25 us apart: one
# microsecond of slack keeps float noise from refusing a debit that fits exactly.
_SLACK_US = 1.0
_MODE_DEBIT = 0
_MODE_REFUND = 1
_MODE_PEEK = 2

_T = TypeVar("_T")

log = logging.getLogger(__name__)


class LimiterUnavailable(Exception):
    """The limiter's backend failed or did not answer in time; apply the fail-open/closed policy."""


@dataclass(frozen=True)
class BucketPolicy:
    """A bucket's shape: ``capacity`` points of burst, refilled at ``restore_rate`` points/s."""

    name: str
    capacity: int
    restore_rate: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("policy name must not be empty")
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")
        if not (self.restore_rate > 0 and math.isfinite(self.restore_rate)):
            raise ValueError(f"restore_rate must be > 0, got {self.restore_rate}")

    @property
    def interval_us(self) -> float:
        """Microseconds needed to restore one point."""
        return _US / self.restore_rate

    @property
    def window(self) -> int:
        """Seconds for an empty bucket to fill up again (at least 1)."""
        return max(1, math.ceil(self.capacity / self.restore_rate))


@dataclass(frozen=True)
class Decision:
    """The outcome of one debit (or refund/peek) on one bucket.

    ``remaining`` is what is left after this debit (or, when refused, what is available now);
    ``retry_after`` is the exact wait until this debit would fit (0 when allowed, ``inf`` when
    it never can because ``cost > capacity``); ``reset_after`` is the wait until the bucket is
    full again.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float
    cost: int
    policy: BucketPolicy
    exceeds_capacity: bool = False
    key: str = ""


@dataclass(frozen=True)
class MultiDecision:
    """The outcome of an all-or-nothing debit over several buckets.

    ``binding`` is the decision that limits most: the lowest ``remaining`` when allowed, the
    largest ``retry_after`` when refused. When refused, no bucket was charged and every
    decision has ``allowed=False`` (buckets that would have fitted report ``retry_after=0``).
    """

    allowed: bool
    decisions: tuple[Decision, ...]
    binding: Decision

    @property
    def exceeds_capacity(self) -> bool:
        """True when the cost can never fit one of the buckets."""
        return any(d.exceeds_capacity for d in self.decisions)

    @property
    def retry_after(self) -> float:
        """Seconds until the whole debit would fit (0 when allowed)."""
        return self.binding.retry_after


class RateLimiter(Protocol):
    """A cost-weighted bucket store; every operation is atomic. Only what the app calls."""

    async def debit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], cost: int
    ) -> MultiDecision:
        """Take ``cost`` points from every bucket, or from none if any refuses."""
        ...

    async def credit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], amount: int
    ) -> MultiDecision | None:
        """Give ``amount`` points back to every bucket, never past capacity, and return once
        every later debit (of any process sharing the store) counts them: the buckets' state
        after, or None when the store failed (the points are then lost: over-charged, the
        safe direction) or ``amount`` is 0. Never raises ``LimiterUnavailable``."""
        ...

    async def peek(self, key: str, policy: BucketPolicy) -> Decision:
        """Report the bucket's state without changing it."""
        ...

    async def close(self) -> None:
        """Release what the limiter owns (after the credits still in flight are applied)."""
        ...


# --- the arithmetic (mirrored line for line by _LUA below) ----------------------------------


def _evaluate(
    stored_tat: float | None, now: float, cost: int, capacity: int, interval: float
) -> tuple[bool, bool, float, int, int, int]:
    """GCRA for one bucket: (fits, exceeds, debt_after, remaining, retry_us, reset_us).

    ``debt`` is TAT minus now: how far the bucket is from full, in microseconds. Working on the
    debt rather than on absolute timestamps keeps the numbers small and exact.
    """
    tau = capacity * interval
    debt = 0.0 if stored_tat is None else max(stored_tat - now, 0.0)
    exceeds = cost > capacity
    new_debt = debt + cost * interval
    fits = (not exceeds) and new_debt <= tau + _SLACK_US
    after = new_debt if fits else debt
    if fits:
        retry_us = 0
    elif exceeds:
        retry_us = -1
    else:
        retry_us = math.ceil(new_debt - tau)
    remaining = math.floor((tau - after + _SLACK_US) / interval)
    remaining = min(max(remaining, 0), capacity)
    return fits, exceeds, after, remaining, retry_us, math.ceil(after)


def _refunded(stored_tat: float | None, now: float, amount: int, interval: float) -> float:
    """The debt after giving ``amount`` points back, floored at a full bucket."""
    debt = 0.0 if stored_tat is None else max(stored_tat - now, 0.0)
    return max(debt - amount * interval, 0.0)


def _decision(
    key: str,
    policy: BucketPolicy,
    cost: int,
    allowed: bool,
    exceeds: bool,
    remaining: int,
    retry_us: int,
    reset_us: int,
) -> Decision:
    retry_after = math.inf if exceeds else max(retry_us, 0) / _US
    return Decision(
        allowed=allowed,
        limit=policy.capacity,
        remaining=remaining,
        retry_after=0.0 if allowed else retry_after,
        reset_after=max(reset_us, 0) / _US,
        cost=cost,
        policy=policy,
        exceeds_capacity=exceeds,
        key=key,
    )


def _multi(decisions: list[Decision], allowed: bool) -> MultiDecision:
    if allowed:
        binding = min(decisions, key=lambda d: (d.remaining, -d.reset_after))
    else:
        binding = max(decisions, key=lambda d: (d.retry_after, -d.remaining))
    return MultiDecision(allowed=allowed, decisions=tuple(decisions), binding=binding)


def _check_items(items: Sequence[tuple[str, BucketPolicy]], amount: int, what: str) -> None:
    if not items:
        raise ValueError("at least one bucket is required")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {amount!r}")
    seen: set[tuple[str, str]] = set()
    for key, policy in items:
        if (policy.name, key) in seen:
            raise ValueError(f"bucket {policy.name}:{key} appears twice")
        seen.add((policy.name, key))


# --- in-process twin --------------------------------------------------------------------------


class MemoryRateLimiter:
    """In-process GCRA buckets with the same arithmetic as ``RedisRateLimiter``.

    State is per process: use it when no Redis is configured. ``clock`` returns seconds and is
    injectable for deterministic tests. Buckets that are full again are swept out as the map
    grows, so idle callers cost nothing.

    Example::

        limiter = MemoryRateLimiter()
        decision = await limiter.debit("t1:u1", 12, BucketPolicy("user", 1000, 50))
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, sweep_threshold: int = 4096
    ) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        # Threads may share one limiter (sync code, several loops); the critical section has
        # no await, so a plain lock keeps read-modify-write atomic everywhere.
        self._lock = threading.Lock()
        self._sweep_threshold = sweep_threshold
        self._next_sweep = sweep_threshold

    def __len__(self) -> int:
        return len(self._tats)

    @staticmethod
    def _storage_key(key: str, policy: BucketPolicy) -> str:
        return f"{policy.name}:{key}"

    def _now(self) -> float:
        return self._clock() * _US

    def holds(self, key: str, policy: BucketPolicy) -> bool:
        """True while the bucket is below capacity (a full bucket keeps no state)."""
        with self._lock:
            tat = self._tats.get(self._storage_key(key, policy))
            return tat is not None and tat > self._now()

    def sweep(self) -> int:
        """Forget buckets that are full again; returns how many were dropped."""
        with self._lock:
            return self._sweep_locked(self._now())

    def _sweep_locked(self, now: float) -> int:
        stale = [k for k, tat in self._tats.items() if tat <= now]
        for k in stale:
            del self._tats[k]
        self._next_sweep = max(self._sweep_threshold, 2 * len(self._tats))
        return len(stale)

    def _store(self, skey: str, now: float, debt: float) -> None:
        if debt <= 0.0:
            self._tats.pop(skey, None)
        else:
            self._tats[skey] = now + debt

    async def debit(self, key: str, cost: int, policy: BucketPolicy) -> Decision:
        """Take ``cost`` points from the bucket, all of them or none."""
        return (await self.debit_all([(key, policy)], cost)).decisions[0]

    async def debit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], cost: int
    ) -> MultiDecision:
        """Take ``cost`` points from every bucket, or from none if any refuses."""
        _check_items(keys_and_policies, cost, "cost")
        with self._lock:
            now = self._now()
            results = []
            for key, policy in keys_and_policies:
                skey = self._storage_key(key, policy)
                results.append(
                    (
                        skey,
                        _evaluate(
                            self._tats.get(skey), now, cost, policy.capacity, policy.interval_us
                        ),
                    )
                )
            all_fit = all(r[0] for _, r in results)
            decisions = []
            for (key, policy), (skey, r) in zip(keys_and_policies, results, strict=True):
                _, exceeds, debt, remaining, retry_us, reset_us = r
                if all_fit:
                    self._store(skey, now, debt)
                else:
                    # Nothing is charged: report the bucket as it stands.
                    _, _, debt, remaining, _, reset_us = _evaluate(
                        self._tats.get(skey), now, 0, policy.capacity, policy.interval_us
                    )
                decisions.append(
                    _decision(key, policy, cost, all_fit, exceeds, remaining, retry_us, reset_us)
                )
            if len(self._tats) >= self._next_sweep:
                self._sweep_locked(now)
        return _multi(decisions, all_fit)

    async def refund(self, key: str, amount: int, policy: BucketPolicy) -> Decision:
        """Give ``amount`` points back, never past capacity; returns the state after."""
        return self._refund_all([(key, policy)], amount).decisions[0]

    async def credit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], amount: int
    ) -> MultiDecision | None:
        """Give ``amount`` points back to every bucket, never past capacity, at once."""
        _check_items(keys_and_policies, amount, "amount")
        if amount == 0:
            return None
        return self._refund_all(keys_and_policies, amount)

    def _refund_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], amount: int
    ) -> MultiDecision:
        _check_items(keys_and_policies, amount, "amount")
        decisions = []
        with self._lock:
            now = self._now()
            for key, policy in keys_and_policies:
                skey = self._storage_key(key, policy)
                debt = _refunded(self._tats.get(skey), now, amount, policy.interval_us)
                self._store(skey, now, debt)
                _, _, _, remaining, _, reset_us = _evaluate(
                    self._tats.get(skey), now, 0, policy.capacity, policy.interval_us
                )
                decisions.append(_decision(key, policy, 0, True, False, remaining, 0, reset_us))
        return _multi(decisions, True)

    async def peek(self, key: str, policy: BucketPolicy) -> Decision:
        """Report the bucket's state without changing it."""
        with self._lock:
            now = self._now()
            stored = self._tats.get(self._storage_key(key, policy))
            _, _, _, remaining, _, reset_us = _evaluate(
                stored, now, 0, policy.capacity, policy.interval_us
            )
        return _decision(key, policy, 0, True, False, remaining, 0, reset_us)

    async def close(self) -> None:
        """Drop every bucket."""
        with self._lock:
            self._tats.clear()


# --- Redis ------------------------------------------------------------------------------------

# KEYS: bucket keys. ARGV[1] mode (0 debit, 1 refund, 2 peek), ARGV[2] amount, then for each
# key its capacity and its emission interval in microseconds. Reply: all_fit, then per key
# fits, exceeds, remaining, retry_us, reset_us. Uses the server's clock so that hosts with
# skewed clocks agree; scripts are replicated by effects (Redis >= 5), so TIME is allowed.
_LUA = """
local mode = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local slack = 1.0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local debts, res = {}, {}
local all_fit = 1

local function debt_of(key)
  local raw = redis.call('GET', key)
  if not raw then return 0.0 end
  local d = tonumber(raw) - now
  if d < 0 then return 0.0 end
  return d
end

local function store(key, debt)
  if debt <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, string.format('%.2f', now + debt), 'PX', math.ceil(debt / 1000))
  end
end

local function evaluate(debt, cost, cap, interval)
  local tau = cap * interval
  local exceeds = cost > cap
  local new_debt = debt + cost * interval
  local fits = (not exceeds) and new_debt <= tau + slack
  local after = debt
  if fits then after = new_debt end
  local retry = 0
  if exceeds then retry = -1 elseif not fits then retry = math.ceil(new_debt - tau) end
  local remaining = math.floor((tau - after + slack) / interval)
  if remaining < 0 then remaining = 0 end
  if remaining > cap then remaining = cap end
  return fits, exceeds, after, remaining, retry, math.ceil(after)
end

for i = 1, n do
  local cap = tonumber(ARGV[1 + 2 * i])
  local interval = tonumber(ARGV[2 + 2 * i])
  local debt = debt_of(KEYS[i])
  if mode == 1 then
    debt = debt - amount * interval
    if debt < 0 then debt = 0.0 end
    store(KEYS[i], debt)
  end
  local cost = amount
  if mode ~= 0 then cost = 0 end
  local fits, exceeds, after, remaining, retry, reset = evaluate(debt, cost, cap, interval)
  if not fits then all_fit = 0 end
  debts[i] = {debt, after, cap, interval}
  res[i] = {fits and 1 or 0, exceeds and 1 or 0, remaining, retry, reset}
end

if mode == 0 then
  for i = 1, n do
    local d = debts[i]
    if all_fit == 1 then
      store(KEYS[i], d[2])
    else
      local _, _, _, remaining, _, reset = evaluate(d[1], 0, d[3], d[4])
      res[i][3] = remaining
      res[i][5] = reset
    end
  end
end

local out = {all_fit}
for i = 1, n do
  for j = 1, 5 do out[#out + 1] = res[i][j] end
end
return out
"""

_Group = tuple[tuple[str, BucketPolicy], ...]


@dataclass
class _Owed:
    """Points owed back to one group of buckets by credits that wait for their call."""

    items: list[tuple[str, BucketPolicy]]
    amount: int
    settled: asyncio.Future[MultiDecision | None]


class RedisRateLimiter:
    """GCRA buckets in Redis: one Lua script, one round trip per decision, server clock.

    Keys are ``<prefix><policy name>:<key>`` and carry a TTL equal to the time until the bucket
    is full again, so idle buckets vanish. Every call is bounded by ``timeout`` seconds; any
    Redis error or timeout raises ``LimiterUnavailable``, and the next call simply tries again
    (the script is reloaded automatically after a Redis restart). A debit that timed out may
    still have been applied; the caller is then over-charged, which is the safe direction, so
    do not refund it. For Redis Cluster, keys
    debited together must share a hash tag, e.g. ``{tenant-1}:user-7`` and ``{tenant-1}``.

    Give it a client whose pool blocks rather than fails when busy (see ``from_url``).

    ``credit_all`` (the refund of a request's unused points) is applied in Redis before it
    returns, so a request answered after it leaves no refund owed anywhere: the next debit,
    whichever worker makes it, counts it. Credits to the same buckets that arrive while one
    is on its way wait for it and then travel together, as one call (a group commit): under
    load, many requests' refunds share a round trip. A credit whose call fails is dropped
    and logged (the call may have applied it; over-charging is the safe direction).

    Example::

        limiter = RedisRateLimiter.from_url("redis://127.0.0.1:6379/0")
        decision = await limiter.debit_all([("{t1}:u1", BucketPolicy("user", 1000, 50))], 12)
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "tg:rl:",
        timeout: float = 0.05,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._owns_client = owns_client
        self._script = client.register_script(_LUA)
        # Credits waiting for their call, and the task sending each group's calls.
        self._owed: dict[_Group, _Owed] = {}
        self._settlers: dict[_Group, asyncio.Task[None]] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "tg:rl:",
        timeout: float = 0.05,
        max_connections: int = 64,
    ) -> RedisRateLimiter:
        """Build a limiter with its own client (closed by ``close()``).

        The pool blocks for a free connection instead of failing: redis-py's default pool
        raises ``MaxConnectionsError`` past 100 connections in use, which a burst of
        concurrent requests reaches easily. The wait is still bounded by ``timeout``.
        """
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        return cls(aioredis.Redis.from_pool(pool), prefix=prefix, timeout=timeout, owns_client=True)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client in use."""
        return self._client

    def storage_key(self, key: str, policy: BucketPolicy) -> str:
        """The Redis key holding ``key``'s bucket under ``policy``."""
        return f"{self._prefix}{policy.name}:{key}"

    async def _bounded(self, call: Awaitable[_T]) -> _T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except TimeoutError as exc:
            raise LimiterUnavailable(f"rate limiter: no answer within {self._timeout}s") from exc
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(f"rate limiter: {type(exc).__name__}: {exc}") from exc

    async def _run(
        self, mode: int, items: Sequence[tuple[str, BucketPolicy]], amount: int
    ) -> tuple[bool, list[tuple[bool, bool, int, int, int]]]:
        keys = [self.storage_key(key, policy) for key, policy in items]
        args: list[Any] = [mode, amount]
        for _, policy in items:
            args += [policy.capacity, repr(policy.interval_us)]
        reply = await self._bounded(self._script(keys=keys, args=args))
        try:
            values = [int(v) for v in reply]
            rows = [
                (values[i] == 1, values[i + 1] == 1, values[i + 2], values[i + 3], values[i + 4])
                for i in range(1, len(values), 5)
            ]
        except (TypeError, ValueError, IndexError) as exc:
            raise LimiterUnavailable(f"rate limiter: unexpected reply {reply!r}") from exc
        if len(rows) != len(items):
            raise LimiterUnavailable(f"rate limiter: unexpected reply {reply!r}")
        return values[0] == 1, rows

    async def debit(self, key: str, cost: int, policy: BucketPolicy) -> Decision:
        """Take ``cost`` points from the bucket, all of them or none."""
        return (await self.debit_all([(key, policy)], cost)).decisions[0]

    async def debit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], cost: int
    ) -> MultiDecision:
        """Take ``cost`` points from every bucket, or from none if any refuses."""
        _check_items(keys_and_policies, cost, "cost")
        all_fit, rows = await self._run(_MODE_DEBIT, keys_and_policies, cost)
        decisions = [
            _decision(key, policy, cost, all_fit, exceeds, remaining, retry_us, reset_us)
            for (key, policy), (_, exceeds, remaining, retry_us, reset_us) in zip(
                keys_and_policies, rows, strict=True
            )
        ]
        return _multi(decisions, all_fit)

    async def refund(self, key: str, amount: int, policy: BucketPolicy) -> Decision:
        """Give ``amount`` points back, never past capacity; returns the state after
        (raises ``LimiterUnavailable`` when Redis fails, unlike ``credit_all``)."""
        _check_items([(key, policy)], amount, "amount")
        return (await self._refund_all([(key, policy)], amount)).decisions[0]

    async def _refund_all(
        self, items: Sequence[tuple[str, BucketPolicy]], amount: int
    ) -> MultiDecision:
        _, rows = await self._run(_MODE_REFUND, items, amount)
        decisions = [
            _decision(key, policy, 0, True, False, remaining, 0, reset_us)
            for (key, policy), (_, _, remaining, _, reset_us) in zip(items, rows, strict=True)
        ]
        return _multi(decisions, True)

    async def credit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], amount: int
    ) -> MultiDecision | None:
        """Give ``amount`` points back to every bucket; returns once Redis has applied them
        (with the buckets' state after), or None when Redis failed (the credit is dropped and
        logged) or ``amount`` is 0. Joins a credit to the same buckets still waiting for its
        call, so concurrent refunds share one round trip."""
        _check_items(keys_and_policies, amount, "amount")
        if amount == 0:
            return None
        group: _Group = tuple(keys_and_policies)
        owed = self._owed.get(group)
        if owed is None:
            owed = _Owed(list(group), 0, asyncio.get_running_loop().create_future())
            self._owed[group] = owed
            if group not in self._settlers:
                self._settlers[group] = asyncio.get_running_loop().create_task(self._settle(group))
        owed.amount += amount
        # Shielded: a caller that goes away (client disconnect) does not cancel the others'.
        return await asyncio.shield(owed.settled)

    async def _settle(self, group: _Group) -> None:
        """Send the group's owed credits, one call at a time, until none is waiting."""
        try:
            while (owed := self._owed.pop(group, None)) is not None:
                try:
                    result: MultiDecision | None = await self._refund_all(owed.items, owed.amount)
                except LimiterUnavailable as exc:
                    log.warning(
                        "rate limiter unavailable during refund: %d points not given back to %s (%s)",
                        owed.amount,
                        ", ".join(self.storage_key(k, p) for k, p in owed.items),
                        exc,
                    )
                    result = None
                except BaseException as exc:
                    owed.settled.set_exception(exc)
                    owed.settled.exception()  # retrieved: no "never retrieved" noise
                    raise
                owed.settled.set_result(result)
        finally:
            del self._settlers[group]

    async def flush(self) -> None:
        """Wait until every credit sent or waiting has been applied (or dropped)."""
        while self._settlers:
            await asyncio.gather(*self._settlers.values(), return_exceptions=True)

    async def peek(self, key: str, policy: BucketPolicy) -> Decision:
        """Report the bucket's state without changing it."""
        _, rows = await self._run(_MODE_PEEK, [(key, policy)], 0)
        _, _, remaining, _, reset_us = rows[0]
        return _decision(key, policy, 0, True, False, remaining, 0, reset_us)

    async def close(self) -> None:
        """Let the credits in flight finish, then close the Redis client if this limiter
        created it."""
        await self.flush()
        if self._owns_client:
            await self._client.aclose()


# --- headers ----------------------------------------------------------------------------------


def _sf_string(value: str) -> str:
    """Serialise a Structured Field String (RFC 9651 section 4.1.6)."""
    if any(not (0x20 <= ord(ch) <= 0x7E) for ch in value):
        raise ValueError(f"policy name {value!r} is not printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wait_seconds(decision: Decision) -> int:
    # A refused request's quota comes back when its cost fits (Retry-After); the draft asks
    # that Retry-After never point before the reset, so both carry that same number then.
    if not decision.allowed and decision.retry_after > 0 and not decision.exceeds_capacity:
        return max(1, math.ceil(decision.retry_after))
    return math.ceil(decision.reset_after)


def rate_limit_headers(
    decision: Decision | MultiDecision, *, now: float | None = None
) -> list[tuple[str, str]]:
    """Response headers for a decision: IETF draft-10 ``RateLimit``/``RateLimit-Policy``,
    GitHub's ``X-RateLimit-*`` (reset in epoch seconds) and ``Retry-After`` when throttled.

    A ``MultiDecision`` lists every bucket in the IETF fields and uses its binding bucket for
    the others. No ``Retry-After`` is sent for a cost that can never fit (``exceeds_capacity``):
    waiting would not help.
    """
    if isinstance(decision, MultiDecision):
        decisions: Sequence[Decision] = decision.decisions
        binding = decision.binding
    else:
        decisions = (decision,)
        binding = decision
    wall = time.time() if now is None else now
    policy_items = ", ".join(
        f"{_sf_string(d.policy.name)};q={d.policy.capacity};w={d.policy.window}" for d in decisions
    )
    limit_items = ", ".join(
        f"{_sf_string(d.policy.name)};r={d.remaining};t={_wait_seconds(d)}" for d in decisions
    )
    headers = [
        ("RateLimit-Policy", policy_items),
        ("RateLimit", limit_items),
        ("X-RateLimit-Limit", str(binding.limit)),
        ("X-RateLimit-Remaining", str(binding.remaining)),
        ("X-RateLimit-Reset", str(math.ceil(wall + binding.reset_after))),
    ]
    if not binding.allowed and not binding.exceeds_capacity:
        headers.append(("Retry-After", str(max(1, math.ceil(binding.retry_after)))))
    return headers
