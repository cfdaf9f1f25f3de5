"""The delivery worker's database side: find due work, claim it under a lease, record results.

Every statement runs in a tenant-scoped transaction and filters on that tenant (row-level
security on PostgreSQL sees to it a second time): the worker lists the tenants, probes each
for due deliveries in one read transaction, and claims per tenant.

A claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL: concurrent claimants skip each
other's rows, so any number of workers and hosts share the work) followed by setting
``claimed_by`` and ``lease_until``; on SQLite the claim runs in a ``BEGIN IMMEDIATE``
transaction, so there is one claimant at a time. A claimed delivery is not claimable again
until its lease expires: a worker that dies mid-delivery delays it by at most the lease, and
the receiver may then see it twice, with the same event id. Results are recorded only while
the recording worker still holds the claim.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from database.engine import set_tenant, tenant_transaction
from database.models import as_utc
from loaders.loaders import TENANTS
from resolvers.outbox import DELIVERIES, ENDPOINTS, EVENTS

MAX_ERROR_LENGTH = 400


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff, retry window, lease and when an endpoint that keeps failing is disabled."""

    backoff_base_seconds: float = 10.0
    backoff_max_seconds: float = 3600.0
    retry_for_seconds: float = 3 * 24 * 3600.0
    lease_seconds: float = 60.0
    disable_after_seconds: float = 3 * 24 * 3600.0
    disable_after_failures: int = 20

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before attempt ``attempts + 1``: exponential, capped, with equal jitter."""
        ceiling = min(
            self.backoff_max_seconds, self.backoff_base_seconds * 2 ** min(max(attempts, 1) - 1, 30)
        )
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery, with what sending it needs."""

    delivery_id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    topic: str
    payload: bytes
    url: str
    secrets: tuple[str, ...] = field(repr=False)
    attempts: int
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST gave: a status code, or an error (short, no secrets or payload)."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _due(now: dt.datetime) -> Any:
    return and_(
        DELIVERIES.c.status == "PENDING",
        DELIVERIES.c.next_attempt_at <= now,
        or_(DELIVERIES.c.lease_until.is_(None), DELIVERIES.c.lease_until < now),
    )


async def tenant_ids(engine: AsyncEngine) -> list[uuid.UUID]:
    """Every tenant's id (tenants are not tenant-owned rows)."""
    async with tenant_transaction(engine, None) as conn:
        return list(
            (await conn.execute(select(TENANTS.c.id).order_by(TENANTS.c.id))).scalars().all()
        )


async def tenants_with_due_work(engine: AsyncEngine, now: dt.datetime) -> list[uuid.UUID]:
    """The tenants with a delivery due at ``now`` (one read transaction, a probe per tenant)."""
    found: list[uuid.UUID] = []
    async with tenant_transaction(engine, None) as conn:
        tenants = (await conn.execute(select(TENANTS.c.id).order_by(TENANTS.c.id))).scalars().all()
        for tenant_id in tenants:
            await set_tenant(conn, tenant_id)
            due = (
                await conn.execute(
                    select(DELIVERIES.c.id)
                    .where(DELIVERIES.c.tenant_id == tenant_id, _due(now))
                    .limit(1)
                )
            ).first()
            if due is not None:
                found.append(tenant_id)
    return found


