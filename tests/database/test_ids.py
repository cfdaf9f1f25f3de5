"""UUIDv7 generation."""

from __future__ import annotations

import random
import time
import uuid

from database.ids import new_id, uuid7, uuid7_timestamp_ms


def test_seeded_uuid7_is_reproducible() -> None:
    first = [uuid7(random.Random(42), 1_700_000_000_000 + i) for i in range(5)]
    second = [uuid7(random.Random(42), 1_700_000_000_000 + i) for i in range(5)]
    assert first == second
    assert uuid7(random.Random(1), 1) != uuid7(random.Random(2), 1)


def test_uuid7_layout_follows_rfc_9562() -> None:
    rng = random.Random(0)
    for value in [uuid7(rng, 1_717_171_717_171), uuid7(), new_id(), uuid7(ts_ms=5)]:
        assert isinstance(value, uuid.UUID)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
    assert uuid7_timestamp_ms(uuid7(rng, 1_717_171_717_171)) == 1_717_171_717_171


def test_uuid7_orders_by_timestamp() -> None:
    rng = random.Random(3)
    values = [uuid7(rng, ts) for ts in (10, 11, 500, 10**12)]
    assert values == sorted(values)
    assert str(values[0]).startswith("00000000-000a-7")


def test_new_ids_are_unique_and_current() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(before - 1 <= uuid7_timestamp_ms(value) <= after + 1 for value in ids)
