"""Microseconds per rate-limit debit + refund, in memory and in Redis.

Usage: .venv/bin/python -m bench.bench_ratelimit [--redis-url URL] [-n 5000] [--keys 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from guards.ratelimit import (
    BucketPolicy,
    LimiterUnavailable,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)

USER = BucketPolicy("user", capacity=1000, restore_rate=50)
TENANT = BucketPolicy("tenant", capacity=20_000, restore_rate=1000)
WRITE = BucketPolicy("write", capacity=200, restore_rate=10)


async def measure(
    limiter: RateLimiter, n: int, keys: int, multi: bool
) -> tuple[float, float, float]:
    """Median, p99 and mean microseconds for one debit (cost 20) plus credit (12)."""
    samples = []
    for i in range(n):
        key = f"t{i % 7}:u{i % keys}"
        started = time.perf_counter()
        items = [(key, USER), (f"t{i % 7}", TENANT), (key, WRITE)] if multi else [(key, USER)]
        await limiter.debit_all(items, 20)
        await limiter.credit_all(items, 12)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return (
        statistics.median(samples),
        samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        statistics.fmean(samples),
    )


async def main() -> None:
    """Run the benchmark and print one line per backend and mode."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("-n", type=int, default=5000, help="debit+refund pairs per run")
    parser.add_argument("--keys", type=int, default=200, help="distinct subjects")
    args = parser.parse_args()

    limiters: list[tuple[str, RateLimiter]] = [("memory", MemoryRateLimiter())]
    prefix = f"tg:rl:bench:{uuid.uuid4().hex}:"
    redis_limiter = RedisRateLimiter.from_url(args.redis_url, prefix=prefix, timeout=1.0)
    try:
        await redis_limiter.peek("probe", USER)
        limiters.append(("redis", redis_limiter))
    except LimiterUnavailable as exc:
        print(f"redis skipped: {exc}")

    print(f"{'backend':8} {'mode':20} {'median us':>10} {'p99 us':>10} {'mean us':>10}")
    try:
        for name, limiter in limiters:
            for multi in (False, True):
                await measure(limiter, min(500, args.n), args.keys, multi)  # warm-up
                median, p99, mean = await measure(limiter, args.n, args.keys, multi)
                mode = "debit_all x3+refund" if multi else "debit+refund"
                print(f"{name:8} {mode:20} {median:10.1f} {p99:10.1f} {mean:10.1f}")
    finally:
        if len(limiters) > 1:
            client = redis_limiter.client
            keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
        await redis_limiter.close()


if __name__ == "__main__":
    asyncio.run(main())
