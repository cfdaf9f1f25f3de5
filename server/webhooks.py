"""The webhook delivery worker: one per server process, started and stopped by the lifespan.

Each round it finds the tenants with due deliveries, claims a batch per tenant (see
``resolvers.webhook_delivery``), and POSTs them: an endpoint's deliveries one after another
in the order they were written (so a healthy receiver sees events in commit order), several
endpoints at once. Each POST is signed (``auth.webhooks``), has a bounded timeout, follows no
redirect, and connects only to an address the egress policy allowed AFTER resolving the name
(``auth.egress``): the resolution happens inside the connection step itself, so the address
checked is the address connected to.

Shutdown stops claiming, lets attempts in flight finish for a grace period, cancels the rest
and releases their claims, so nothing stays claimed until its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.egress import EgressGuard, UnsafeTarget
from auth.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header
from database.models import utcnow
from observability import Metrics
from resolvers import webhook_delivery as store
from resolvers.webhook_delivery import Attempt, Job, RetryPolicy

log = structlog.get_logger("tollgate.webhooks")
errors_log = logging.getLogger("tollgate.webhooks")

# connect(address, port, timeout, local_address, socket_options) -> a network stream
Connect = Callable[..., Awaitable[httpcore.AsyncNetworkStream]]
USER_AGENT = b"Tollgate-Webhooks/1"


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network step with the egress check: resolve, check, connect to that address.

    TLS still verifies the certificate for the URL's host name (httpcore passes it as
    ``server_hostname``), so pinning the address weakens nothing.
    """

    def __init__(self, guard: EgressGuard, connect: Connect | None = None) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()
        self._connect = connect or self._inner.connect_tcp

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self._guard.resolve(host, port)
        return await self._connect(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTarget("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Sender:
    """Signs and POSTs one delivery; never raises (the outcome is an ``Attempt``)."""

    def __init__(
        self,
        guard: EgressGuard,
        *,
        timeout: float = 10.0,
        connect: Connect | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.guard = guard
        self.timeout = timeout
        self._backend = PinnedBackend(guard, connect)
        self._ssl = ssl_context or ssl.create_default_context()
        self._clock = clock

    def headers(self, job: Job) -> list[tuple[bytes, bytes]]:
        timestamp = int(self._clock())
        return [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT),
            (
                SIGNATURE_HEADER.encode(),
                signature_header(job.secrets, timestamp, job.payload).encode(),
            ),
            (EVENT_ID_HEADER.encode(), str(job.event_id).encode()),
            (b"Tollgate-Topic", job.topic.encode()),
        ]

    async def send(self, job: Job) -> Attempt:
        try:
            self.guard.parse(job.url)  # the policy may be stricter than at registration
            # A pool per delivery: the name is resolved and checked for every delivery, and a
            # kept-alive connection never outlives the check that admitted it.
            async with (
                httpcore.AsyncConnectionPool(
                    ssl_context=self._ssl,
                    max_connections=1,
                    retries=0,
                    network_backend=self._backend,
                ) as pool,
                asyncio.timeout(self.timeout),
                pool.stream(
                    "POST",
                    job.url,
                    headers=self.headers(job),
                    content=job.payload,
                    extensions={
                        "timeout": {
                            "connect": self.timeout,
                            "read": self.timeout,
                            "write": self.timeout,
                            "pool": self.timeout,
                        }
                    },
                ) as response,
            ):
                # The body is never read: only the status matters, and a receiver cannot
                # make the worker download anything.
                status = response.status
        except UnsafeTarget as unsafe:
            return Attempt(error=f"refused: {unsafe.reason}")
        except (TimeoutError, httpcore.TimeoutException):
            return Attempt(error=f"timed out after {self.timeout:g} s")
        except httpcore.UnsupportedProtocol as exc:
            return Attempt(error=f"unsupported URL: {exc}")
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            return Attempt(error=f"connection failed: {type(exc).__name__}")
        except Exception as exc:
            # Anything else is still this attempt's failure: recorded and retried, never a
            # delivery left claimed by a crashed round.
            errors_log.exception("unexpected error sending webhook delivery %s", job.delivery_id)
            return Attempt(error=f"failed: {type(exc).__name__}")
        if 300 <= status < 400:
            return Attempt(status_code=status, error=f"HTTP {status}: redirects are not followed")
        if not 200 <= status < 300:
            return Attempt(status_code=status, error=f"HTTP {status}")
        return Attempt(status_code=status)


class WebhookWorker:
    """Claims due deliveries and sends them, until stopped.

    Example:
        worker = WebhookWorker(engine, Sender(guard), RetryPolicy())
        worker.start()
        ...
        await worker.stop()
    """

    def __init__(
        self,
        engine: AsyncEngine,
        sender: Sender,
        policy: RetryPolicy,
        *,
        poll_seconds: float = 1.0,
        batch: int = 20,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
        retention_seconds: float = 30 * 24 * 3600.0,
        prune_every_seconds: float = 3600.0,
        now: Callable[[], dt.datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.sender = sender
        self.policy = policy
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.metrics = metrics
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:16]}"
        self._now = now
        self._rng = rng
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held: dict[uuid.UUID, Job] = {}
        self.retention_seconds = retention_seconds
        self.prune_every_seconds = prune_every_seconds
        self._pruned_at: float | None = None

    def start(self) -> None:
        """Start the loop in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="webhook-worker")

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; wait up to ``grace`` seconds (default: the send timeout) for attempts
        in flight, cancel what is left and release its claims."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            wait = self.sender.timeout + 1 if grace is None else grace
            done, _ = await asyncio.wait({task}, timeout=wait)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._release()

    async def _release(self) -> None:
        held, self._held = list(self._held.values()), {}
        if held:
            try:
                released = await store.release(self.engine, held, self.worker_id)
            except Exception:
                errors_log.exception("releasing webhook claims failed; their leases expire")
                return
            log.info("webhook.released", worker=self.worker_id, released=released)

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                done = await self.run_once()
                if (
                    self._pruned_at is None
                    or time.monotonic() - self._pruned_at >= self.prune_every_seconds
                ):
                    self._pruned_at = time.monotonic()
                    await self.prune()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                errors_log.exception("webhook worker round failed")
                done = 0
            if done == 0 or failures:
                delay = self.poll_seconds * min(2**failures, 30)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    async def prune(self) -> int:
        """Delete ended deliveries older than the retention (every tenant); returns the count."""
        now, deleted = self._now(), 0
        for tenant_id in await store.tenant_ids(self.engine):
            deleted += await store.prune(self.engine, tenant_id, now, self.retention_seconds)
        if deleted:
            log.info("webhook.pruned", deliveries=deleted, worker=self.worker_id)
        return deleted

    async def run_once(self) -> int:
        """One round: claim what is due (one batch per tenant) and send it; returns the count."""
        now = self._now()
        jobs: list[Job] = []
        for tenant_id in await store.tenants_with_due_work(self.engine, now):
            if self._stopping.is_set():
                break
            claimed = await store.claim(
                self.engine,
                tenant_id,
                self.worker_id,
                now,
                limit=self.batch,
                lease_seconds=self.policy.lease_seconds,
            )
            for job in claimed:
                self._held[job.delivery_id] = job
            jobs.extend(claimed)
        by_endpoint: dict[uuid.UUID, list[Job]] = {}
        for job in jobs:
            by_endpoint.setdefault(job.endpoint_id, []).append(job)
        results = await asyncio.gather(
            *(self._deliver_in_order(queue) for queue in by_endpoint.values()),
            return_exceptions=True,
        )
        for result in results:
            # A failure to record (the database went away) leaves that claim to its lease.
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            if isinstance(result, Exception):
                errors_log.error("recording a webhook attempt failed", exc_info=result)
        return len(jobs)

    async def _deliver_in_order(self, queue: list[Job]) -> None:
        for job in queue:
            if self._stopping.is_set():
                return  # the rest is released by stop()
            await self.deliver(job)

    async def deliver(self, job: Job) -> str:
        """Send one claimed delivery and record the outcome (one log line per attempt)."""
        started = time.perf_counter()
        attempt = await self.sender.send(job)
        seconds = time.perf_counter() - started
        try:
            outcome = await store.record(
                self.engine, job, self.worker_id, attempt, self._now(), self.policy, self._rng
            )
        finally:
            self._held.pop(job.delivery_id, None)
        log.info(
            "webhook.attempt",
            delivery_id=str(job.delivery_id),
            event_id=str(job.event_id),
            endpoint_id=str(job.endpoint_id),
            tenant_id=str(job.tenant_id),
            topic=job.topic,
            attempt=job.attempts + 1,
            status_code=attempt.status_code,
            error=attempt.error,
            outcome=outcome,
            duration_ms=round(seconds * 1000, 2),
            worker=self.worker_id,
        )
        if self.metrics is not None:
            self.metrics.webhook_attempt(outcome, attempt.ok, seconds, retried=job.attempts > 0)
        return outcome


def webhook_egress(settings: Any) -> EgressGuard:
    """The egress policy from the settings: https only in production, loopback as configured."""
    return EgressGuard(
        require_https=settings.production,
        allow_loopback=settings.effective_webhook_allow_loopback,
    )


def webhook_worker(
    settings: Any, engine: AsyncEngine, metrics: Metrics | None = None
) -> WebhookWorker:
    """This process's delivery worker, configured from the settings (not started)."""
    timeout = settings.webhook_timeout_seconds
    policy = RetryPolicy(
        backoff_base_seconds=settings.webhook_backoff_base_seconds,
        backoff_max_seconds=settings.webhook_backoff_max_seconds,
        retry_for_seconds=settings.webhook_retry_for_seconds,
        # An endpoint's claimed deliveries are sent one after another: the lease covers all.
        lease_seconds=timeout * (settings.webhook_batch + 1) + 30,
        disable_after_seconds=settings.webhook_disable_after_seconds,
        disable_after_failures=settings.webhook_disable_after_failures,
    )
    return WebhookWorker(
        engine,
        Sender(webhook_egress(settings), timeout=timeout),
        policy,
        poll_seconds=settings.webhook_poll_seconds,
        batch=settings.webhook_batch,
        retention_seconds=settings.webhook_retention_seconds,
        metrics=metrics,
    )
