"""Webhook endpoints, managed by a tenant's ADMIN (issue 16).

Writes need role ADMIN and the scope ``write:webhooks``; reads need ADMIN. Every statement
filters on the caller's tenant: another tenant's endpoint reads as missing. A URL is checked
against the egress policy (``auth.egress``) at registration, after name resolution; the
delivery worker checks it again at each delivery.

The signing secret is returned once, by ``webhookEndpointCreate`` and
``webhookEndpointRotateSecret``; no read shows it again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from auth import policy
from auth.egress import EgressGuard, UnsafeTarget
from auth.webhooks import new_secret
from database.ids import new_id
from database.models import utcnow
from resolvers.context import RequestContext
from resolvers.errors import BadUserInput, Forbidden, UserErrorCode, UserFailure
from resolvers.ids import input_id, to_global_id
from resolvers.outbox import DELIVERIES, ENDPOINTS, EVENTS, TOPICS

WRITE_SCOPE = "write:webhooks"
# The egress guard the server configured (TOLLGATE_WEBHOOK_ALLOW_LOOPBACK), in ctx.extra.
EGRESS_KEY = "webhook_egress"
MAX_ENDPOINTS = 16
MAX_DELIVERIES_PAGE = 100
DEFAULT_GRACE_SECONDS = 24 * 3600
MAX_GRACE_SECONDS = 7 * 24 * 3600
ENDPOINT_TYPE = "WebhookEndpoint"
DELIVERY_TYPE = "WebhookDelivery"


@dataclass(slots=True)
class EndpointOutcome:
    """The result of a create or a rotation: the endpoint and its new secret, or failures."""

    row: Row[Any] | None = None
    secret: str | None = None
    errors: list[UserFailure] = field(default_factory=list)


@dataclass(slots=True)
class DeleteOutcome:
    """The result of a delete: the deleted endpoint's id, or failures."""

    deleted_id: str | None = None
    errors: list[UserFailure] = field(default_factory=list)


def egress_guard(ctx: RequestContext) -> EgressGuard:
    """The server's egress policy, or the default one (loopback only outside production)."""
    guard = ctx.extra.get(EGRESS_KEY)
    if isinstance(guard, EgressGuard):
        return guard
    return EgressGuard(require_https=ctx.production, allow_loopback=not ctx.production)


def endpoint_global_id(endpoint_id: uuid.UUID) -> str:
    return to_global_id(ENDPOINT_TYPE, endpoint_id)


def delivery_global_id(delivery_id: uuid.UUID) -> str:
    return to_global_id(DELIVERY_TYPE, delivery_id)


def _require_reader(ctx: RequestContext) -> uuid.UUID:
    ctx.require_user()
    if not policy.is_admin(ctx.principal):
        raise Forbidden("Only ADMIN may read webhook endpoints.")
    return ctx.require_tenant()


def _require_writer(ctx: RequestContext) -> uuid.UUID:
    tenant_id = _require_reader(ctx)
    if not ctx.principal.has_scope(WRITE_SCOPE):
        raise Forbidden(f"Managing webhook endpoints needs the scope {WRITE_SCOPE}.")
    return tenant_id


async def _endpoint(
    conn: AsyncConnection, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> Row[Any]:
    row = (
        await conn.execute(
            select(ENDPOINTS).where(
                ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.tenant_id == tenant_id
            )
        )
    ).first()
    if row is None:
        raise UserFailure(UserErrorCode.NOT_FOUND, "No such webhook endpoint.", ["id"])
    return row


def _check_topics(topics: list[str]) -> list[str]:
    chosen = [topic for topic in TOPICS if topic in set(topics)]
    if not chosen or len(chosen) != len(set(topics)):
        raise UserFailure(
            UserErrorCode.INVALID_INPUT,
            f"topics must name at least one of {', '.join(TOPICS)}.",
            ["topics"],
        )
    return chosen


async def _catch(work: Callable[[], Awaitable[Any]], failed: Callable[[UserFailure], Any]) -> Any:
    try:
        return await work()
    except UserFailure as failure:
        return failed(failure)


async def create_endpoint(ctx: RequestContext, url: str, topics: list[str]) -> EndpointOutcome:
    """Register ``url`` for ``topics``; the outcome carries the signing secret (shown once)."""
    tenant_id = _require_writer(ctx)

    async def work() -> EndpointOutcome:
        chosen = _check_topics(topics)
        try:
            # Resolved before the transaction: no write lock is held during DNS.
            await egress_guard(ctx).check(url)
        except UnsafeTarget as unsafe:
            # The reason may quote the host: bounded, as every error message is.
            reason = unsafe.reason if len(unsafe.reason) <= 300 else unsafe.reason[:299] + "…"
            raise UserFailure(UserErrorCode.INVALID_INPUT, reason + ".", ["url"]) from None
        secret, endpoint_id = new_secret(), new_id()
        async with ctx.write() as conn:
            count = (
                await conn.execute(
                    select(func.count())
                    .select_from(ENDPOINTS)
                    .where(ENDPOINTS.c.tenant_id == tenant_id)
                )
            ).scalar_one()
            if count >= MAX_ENDPOINTS:
                raise UserFailure(
                    UserErrorCode.INVALID_INPUT,
                    f"A tenant has at most {MAX_ENDPOINTS} webhook endpoints.",
                    ["url"],
                )
            await conn.execute(
                insert(ENDPOINTS).values(
                    id=endpoint_id,
                    tenant_id=tenant_id,
                    url=url,
                    topics=" ".join(chosen),
                    secret=secret,
                    status="ENABLED",
                    consecutive_failures=0,
                    created_at=utcnow(),
                )
            )
            row = await _endpoint(conn, tenant_id, endpoint_id)
        return EndpointOutcome(row=row, secret=secret)

    outcome: EndpointOutcome = await _catch(work, lambda f: EndpointOutcome(errors=[f]))
    return outcome


async def rotate_secret(
    ctx: RequestContext, global_id: str, grace_seconds: int | None
) -> EndpointOutcome:
    """A new secret; the old one stays valid (deliveries carry both signatures) for the grace."""
    tenant_id = _require_writer(ctx)
    grace = DEFAULT_GRACE_SECONDS if grace_seconds is None else grace_seconds

    async def work() -> EndpointOutcome:
        endpoint_id = input_id(global_id, ENDPOINT_TYPE, ["id"])
        if not 0 <= grace <= MAX_GRACE_SECONDS:
            raise UserFailure(
                UserErrorCode.INVALID_INPUT,
                f"graceSeconds must be between 0 and {MAX_GRACE_SECONDS}.",
                ["graceSeconds"],
            )
        secret = new_secret()
        async with ctx.write() as conn:
            current = await _endpoint(conn, tenant_id, endpoint_id)
            await conn.execute(
                update(ENDPOINTS)
                .where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.tenant_id == tenant_id)
                .values(
                    secret=secret,
                    previous_secret=current.secret if grace > 0 else None,
                    previous_secret_expires_at=(
                        utcnow() + dt.timedelta(seconds=grace) if grace > 0 else None
                    ),
                )
            )
            row = await _endpoint(conn, tenant_id, endpoint_id)
        return EndpointOutcome(row=row, secret=secret)

    outcome: EndpointOutcome = await _catch(work, lambda f: EndpointOutcome(errors=[f]))
    return outcome


async def delete_endpoint(ctx: RequestContext, global_id: str) -> DeleteOutcome:
    """Delete an endpoint with its deliveries (and the events no other endpoint still owes)."""
    tenant_id = _require_writer(ctx)

    async def work() -> DeleteOutcome:
        endpoint_id = input_id(global_id, ENDPOINT_TYPE, ["id"])
        async with ctx.write() as conn:
            await _endpoint(conn, tenant_id, endpoint_id)
            event_ids = select(DELIVERIES.c.event_id).where(
                DELIVERIES.c.tenant_id == tenant_id, DELIVERIES.c.endpoint_id == endpoint_id
            )
            owned = [row.event_id for row in (await conn.execute(event_ids)).all()]
            await conn.execute(
                delete(DELIVERIES).where(
                    DELIVERIES.c.tenant_id == tenant_id, DELIVERIES.c.endpoint_id == endpoint_id
                )
            )
            for start in range(0, len(owned), 500):
                await conn.execute(
                    delete(EVENTS).where(
                        EVENTS.c.tenant_id == tenant_id,
                        EVENTS.c.id.in_(owned[start : start + 500]),
                        ~exists().where(
                            DELIVERIES.c.tenant_id == tenant_id,
                            DELIVERIES.c.event_id == EVENTS.c.id,
                        ),
                    )
                )
            await conn.execute(
                delete(ENDPOINTS).where(
                    ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.tenant_id == tenant_id
                )
            )
        return DeleteOutcome(deleted_id=global_id)

    outcome: DeleteOutcome = await _catch(work, lambda f: DeleteOutcome(errors=[f]))
    return outcome


async def endpoints(ctx: RequestContext) -> list[Row[Any]]:
    """The tenant's endpoints, oldest first (at most ``MAX_ENDPOINTS``)."""
    tenant_id = _require_reader(ctx)
    return list(
        await ctx.db.rows(
            select(ENDPOINTS)
            .where(ENDPOINTS.c.tenant_id == tenant_id)
            .order_by(ENDPOINTS.c.created_at, ENDPOINTS.c.id)
            .limit(MAX_ENDPOINTS)
        )
    )


async def deliveries(ctx: RequestContext, endpoint_id: uuid.UUID, first: int) -> list[Row[Any]]:
    """An endpoint's most recent deliveries, newest first, with their event's topic."""
    tenant_id = _require_reader(ctx)
    if not 1 <= first <= MAX_DELIVERIES_PAGE:
        raise BadUserInput(
            f"first must be between 1 and {MAX_DELIVERIES_PAGE}.",
            argument="first",
            observed=first,
            limit=MAX_DELIVERIES_PAGE,
        )
    return list(
        await ctx.db.rows(
            select(DELIVERIES, EVENTS.c.topic)
            .join(EVENTS, EVENTS.c.id == DELIVERIES.c.event_id)
            .where(
                DELIVERIES.c.tenant_id == tenant_id,
                EVENTS.c.tenant_id == tenant_id,
                DELIVERIES.c.endpoint_id == endpoint_id,
            )
            .order_by(DELIVERIES.c.created_at.desc(), DELIVERIES.c.id.desc())
            .limit(first)
        )
    )
