"""The bounded LRU cache used for documents, validation results and cost plans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    assert cache.stats() == {
        "size": 2,
        "maxsize": 2,
        "bytes": 2,
        "hits": 3,
        "misses": 1,
        "evictions": 1,
    }


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


@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5_000)), min_size=1, max_size=200),
    st.integers(1, 20),
    st.integers(1, 10_000),
)
def test_bounded_in_entries_and_in_bytes(
    puts: list[tuple[int, int]], maxsize: int, maxbytes: int
) -> None:
    cache: LRUCache[int] = LRUCache(maxsize, maxbytes)
    for key, size in puts:
        cache.put(key, size, size=size)
        assert len(cache) <= maxsize and cache.bytes <= maxbytes
        if size <= maxbytes:
            assert key in cache  # the newest entry that fits is always kept
    cache.clear()
    assert cache.bytes == 0


def test_a_value_larger_than_the_byte_bound_is_not_stored() -> None:
    cache: LRUCache[str] = LRUCache(10, maxbytes=100)
    cache.put("small", "s", size=10)
    cache.put("huge", "h", size=1_000)
    assert "huge" not in cache and "small" in cache and cache.bytes == 10