async def claim(
    engine: AsyncEngine,
    tenant_id: uuid.UUID,
    worker: str,
    now: dt.datetime,
    *,
    limit: int,
    lease_seconds: float,
) -> list[Job]:
    """Claim up to ``limit`` due deliveries of one tenant, oldest first, for ``worker``."""
    async with tenant_transaction(engine, tenant_id, write=True) as conn:
        ids = (
            (
                await conn.execute(
                    select(DELIVERIES.c.id)
                    .where(DELIVERIES.c.tenant_id == tenant_id, _due(now))
                    .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        if not ids:
            return []
        await conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.tenant_id == tenant_id, DELIVERIES.c.id.in_(ids))
            .values(claimed_by=worker, lease_until=now + dt.timedelta(seconds=lease_seconds))
        )
        rows = (
            await conn.execute(
                select(
                    DELIVERIES.c.id,
                    DELIVERIES.c.endpoint_id,
                    DELIVERIES.c.event_id,
                    DELIVERIES.c.attempts,
                    DELIVERIES.c.created_at,
                    DELIVERIES.c.next_attempt_at,
                    EVENTS.c.topic,
                    EVENTS.c.payload,
                    ENDPOINTS.c.url,
                    ENDPOINTS.c.secret,
                    ENDPOINTS.c.previous_secret,
                    ENDPOINTS.c.previous_secret_expires_at,
                )
                .join(EVENTS, EVENTS.c.id == DELIVERIES.c.event_id)
                .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
                .where(
                    DELIVERIES.c.tenant_id == tenant_id,
                    EVENTS.c.tenant_id == tenant_id,
                    ENDPOINTS.c.tenant_id == tenant_id,
                    DELIVERIES.c.id.in_(ids),
                )
                .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
            )
        ).all()
    jobs = []
    for row in rows:
        secrets: tuple[str, ...] = (row.secret,)
        expires = row.previous_secret_expires_at
        if row.previous_secret and expires is not None and as_utc(expires) > now:
            secrets = (row.secret, row.previous_secret)
        jobs.append(
            Job(
                delivery_id=row.id,
                tenant_id=tenant_id,
                endpoint_id=row.endpoint_id,
                event_id=row.event_id,
                topic=row.topic,
                payload=bytes(row.payload),
                url=row.url,
                secrets=secrets,
                attempts=row.attempts,
                created_at=as_utc(row.created_at),
            )
        )
    return jobs


async def record(
    engine: AsyncEngine,
    job: Job,
    worker: str,
    attempt: Attempt,
    now: dt.datetime,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> str:
    """Record one attempt; returns ``delivered``, ``retry``, ``failed`` or ``lost`` (the claim
    had expired and was taken by another worker: nothing recorded).

    A failure schedules the next attempt after the backoff, or marks the delivery FAILED when
    that would fall outside the retry window. An endpoint that has failed every attempt for
    ``disable_after_seconds`` (and at least ``disable_after_failures`` times) is disabled and
    its pending deliveries are marked FAILED.
    """
    attempts = job.attempts + 1
    error = None if attempt.error is None else attempt.error[:MAX_ERROR_LENGTH]
    mine = and_(
        DELIVERIES.c.id == job.delivery_id,
        DELIVERIES.c.tenant_id == job.tenant_id,
        DELIVERIES.c.claimed_by == worker,
        DELIVERIES.c.status == "PENDING",
    )
    endpoint = and_(ENDPOINTS.c.id == job.endpoint_id, ENDPOINTS.c.tenant_id == job.tenant_id)
    async with tenant_transaction(engine, job.tenant_id, write=True) as conn:
        if attempt.ok:
            changed = await conn.execute(
                update(DELIVERIES)
                .where(mine)
                .values(
                    status="DELIVERED",
                    attempts=attempts,
                    last_response_code=attempt.status_code,
                    last_error=None,
                    delivered_at=now,
                    next_attempt_at=None,
                    claimed_by=None,
                    lease_until=None,
                )
            )
            if changed.rowcount == 0:
                return "lost"
            await conn.execute(
                update(ENDPOINTS)
                .where(
                    endpoint,
                    or_(
                        ENDPOINTS.c.consecutive_failures != 0,
                        ENDPOINTS.c.failing_since.is_not(None),
                    ),
                )
                .values(consecutive_failures=0, failing_since=None)
            )
            return "delivered"
        delay = policy.backoff(attempts, rng)
        final = (now - job.created_at).total_seconds() + delay > policy.retry_for_seconds
        changed = await conn.execute(
            update(DELIVERIES)
            .where(mine)
            .values(
                status="FAILED" if final else "PENDING",
                attempts=attempts,
                last_response_code=attempt.status_code,
                last_error=error,
                next_attempt_at=None if final else now + dt.timedelta(seconds=delay),
                claimed_by=None,
                lease_until=None,
            )
        )
        if changed.rowcount == 0:
            return "lost"
        # One atomic increment: concurrent workers failing on the same endpoint lose no count.
        state = (
            await conn.execute(
                update(ENDPOINTS)
                .where(endpoint)
                .values(
                    consecutive_failures=ENDPOINTS.c.consecutive_failures + 1,
                    failing_since=func.coalesce(ENDPOINTS.c.failing_since, now),
                )
                .returning(
                    ENDPOINTS.c.consecutive_failures, ENDPOINTS.c.failing_since, ENDPOINTS.c.status
                )
            )
        ).first()
        if state is None:
            return "failed" if final else "retry"
        failures, since = state.consecutive_failures, as_utc(state.failing_since)
        disable = (
            state.status == "ENABLED"
            and failures >= policy.disable_after_failures
            and (now - since).total_seconds() >= policy.disable_after_seconds
        )
        if disable:
            await conn.execute(
                update(ENDPOINTS)
                .where(endpoint)
                .values(
                    status="DISABLED",
                    disabled_at=now,
                    disabled_reason=(
                        f"Disabled after {failures} failed attempts in a row since "
                        f"{since.isoformat().replace('+00:00', 'Z')}; last: {error or 'no error'}"
                    )[:MAX_ERROR_LENGTH],
                )
            )
        if disable:
            await conn.execute(
                update(DELIVERIES)
                .where(
                    DELIVERIES.c.tenant_id == job.tenant_id,
                    DELIVERIES.c.endpoint_id == job.endpoint_id,
                    DELIVERIES.c.status == "PENDING",
                )
                .values(
                    status="FAILED",
                    next_attempt_at=None,
                    claimed_by=None,
                    lease_until=None,
                    last_error="The endpoint was disabled.",
                )
            )
            return "disabled"
    return "failed" if final else "retry"


async def release(engine: AsyncEngine, jobs: list[Job], worker: str) -> int:
    """Give back claims ``worker`` still holds (graceful shutdown): due again at once."""
    released = 0
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for job in jobs:
        by_tenant.setdefault(job.tenant_id, []).append(job.delivery_id)
    for tenant_id, ids in by_tenant.items():
        async with tenant_transaction(engine, tenant_id, write=True) as conn:
            result = await conn.execute(
                update(DELIVERIES)
                .where(
                    DELIVERIES.c.tenant_id == tenant_id,
                    DELIVERIES.c.id.in_(ids),
                    DELIVERIES.c.claimed_by == worker,
                    DELIVERIES.c.status == "PENDING",
                )
                .values(claimed_by=None, lease_until=None)
            )
            released += result.rowcount
    return released


async def prune(
    engine: AsyncEngine, tenant_id: uuid.UUID, now: dt.datetime, keep_seconds: float
) -> int:
    """Housekeeping for one tenant: delete deliveries that ended (DELIVERED or FAILED) more
    than ``keep_seconds`` ago and the events no delivery refers to any more; forget previous
    secrets whose grace ended. Returns the number of deliveries deleted."""
    before = now - dt.timedelta(seconds=keep_seconds)
    async with tenant_transaction(engine, tenant_id, write=True) as conn:
        deleted = await conn.execute(
            delete(DELIVERIES).where(
                DELIVERIES.c.tenant_id == tenant_id,
                DELIVERIES.c.status.in_(("DELIVERED", "FAILED")),
                DELIVERIES.c.created_at < before,
            )
        )
        await conn.execute(
            delete(EVENTS).where(
                EVENTS.c.tenant_id == tenant_id,
                EVENTS.c.occurred_at < before,
                ~exists().where(
                    DELIVERIES.c.tenant_id == tenant_id, DELIVERIES.c.event_id == EVENTS.c.id
                ),
            )
        )
        await conn.execute(
            update(ENDPOINTS)
            .where(
                ENDPOINTS.c.tenant_id == tenant_id,
                ENDPOINTS.c.previous_secret_expires_at < now,
            )
            .values(previous_secret=None, previous_secret_expires_at=None)
        )
    return int(deleted.rowcount or 0)
