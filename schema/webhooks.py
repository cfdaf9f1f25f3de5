"""Webhook fields (issue 16): endpoints and their deliveries, managed by ADMIN.

Writes need ADMIN with the scope ``write:webhooks``; reads need ADMIN. Priced like every
other field: objects 1, mutations +10, ``webhookEndpoints`` at its bound (16) and
``deliveries`` by ``first``.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from resolvers import webhooks
from schema.directives import ListSize
from schema.types import UserError, user_errors

Row = Any


@strawberry.enum(description="What a webhook endpoint can subscribe to.")
class WebhookTopic(Enum):
    ORDER_CREATED = "ORDER_CREATED"
    ORDER_CONFIRMED = "ORDER_CONFIRMED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    PRODUCT_UPDATED = "PRODUCT_UPDATED"


@strawberry.enum(description="Whether an endpoint receives deliveries.")
class WebhookEndpointStatus(Enum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


@strawberry.enum(description="Where one delivery is.")
class WebhookDeliveryStatus(Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@strawberry.type(description="One event sent (or to be sent) to one endpoint.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Opaque id of this delivery.")
    event_id: str = strawberry.field(
        description="The event's id: the Tollgate-Event-Id header and the payload's id."
    )
    topic: WebhookTopic = strawberry.field(description="The event's topic.")
    status: WebhookDeliveryStatus = strawberry.field(description="PENDING, DELIVERED or FAILED.")
    attempts: int = strawberry.field(description="POSTs made so far.")
    last_response_code: int | None = strawberry.field(
        description="HTTP status of the last attempt; null when it got no answer."
    )
    last_error: str | None = strawberry.field(
        description="Why the last attempt failed (timeout, refused address, HTTP status)."
    )
    next_attempt_at: dt.datetime | None = strawberry.field(
        description="When the next attempt is due; null once DELIVERED or FAILED."
    )
    created_at: dt.datetime = strawberry.field(description="When the event was written.")
    delivered_at: dt.datetime | None = strawberry.field(description="When a 2xx answer came.")

    @classmethod
    def from_row(cls, row: Row) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(webhooks.delivery_global_id(row.id)),
            event_id=str(row.event_id),
            topic=WebhookTopic(row.topic),
            status=WebhookDeliveryStatus(row.status),
            attempts=row.attempts,
            last_response_code=row.last_response_code,
            last_error=row.last_error,
            next_attempt_at=_utc(row.next_attempt_at),
            created_at=_utc(row.created_at),  # type: ignore[arg-type]
            delivered_at=_utc(row.delivered_at),
        )


@strawberry.type(description="A URL that receives signed events of the chosen topics.")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="Opaque id of this endpoint.")
    url: str = strawberry.field(description="Where events are POSTed.")
    topics: list[WebhookTopic] = strawberry.field(description="The subscribed topics.")
    status: WebhookEndpointStatus = strawberry.field(
        description="DISABLED after failing continuously (see disabledReason); no deliveries then."
    )
    disabled_reason: str | None = strawberry.field(description="Why it was disabled.")
    disabled_at: dt.datetime | None = strawberry.field(description="When it was disabled.")
    consecutive_failures: int = strawberry.field(
        description="Failed attempts since the last success."
    )
    previous_secret_expires_at: dt.datetime | None = strawberry.field(
        description="Until when the secret before the last rotation still signs deliveries."
    )
    created_at: dt.datetime = strawberry.field(description="When it was registered.")
    row: strawberry.Private[Row]

    @classmethod
    def from_row(cls, row: Row) -> WebhookEndpoint:
        expires = _utc(row.previous_secret_expires_at)
        if expires is not None and expires <= dt.datetime.now(dt.UTC):
            expires = None
        return cls(
            id=strawberry.ID(webhooks.endpoint_global_id(row.id)),
            url=row.url,
            topics=[WebhookTopic(topic) for topic in row.topics.split()],
            status=WebhookEndpointStatus(row.status),
            disabled_reason=row.disabled_reason,
            disabled_at=_utc(row.disabled_at),
            consecutive_failures=row.consecutive_failures,
            previous_secret_expires_at=expires,
            created_at=_utc(row.created_at),  # type: ignore[arg-type]
            row=row,
        )

    @strawberry.field(
        description="The most recent deliveries, newest first (max 100).",
        directives=[ListSize(slicing_arguments=["first"])],
    )
    async def deliveries(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="How many, 1 to 100.")] = 20,
    ) -> list[WebhookDelivery]:
        rows = await webhooks.deliveries(info.context, self.row.id, 20 if first is None else first)
        return [WebhookDelivery.from_row(row) for row in rows]


@strawberry.input(description="What to register.")
class WebhookEndpointCreateInput:
    url: str = strawberry.field(
        description=(
            "https URL (http allowed outside production); it may not resolve to a loopback "
            "(outside production: allowed), private, link-local or metadata address."
        )
    )
    topics: list[WebhookTopic] = strawberry.field(description="At least one topic.")


@strawberry.input(description="Which endpoint.")
class WebhookEndpointDeleteInput:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")


@strawberry.input(description="Which endpoint, and how long the old secret stays valid.")
class WebhookEndpointRotateSecretInput:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    grace_seconds: int | None = strawberry.field(
        default=None,
        description="Seconds the old secret still signs deliveries (0 to 604800; default 86400).",
    )


@strawberry.type(description="The result of webhookEndpointCreate or webhookEndpointRotateSecret.")
class WebhookEndpointSecretPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(description="The endpoint.")
    secret: str | None = strawberry.field(
        description="The signing secret: shown this once, store it now."
    )
    user_errors: list[UserError] = strawberry.field(
        description="INVALID_INPUT (e.g. a forbidden URL, with the reason), NOT_FOUND."
    )


@strawberry.type(description="The result of webhookEndpointDelete.")
class WebhookEndpointDeletePayload:
    deleted_id: strawberry.ID | None = strawberry.field(description="The deleted endpoint's id.")
    user_errors: list[UserError] = strawberry.field(description="NOT_FOUND, INVALID_INPUT.")


def _secret_payload(outcome: webhooks.EndpointOutcome) -> WebhookEndpointSecretPayload:
    return WebhookEndpointSecretPayload(
        endpoint=None if outcome.row is None else WebhookEndpoint.from_row(outcome.row),
        secret=outcome.secret,
        user_errors=user_errors(outcome.errors),
    )


@strawberry.type(description="Webhook queries.")
class WebhookQuery:
    @strawberry.field(
        description="ADMIN. The tenant's webhook endpoints, oldest first (at most 16).",
        directives=[ListSize(assumed_size=webhooks.MAX_ENDPOINTS)],
    )
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        return [WebhookEndpoint.from_row(row) for row in await webhooks.endpoints(info.context)]


@strawberry.type(description="Webhook mutations.")
class WebhookMutation:
    @strawberry.mutation(
        description=(
            "ADMIN; scope write:webhooks. Register a URL for topics; returns the signing secret "
            "once. At most 16 endpoints per tenant."
        )
    )
    async def webhook_endpoint_create(
        self, info: Info, input: WebhookEndpointCreateInput
    ) -> WebhookEndpointSecretPayload:
        outcome = await webhooks.create_endpoint(
            info.context, input.url, [topic.value for topic in input.topics]
        )
        return _secret_payload(outcome)

    @strawberry.mutation(
        description="ADMIN; scope write:webhooks. Delete an endpoint and its pending deliveries."
    )
    async def webhook_endpoint_delete(
        self, info: Info, input: WebhookEndpointDeleteInput
    ) -> WebhookEndpointDeletePayload:
        outcome = await webhooks.delete_endpoint(info.context, input.id)
        return WebhookEndpointDeletePayload(
            deleted_id=None if outcome.deleted_id is None else strawberry.ID(outcome.deleted_id),
            user_errors=user_errors(outcome.errors),
        )

    @strawberry.mutation(
        description=(
            "ADMIN; scope write:webhooks. A new signing secret (returned once); deliveries carry "
            "a signature with the old one too until the grace period ends."
        )
    )
    async def webhook_endpoint_rotate_secret(
        self, info: Info, input: WebhookEndpointRotateSecretInput
    ) -> WebhookEndpointSecretPayload:
        grace = None if input.grace_seconds is strawberry.UNSET else input.grace_seconds
        outcome = await webhooks.rotate_secret(info.context, input.id, grace)
        return _secret_payload(outcome)


__all__ = ["WebhookEndpoint", "WebhookMutation", "WebhookQuery"]
