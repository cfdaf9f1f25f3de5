"""Dependency faults: which exceptions mean "database or Redis down", and how to answer them.

Nothing here touches ASGI. The endpoint uses it in three places:

* ``GraphQLEndpoint.run`` catches an exception escaping the operation (the registry's SQL
  store, say) and answers 503 ``SERVICE_UNAVAILABLE`` when :func:`is_database_unavailable`;
  anything else still propagates;
* :func:`unavailable_item` (used by ``pipeline.format_execution_errors``) turns a
  resolver error caused by a database outage into ``SERVICE_UNAVAILABLE`` instead of a masked
  ``INTERNAL_SERVER_ERROR``;
* :func:`unavailable_status` makes the answer 503 with ``Retry-After`` when nothing was
  served and every error is ``SERVICE_UNAVAILABLE``.

The breakers themselves are ``guards.breaker.CircuitBreaker`` instances, one per process and
dependency, created by ``create_app``: the database one is handed to every ``RequestDb``, the
Redis one wraps the rate limiter in :class:`GuardedLimiter`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guards.breaker import OPEN, CircuitBreaker, State
from guards.ratelimit import BucketPolicy, Decision, LimiterUnavailable, MultiDecision, RateLimiter
from loaders.session import DatabaseUnavailable, is_database_unavailable

__all__ = [
    "SERVICE_UNAVAILABLE",
    "DatabaseUnavailable",
    "GuardedLimiter",
    "dependency_breaker",
    "is_database_unavailable",
    "is_redis_unavailable",
    "log_state_change",
    "retry_after_seconds",
    "unavailable_error",
    "unavailable_item",
    "unavailable_status",
]

SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"

log = logging.getLogger("tollgate.faults")

_T = TypeVar("_T")


def is_redis_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis is unreachable (refused, reset, timed out, still loading)."""
    return isinstance(
        exc,
        (
            LimiterUnavailable,
            RedisConnectionError,
            RedisTimeoutError,
            BusyLoadingError,
            ConnectionError,
            TimeoutError,
        ),
    )


def retry_after_seconds(seconds: float | None) -> int:
    """A Retry-After value: whole seconds, at least 1."""
    if seconds is None or not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(seconds))


def unavailable_error(dependency: str, retry_after: float | None = None) -> dict[str, Any]:
    """The GraphQL error for an unreachable dependency ("database", "rate limiter", ...)."""
    retry = retry_after_seconds(retry_after)
    return {
        "message": f"The {dependency} is unavailable; try again in {retry} s.",
        "extensions": {"code": SERVICE_UNAVAILABLE, "retryAfter": retry},
    }


def unavailable_item(original: BaseException | None, item: dict[str, Any]) -> dict[str, Any] | None:
    """The caller-facing form of an execution error caused by a database outage, else None.

    ``item`` is the graphql-core formatted error (message, locations, path); the outage keeps
    its path and locations so the client sees which field went unserved.
    """
    if original is None or not is_database_unavailable(original):
        return None
    retry_after = original.retry_after if isinstance(original, DatabaseUnavailable) else None
    error = unavailable_error("database", retry_after)
    for key in ("locations", "path"):
        if item.get(key) is not None:
            error[key] = item[key]
    return error


def unavailable_status(
    data: Any, errors: Sequence[dict[str, Any]] | None
) -> tuple[int, dict[str, str]] | None:
    """``(503, {"Retry-After": n})`` when nothing was served because a dependency is down.

    That is: ``data`` is null and every error is ``SERVICE_UNAVAILABLE``. A partial answer
    (some fields served) stays 200, as GraphQL-over-HTTP asks.
    """
    if data is not None or not errors:
        return None
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    if any(code != SERVICE_UNAVAILABLE for code in codes):
        return None
    retry = max(retry_after_seconds((e.get("extensions") or {}).get("retryAfter")) for e in errors)
    return 503, {"Retry-After": str(retry)}


def dependency_breaker(
    name: str,
    *,
    failure_threshold: int = 5,
    window_seconds: float = 10,
    reset_timeout: float = 2.0,
) -> CircuitBreaker:
    """The process's breaker for one dependency ("database", "redis"), logging its changes."""
    return CircuitBreaker(
        name,
        failure_threshold=failure_threshold,
        window_seconds=window_seconds,
        reset_timeout=reset_timeout,
        on_state_change=log_state_change,
    )


def log_state_change(name: str, old: State, new: State) -> None:
    """``on_state_change`` for breakers: one warning (open) or info (recovering) line."""
    level = logging.WARNING if new == "open" else logging.INFO
    log.log(level, "circuit breaker %s: %s -> %s", name, old, new)


class GuardedLimiter:
    """A rate limiter behind a circuit breaker: while Redis keeps failing, refuse at once.

    Refusals raise ``LimiterUnavailable``, so the pipeline's fail-open/fail-closed policy
    applies unchanged; only the wait for a timeout per request is gone.

        limiter = GuardedLimiter(RedisRateLimiter.from_url(url), CircuitBreaker("redis"))
    """

    def __init__(self, inner: RateLimiter, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def _refused(self) -> LimiterUnavailable:
        return LimiterUnavailable(
            f"circuit {self.breaker.name!r} is open; retry in {self.breaker.retry_after:.2f} s"
        )

    async def _guard(self, call: Callable[[], Awaitable[_T]]) -> _T:
        if not self.breaker.allow():
            raise self._refused()
        try:
            result = await call()
        except Exception as exc:
            if is_redis_unavailable(exc):
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return result

    async def debit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], cost: int
    ) -> MultiDecision:
        """Take ``cost`` points from every bucket, or from none if any refuses."""
        return await self._guard(lambda: self.inner.debit_all(keys_and_policies, cost))

    async def credit_all(
        self, keys_and_policies: Sequence[tuple[str, BucketPolicy]], amount: int
    ) -> MultiDecision | None:
        """Give ``amount`` points back to every bucket (dropped while the circuit is open:
        the buckets then stay over-charged, the safe direction)."""
        if self.breaker.state == OPEN:
            return None
        return await self.inner.credit_all(keys_and_policies, amount)

    async def peek(self, key: str, policy: BucketPolicy) -> Decision:
        """Report the bucket's state without changing it."""
        return await self._guard(lambda: self.inner.peek(key, policy))

    async def close(self) -> None:
        """Close the wrapped limiter."""
        await self.inner.close()
