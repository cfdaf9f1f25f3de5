"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from guards.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpen


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **kwargs: float) -> CircuitBreaker:
    options: dict[str, float] = {"failure_threshold": 3, "window_seconds": 10, "reset_timeout": 2}
    options.update(kwargs)
    return CircuitBreaker("db", clock=clock, **options)  # type: ignore[arg-type]


def test_closed_breaker_lets_every_call_through(clock: FakeClock) -> None:
    breaker = make(clock)
    assert breaker.state == CLOSED
    assert all(breaker.allow() for _ in range(100))


def test_threshold_failures_within_the_window_open_it(clock: FakeClock) -> None:
    breaker = make(clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    assert not breaker.allow()
    assert breaker.retry_after == pytest.approx(2.0)


def test_failures_older_than_the_window_do_not_count(clock: FakeClock) -> None:
    breaker = make(clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(10.5)
    breaker.record_failure()
    assert breaker.state == CLOSED
    assert breaker.failure_count == 1


def test_a_success_forgets_earlier_failures(clock: FakeClock) -> None:
    breaker = make(clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED


def test_open_turns_half_open_after_the_reset_timeout_and_lets_one_probe(
    clock: FakeClock,
) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(1.5)
    assert not breaker.allow()
    assert breaker.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert breaker.state == HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for the probe's verdict
    assert not breaker.allow()


def test_successful_probe_closes_it(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(2)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED
    assert all(breaker.allow() for _ in range(10))
    # It starts counting from zero again.
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED


def test_failed_probe_opens_it_for_another_timeout(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(2)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    assert breaker.retry_after == pytest.approx(2.0)
    clock.advance(1.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_a_probe_that_never_reports_is_replaced_after_the_timeout(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(2)
    assert breaker.allow()
    clock.advance(1)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_release_frees_the_probe_slot(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(2)
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_stragglers_do_not_move_an_open_breaker(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(1)
    breaker.record_success()  # a call that started before the breaker opened
    assert breaker.state == OPEN
    breaker.record_failure()  # does not extend the open period
    clock.advance(1)
    assert breaker.state == HALF_OPEN


def test_state_changes_are_reported(clock: FakeClock) -> None:
    seen: list[tuple[str, str, str]] = []
    breaker = CircuitBreaker(
        "redis",
        failure_threshold=1,
        reset_timeout=1,
        clock=clock,
        on_state_change=lambda *change: seen.append(change),
    )
    breaker.record_failure()
    clock.advance(1)
    assert breaker.allow()
    breaker.record_success()
    assert seen == [
        ("redis", CLOSED, OPEN),
        ("redis", OPEN, HALF_OPEN),
        ("redis", HALF_OPEN, CLOSED),
    ]


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", reset_timeout=0)


async def test_call_raises_circuit_open_with_retry_after_without_calling(
    clock: FakeClock,
) -> None:
    breaker = make(clock)
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError("down")

    for _ in range(3):
        with pytest.raises(ConnectionRefusedError):
            await breaker.call(broken)
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen) as refused:
        await breaker.call(broken)
    assert calls == 3
    assert refused.value.retry_after == pytest.approx(2.0)
    assert refused.value.name == "db"


async def test_call_counts_only_what_is_failure_says(clock: FakeClock) -> None:
    breaker = make(clock)

    async def constraint_violation() -> None:
        raise KeyError("duplicate")

    for _ in range(10):
        with pytest.raises(KeyError):
            await breaker.call(
                constraint_violation, is_failure=lambda exc: isinstance(exc, OSError)
            )
    assert breaker.state == CLOSED


async def test_call_returns_the_result_and_closes_a_half_open_breaker(
    clock: FakeClock,
) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(2)

    async def fetch() -> int:
        return 42

    assert await breaker.call(fetch) == 42
    assert breaker.state == CLOSED


async def test_cancelled_probe_frees_the_slot(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(2)
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(breaker.call(slow))
    await started.wait()
    assert not breaker.allow()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state == HALF_OPEN
    assert breaker.allow()


async def test_guard_context_manager_records_outcomes(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    for _ in range(2):
        with pytest.raises(OSError):
            async with breaker.guard():
                raise OSError("connection reset")
    with pytest.raises(CircuitOpen):
        async with breaker.guard():
            raise AssertionError("must not run")
    clock.advance(2)
    async with breaker.guard():
        pass
    assert breaker.state == CLOSED
