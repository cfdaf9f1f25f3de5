"""Whole-response caching for any GraphQL server: keys, stores, tags and single flight.

A cached response is stored under a *partition* (a tenant) and a *key* (the document, the
variables and everything that shapes the caller's view), with *tags* naming what it shows
(``Product:<id>``, ``Product:list``...). Invalidating a tag drops every response carrying it.

A read must never store what it read before an invalidation that finished before it stored:
each partition has a *generation*, bumped by every invalidation; a lookup returns it, and a
store carries it back and is refused when it moved (the response may predate the write).

Two stores with one behaviour (``tests/guards/test_responsecache.py`` runs both):
:class:`MemoryResponseStore`, an LRU bounded in bytes for one process, and
:class:`RedisResponseStore`, shared by every worker and host (TTL = maxAge, tag sets, atomic
Lua scripts; keys under its own prefix with the partition as a cluster hash tag).

    store = MemoryResponseStore(max_bytes=64 << 20)
    found, generation = await store.get("tenant-a", key)
    if found is None:
        body = run()
        await store.put("tenant-a", key, CachedResponse(body, time.time(), 60, "PUBLIC"),
                        {"Product:1"}, generation)
    await store.invalidate("tenant-a", {"Product:1"})
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

__all__ = [
    "ALL",
    "CachedResponse",
    "MemoryResponseStore",
    "RedisResponseStore",
    "ResponseStore",
    "SingleFlight",
    "cache_key",
]

ALL = "*"
"""The tag every stored response carries: invalidating it empties the partition."""

EventHook = Callable[[str, int], None]


def _no_event(name: str, count: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored response: its serialized body, when it was stored, and its policy."""

    body: bytes
    stored_at: float
    max_age: int
    scope: str = "PUBLIC"

    def age(self, now: float | None = None) -> int:
        """Whole seconds since it was stored (HTTP ``Age``)."""
        return max(0, int((time.time() if now is None else now) - self.stored_at))

    def encode(self) -> bytes:
        header = orjson.dumps([self.stored_at, self.max_age, self.scope])
        return header + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> CachedResponse:
        header, _, body = raw.partition(b"\n")
        stored_at, max_age, scope = orjson.loads(header)
        return cls(body, float(stored_at), int(max_age), str(scope))


