"""UUIDv7 identifiers (RFC 9562): time-ordered primary keys, reproducible when seeded."""

from __future__ import annotations

import os
import random
import time
import uuid

import uuid_utils.compat

_MAX_TS_MS = (1 << 48) - 1


def uuid7(rng: random.Random | None = None, ts_ms: int | None = None) -> uuid.UUID:
    """Return an RFC 9562 UUIDv7; deterministic when both ``rng`` and ``ts_ms`` are given.

    Args:
        rng: source of the 74 random bits; ``None`` uses the operating system's randomness.
        ts_ms: Unix time in milliseconds for the 48-bit timestamp; ``None`` uses the clock.
    """
    if rng is None and ts_ms is None:
        return uuid_utils.compat.uuid7()
    if ts_ms is None:
        ts_ms = time.time_ns() // 1_000_000
    if not 0 <= ts_ms <= _MAX_TS_MS:
        raise ValueError(f"ts_ms must fit in 48 bits, got {ts_ms}")
    if rng is None:
        rand = int.from_bytes(os.urandom(10), "big")
        rand_a, rand_b = rand >> 68, rand & ((1 << 62) - 1)
    else:
        rand_a, rand_b = rng.getrandbits(12), rng.getrandbits(62)
    value = (ts_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def new_id() -> uuid.UUID:
    """Return a fresh UUIDv7 for a new row."""
    return uuid_utils.compat.uuid7()


def uuid7_timestamp_ms(value: uuid.UUID) -> int:
    """Return the Unix millisecond timestamp stored in a UUIDv7."""
    return value.int >> 80
