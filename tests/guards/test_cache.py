"""The bounded LRU cache used for documents, validation results and cost plans."""

from __future__ import annotations

import pytest

from guards.cache import LRUCache


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LRUCache[int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2
    assert cache.stats() == {"size": 2, "maxsize": 2, "hits": 3, "misses": 1, "evictions": 1}


def test_put_replaces_without_growing() -> None:
    cache: LRUCache[str] = LRUCache(2)
    cache.put("k", "old")
    cache.put("k", "new")
    assert (len(cache), cache.get("k")) == (1, "new")
    cache.clear()
    assert len(cache) == 0


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LRUCache(0)