def cache_key(
    document_digest: str,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    view: Iterable[str],
    subject: str | None = None,
) -> str:
    """The key of one response: document, variables in canonical form, view, subject.

    ``view`` lists every fact that changes what the caller may see (role, scopes, field
    permissions); ``subject`` is given for PRIVATE responses only. Variables are canonical:
    keys sorted at every level, so ``{"a":1,"b":2}`` and ``{"b":2,"a":1}`` share a key.
    """
    canonical = orjson.dumps(
        [document_digest, operation_name, variables or {}, sorted(view), subject],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


class ResponseStore(Protocol):
    """What the server needs from a store (both stores implement it alike)."""

    async def get(self, partition: str, key: str) -> tuple[CachedResponse | None, int]: ...

    async def put(
        self,
        partition: str,
        key: str,
        entry: CachedResponse,
        tags: Collection[str],
        generation: int,
    ) -> bool: ...

    async def invalidate(self, partition: str, tags: Collection[str]) -> int: ...


@dataclass(slots=True)
class _Slot:
    entry: CachedResponse
    tags: tuple[str, ...]
    expires: float
    size: int


class MemoryResponseStore:
    """An LRU of responses bounded in bytes, for one process (safe for asyncio: no awaits).

    The size of an entry is its body plus its key and tags plus a fixed overhead; an entry
    larger than a quarter of the bound is not stored.
    """

    OVERHEAD = 200

    def __init__(
        self,
        max_bytes: int = 64 << 20,
        *,
        clock: Callable[[], float] = time.time,
        on_event: EventHook = _no_event,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._clock = clock
        self._on_event = on_event
        self._slots: OrderedDict[tuple[str, str], _Slot] = OrderedDict()
        self._tags: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._generations: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._slots)

    async def get(self, partition: str, key: str) -> tuple[CachedResponse | None, int]:
        generation = self._generations.get(partition, 0)
        slot = self._slots.get((partition, key))
        if slot is None:
            return None, generation
        if slot.expires <= self._clock():
            self._drop((partition, key))
            return None, generation
        self._slots.move_to_end((partition, key))
        return slot.entry, generation

    async def put(
        self,
        partition: str,
        key: str,
        entry: CachedResponse,
        tags: Collection[str],
        generation: int,
    ) -> bool:
        if self._generations.get(partition, 0) != generation or entry.max_age <= 0:
            return False
        all_tags = (*sorted(set(tags) | {ALL}),)
        size = len(entry.body) + len(key) + sum(len(t) for t in all_tags) + self.OVERHEAD
        if size > self.max_bytes // 4:
            return False
        slot_key = (partition, key)
        if slot_key in self._slots:
            self._drop(slot_key)
        self._slots[slot_key] = _Slot(entry, all_tags, self._clock() + entry.max_age, size)
        self.bytes += size
        for tag in all_tags:
            self._tags.setdefault((partition, tag), set()).add(slot_key)
        evicted = 0
        while self.bytes > self.max_bytes and self._slots:
            self._drop(next(iter(self._slots)))
            evicted += 1
        if evicted:
            self._on_event("eviction", evicted)
        return True

    async def invalidate(self, partition: str, tags: Collection[str]) -> int:
        self._generations[partition] = self._generations.get(partition, 0) + 1
        dropped = 0
        for tag in tags:
            for slot_key in list(self._tags.get((partition, tag), ())):
                self._drop(slot_key)
                dropped += 1
        return dropped

    def _drop(self, slot_key: tuple[str, str]) -> None:
        slot = self._slots.pop(slot_key, None)
        if slot is None:
            return
        self.bytes -= slot.size
        for tag in slot.tags:
            members = self._tags.get((slot_key[0], tag))
            if members is not None:
                members.discard(slot_key)
                if not members:
                    del self._tags[(slot_key[0], tag)]


# Store only when no invalidation ran since the lookup (the generation did not move). The
# entry's tags are kept in KEYS[3] so that a later store under the same key first leaves the
# tag sets of the entry it replaces (an invalidation may have dropped that entry but not its
# membership in its other tags' sets). Tag sets live as long as their longest-lived member.
_PUT = """
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[3])
for _, old in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('SREM', ARGV[4] .. old, KEYS[2])
end
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)
for i = 4, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[2])
  redis.call('SADD', KEYS[3], string.sub(KEYS[i], #ARGV[4] + 1))
  if redis.call('TTL', KEYS[i]) < ttl then redis.call('EXPIRE', KEYS[i], ttl) end
end
redis.call('EXPIRE', KEYS[3], ttl)
return 1
"""

# Bump the generation first (a read in flight will not store), then drop every member of
# every tag set, in slices small enough for unpack().
_INVALIDATE = """
redis.call('INCR', KEYS[1])
local dropped = 0
for i = 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 1000 do
    dropped = dropped + redis.call('DEL', unpack(members, j, math.min(j + 999, #members)))
  end
  redis.call('DEL', KEYS[i])
end
return dropped
"""


class RedisResponseStore:
    """Responses in Redis, shared by every worker and host (TTL = maxAge).

    Keys: ``<prefix>{<partition>}:g`` (generation), ``...:e:<key>`` (entries), ``...:k:<key>``
    (an entry's tags) and ``...:t:<tag>`` (tag sets). Every call is one round trip; a failure raises the client's
    error (the caller decides: a failed lookup is a miss, a failed store is skipped).
    """

    def __init__(self, client: Any, prefix: str = "tollgate:rc:") -> None:
        self.client = client
        self.prefix = prefix
        self._put = client.register_script(_PUT)
        self._invalidate = client.register_script(_INVALIDATE)

    def _base(self, partition: str) -> str:
        return f"{self.prefix}{{{partition}}}:"

    async def get(self, partition: str, key: str) -> tuple[CachedResponse | None, int]:
        base = self._base(partition)
        raw, generation = await self.client.mget(base + "e:" + key, base + "g")
        entry = CachedResponse.decode(raw) if raw is not None else None
        return entry, int(generation or 0)

    async def put(
        self,
        partition: str,
        key: str,
        entry: CachedResponse,
        tags: Collection[str],
        generation: int,
    ) -> bool:
        if entry.max_age <= 0:
            return False
        base = self._base(partition)
        tag_keys = [base + "t:" + t for t in sorted({*tags, ALL})]
        keys = [base + "g", base + "e:" + key, base + "k:" + key, *tag_keys]
        args = [str(generation), entry.encode(), entry.max_age, base + "t:"]
        stored = await self._put(keys=keys, args=args)
        return bool(stored)

    async def invalidate(self, partition: str, tags: Collection[str]) -> int:
        base = self._base(partition)
        keys = [base + "g", *(base + "t:" + t for t in sorted(set(tags)))]
        return int(await self._invalidate(keys=keys, args=[]))


class SingleFlight:
    """Concurrent misses of one key execute once: followers wait for the leader's result.

    The leader's result may be ``None`` (nothing to share: an error, a failure); followers
    then execute themselves. A cancelled or failed leader releases its followers the same way.

        flight = SingleFlight()
        shared = await flight.wait(key)          # None: no flight, or nothing shared
        if shared is None:
            async with flight.lead(key) as publish:
                publish(result := await run())
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def wait(self, key: Hashable) -> Any:
        """The result of the flight for ``key`` in progress, else ``None`` at once."""
        future = self._flights.get(key)
        if future is None:
            return None
        return await asyncio.shield(future)

    def lead(self, key: Hashable) -> _Lead:
        """Open the flight for ``key`` (a later ``wait`` joins it until the block ends)."""
        return _Lead(self._flights, key)


class _Lead:
    """The leader's side of a flight: ``open`` it, ``publish`` the result, ``release`` it."""

    __slots__ = ("_flights", "_future", "_key")

    def __init__(self, flights: dict[Hashable, asyncio.Future[Any]], key: Hashable) -> None:
        self._flights = flights
        self._key = key
        self._future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def open(self) -> None:
        self._flights.setdefault(self._key, self._future)

    def publish(self, value: Any) -> None:
        if not self._future.done():
            self._future.set_result(value)

    def release(self) -> None:
        """End the flight; followers still waiting get ``None`` unless a result was published."""
        self.publish(None)
        if self._flights.get(self._key) is self._future:
            del self._flights[self._key]

    async def __aenter__(self) -> Callable[[Any], None]:
        self.open()
        return self.publish

    async def __aexit__(self, *exc: object) -> None:
        self.release()
