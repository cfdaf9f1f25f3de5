"""A circuit breaker: after repeated failures of a dependency, refuse at once for a while.

Closed, it lets every call through and remembers recent failures; ``failure_threshold``
failures within ``window_seconds`` (with no success in between) open it. Open, it refuses
every call for ``reset_timeout`` seconds, so callers answer "unavailable" at once instead of
piling up timeouts. Then it turns half-open and lets exactly one probe call through: success
closes it, failure opens it for another ``reset_timeout``.

    breaker = CircuitBreaker("database", failure_threshold=5, reset_timeout=2.0)
    try:
        rows = await breaker.call(lambda: fetch_rows(), is_failure=is_connection_error)
    except CircuitOpen as exc:
        ...  # 503 SERVICE_UNAVAILABLE with Retry-After: ceil(exc.retry_after)

The breaker is meant for one event loop (one process); it takes no locks.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal, TypeVar

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitOpen", "State"]

State = Literal["closed", "open", "half-open"]
CLOSED: State = "closed"
OPEN: State = "open"
HALF_OPEN: State = "half-open"

_T = TypeVar("_T")


def _always(exc: BaseException) -> bool:
    return True


class CircuitOpen(Exception):
    """The breaker refused the call; ``retry_after`` is the time (s) until it lets a probe in."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.2f} s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    """Closed / open / half-open breaker for one dependency.

    Args:
        name: the dependency, for messages and logs ("database", "redis").
        failure_threshold: failures within ``window_seconds`` that open the breaker.
        window_seconds: how long a failure counts; a success also forgets earlier failures.
        reset_timeout: seconds the breaker stays open before letting one probe through.
        clock: monotonic seconds; tests pass a fake.
        on_state_change: called with ``(name, old_state, new_state)`` on every transition.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        window_seconds: float = 10,
        reset_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[str, State, State], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if window_seconds <= 0 or reset_timeout <= 0:
            raise ValueError("window_seconds and reset_timeout must be positive")
        self.name = name
        self.failure_threshold = failure_threshold
        self.window_seconds = float(window_seconds)
        self.reset_timeout = float(reset_timeout)
        self._clock = clock
        self._on_state_change = on_state_change
        self._state: State = CLOSED
        self._failures: collections.deque[float] = collections.deque()
        self._opened_at = 0.0
        # When the half-open probe was let through; None while no probe is in flight.
        self._probe_started: float | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state; an open breaker whose timeout has passed reports half-open."""
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout:
            self._transition(HALF_OPEN)
            self._probe_started = None
        return self._state

    @property
    def retry_after(self) -> float:
        """Seconds until the breaker lets a call through again (0 when it would now)."""
        state = self.state
        now = self._clock()
        if state == OPEN:
            return max(0.0, self._opened_at + self.reset_timeout - now)
        if state == HALF_OPEN and self._probe_started is not None:
            # The probe may never report (cancelled caller): another is let in after this.
            return max(0.0, self._probe_started + self.reset_timeout - now)
        return 0.0

    @property
    def failure_count(self) -> int:
        """Failures still inside the window (closed state)."""
        self._expire(self._clock())
        return len(self._failures)

    # -- the protocol -----------------------------------------------------------------------

    def allow(self) -> bool:
        """Whether a call may go ahead now. In half-open, only one probe at a time gets True."""
        state = self.state
        if state == CLOSED:
            return True
        if state == OPEN:
            return False
        now = self._clock()
        if self._probe_started is None or now - self._probe_started >= self.reset_timeout:
            self._probe_started = now
            return True
        return False

    def record_success(self) -> None:
        """The dependency answered: forget failures; a half-open breaker closes."""
        state = self.state
        if state == OPEN:
            # A straggler that started before the breaker opened proves little.
            return
        self._failures.clear()
        self._probe_started = None
        if state == HALF_OPEN:
            self._transition(CLOSED)

    def record_failure(self) -> None:
        """The dependency failed: count it; at the threshold (or in half-open) the breaker opens."""
        state = self.state
        now = self._clock()
        if state == OPEN:
            return
        if state == HALF_OPEN:
            self._open(now)
            return
        self._failures.append(now)
        self._expire(now)
        if len(self._failures) >= self.failure_threshold:
            self._open(now)

    def release(self) -> None:
        """Forget a call that neither succeeded nor failed (cancelled): frees the probe slot."""
        if self._state == HALF_OPEN:
            self._probe_started = None

    def reset(self) -> None:
        """Close the breaker and forget everything (operator action, tests)."""
        self._failures.clear()
        self._probe_started = None
        self._transition(CLOSED)

    # -- helpers ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def guard(
        self, is_failure: Callable[[BaseException], bool] = _always
    ) -> AsyncIterator[None]:
        """Run the block under the breaker: ``CircuitOpen`` if refused, outcome recorded.

        An exception for which ``is_failure`` is False (say, a constraint violation) means
        the dependency did answer, so it counts as a success and is re-raised unchanged.
        """
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_after)
        try:
            yield
        except Exception as exc:
            self._settle(exc, is_failure)
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()

    async def call(
        self,
        fn: Callable[[], Awaitable[_T]],
        *,
        is_failure: Callable[[BaseException], bool] = _always,
    ) -> _T:
        """Await ``fn()`` under the breaker (see :meth:`guard`); ``CircuitOpen`` if refused."""
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_after)
        try:
            result = await fn()
        except Exception as exc:
            self._settle(exc, is_failure)
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()
        return result

    # -- internals --------------------------------------------------------------------------

    def _settle(self, exc: Exception, is_failure: Callable[[BaseException], bool]) -> None:
        if is_failure(exc):
            self.record_failure()
        else:
            self.record_success()

    def _expire(self, now: float) -> None:
        horizon = now - self.window_seconds
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._failures.clear()
        self._probe_started = None
        self._transition(OPEN)

    def _transition(self, new: State) -> None:
        old, self._state = self._state, new
        if old != new and self._on_state_change is not None:
            self._on_state_change(self.name, old, new)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r})"
