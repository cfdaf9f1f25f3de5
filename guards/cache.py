"""A small LRU cache bounded in entries and in bytes, for prepared documents and plans."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["LRUCache"]

V = TypeVar("V")


class LRUCache(Generic[V]):
    """Least-recently-used cache with O(1) get/put and hit/miss counters, bounded by
    ``maxsize`` entries and by ``maxbytes``, the sum of the sizes given to :meth:`put`.

    Safe for asyncio (no awaits inside; each method completes before another task runs).
    Keys should be small (a digest, not the text they stand for): the key is not counted.

        plans: LRUCache[CostPlan] = LRUCache(maxsize=1000, maxbytes=8_000_000)
        plan = plans.get(key)
        if plan is None:
            plans.put(key, plan := model.compile(document, name), size=len(text))
    """

    def __init__(self, maxsize: int, maxbytes: int | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if maxbytes is not None and maxbytes < 1:
            raise ValueError("maxbytes must be at least 1")
        self.maxsize = maxsize
        self.maxbytes = maxbytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        """Return the value for ``key`` (marking it recently used), else ``default``."""
        try:
            value = self._data[key]
        except KeyError:
            self.misses += 1
            return default
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: V, size: int = 1) -> None:
        """Store ``value`` (``size`` bytes) under ``key``, evicting least recently used entries
        while over either bound; a value larger than ``maxbytes`` alone is not stored."""
        data = self._data
        size = max(0, size)
        if self.maxbytes is not None and size > self.maxbytes:
            if key in data:
                self._drop(key)
            return
        if key in data:
            data.move_to_end(key)
            self.bytes -= self._sizes[key]
        data[key] = value
        self._sizes[key] = size
        self.bytes += size
        while len(data) > self.maxsize or (
            self.maxbytes is not None and self.bytes > self.maxbytes
        ):
            oldest = next(iter(data))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: Hashable) -> None:
        del self._data[key]
        self.bytes -= self._sizes.pop(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        self._data.clear()
        self._sizes.clear()
        self.bytes = 0

    def stats(self) -> dict[str, int]:
        """Counters for metrics: size, maxsize, bytes, hits, misses, evictions."""
        return {
            "size": len(self._data),
            "maxsize": self.maxsize,
            "bytes": self.bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }
