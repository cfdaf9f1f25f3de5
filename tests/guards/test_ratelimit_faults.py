"""Fault tests for the Redis rate limiter against a redis-server this module starts and stops."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from guards.ratelimit import BucketPolicy, LimiterUnavailable, RedisRateLimiter
from tests.services import unavailable

POLICY = BucketPolicy("user", capacity=100, restore_rate=0.001)
TIMEOUT = 0.25  # tight enough to prove calls are bounded, loose enough for a loaded CI box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A throwaway redis-server on 127.0.0.1 that can be stopped, paused and restarted."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc is None:
            return
        self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server binary not on PATH (apt-get install redis-server)")
        raise AssertionError("unreachable")
    server = RedisProcess(binary, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def limiter(redis_process: RedisProcess) -> AsyncIterator[RedisRateLimiter]:
    # A plain client with redis-py's defaults (no socket timeouts): the limiter itself must
    # bound every call.
    client = aioredis.Redis(host="127.0.0.1", port=redis_process.port)
    yield RedisRateLimiter(client, prefix="tg:rl:fault:", timeout=TIMEOUT)
    await client.aclose()


async def expect_unavailable_fast(limiter: RedisRateLimiter) -> None:
    """Every operation fails promptly with LimiterUnavailable."""
    calls = [
        lambda: limiter.debit("k", 1, POLICY),
        lambda: limiter.debit_all([("k", POLICY), ("t", POLICY)], 1),
        lambda: limiter.refund("k", 1, POLICY),
        lambda: limiter.peek("k", POLICY),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable):
            await call()
        assert time.monotonic() - started < 1.0


async def debit_when_back(limiter: RedisRateLimiter, cost: int) -> int:
    """Retry a debit until Redis answers again (bounded); returns the remaining points."""
    deadline = time.monotonic() + 10
    while True:
        try:
            decision = await limiter.debit("k", cost, POLICY)
        except LimiterUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        assert decision.allowed
        return decision.remaining


async def test_redis_down_fails_fast_and_recovers_by_itself(
    redis_process: RedisProcess, limiter: RedisRateLimiter
) -> None:
    assert (await limiter.debit("k", 10, POLICY)).remaining == 90

    redis_process.stop()
    await expect_unavailable_fast(limiter)

    redis_process.start()  # same port, empty data, empty script cache
    # The same limiter and client reconnect and reload the script (NOSCRIPT fallback).
    assert await debit_when_back(limiter, 10) == 90
    assert (await limiter.debit("k", 10, POLICY)).remaining == 80


async def test_redis_hung_fails_within_the_timeout_and_recovers(
    redis_process: RedisProcess, limiter: RedisRateLimiter
) -> None:
    assert (await limiter.debit("k", 10, POLICY)).remaining == 90

    redis_process.pause()  # accepts TCP but never answers
    try:
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable):
            await limiter.debit("k", 10, POLICY)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0
        assert elapsed >= TIMEOUT * 0.9
        await expect_unavailable_fast(limiter)
    finally:
        redis_process.resume()

    # Timed-out debits may still have been applied once Redis resumed (over-charging is the
    # safe direction); later answers must belong to later calls, never to stale requests.
    remaining = await debit_when_back(limiter, 1)
    assert remaining < 90
    follow_up = await limiter.debit("k", 1, POLICY)
    assert follow_up.remaining == remaining - 1
    assert (await limiter.peek("k", POLICY)).remaining == remaining - 1


async def test_script_cache_flush_is_recovered(
    redis_process: RedisProcess, limiter: RedisRateLimiter
) -> None:
    await limiter.debit("k", 10, POLICY)
    admin = aioredis.Redis(host="127.0.0.1", port=redis_process.port)
    try:
        await admin.script_flush()
    finally:
        await admin.aclose()
    assert (await limiter.debit("k", 10, POLICY)).remaining == 80


async def test_one_evalsha_round_trip_per_decision(
    redis_process: RedisProcess, limiter: RedisRateLimiter
) -> None:
    admin = aioredis.Redis(host="127.0.0.1", port=redis_process.port)
    try:
        await limiter.debit("k", 1, POLICY)  # loads the script
        await admin.config_resetstat()
        for _ in range(20):
            await limiter.debit("k", 1, POLICY)
        await limiter.debit_all([("k", POLICY), ("t", POLICY), ("w", POLICY)], 1)
        await limiter.refund("k", 5, POLICY)
        stats = await admin.info("commandstats")
    finally:
        await admin.aclose()
    assert stats["cmdstat_evalsha"]["calls"] == 22
    assert "cmdstat_eval" not in stats
    assert "cmdstat_script|load" not in stats


async def test_idle_bucket_keys_carry_a_ttl(
    redis_process: RedisProcess, limiter: RedisRateLimiter
) -> None:
    policy = BucketPolicy("burst", capacity=10, restore_rate=5)
    admin = aioredis.Redis(host="127.0.0.1", port=redis_process.port)
    try:
        await admin.ping()
        started = time.monotonic()
        decision = await limiter.debit("k", 4, policy)
        ttl = await admin.pttl(limiter.storage_key("k", policy))
        elapsed = time.monotonic() - started
    finally:
        await admin.aclose()
    assert decision.reset_after == 0.8
    # The key lives exactly as long as the bucket needs to fill up again.
    assert 0.8 - elapsed - 0.002 <= ttl / 1000 <= 0.8


async def test_from_url_limiter_handles_bursts_beyond_the_default_pool(
    redis_process: RedisProcess,
) -> None:
    limiter = RedisRateLimiter.from_url(
        f"redis://127.0.0.1:{redis_process.port}/0", prefix="tg:rl:burst:", timeout=10.0
    )
    try:
        policy = BucketPolicy("user", capacity=150, restore_rate=0.001)
        results = await asyncio.gather(*(limiter.debit("hot", 1, policy) for _ in range(300)))
    finally:
        await limiter.close()
    assert sum(d.allowed for d in results) == 150
