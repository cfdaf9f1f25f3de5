"""Webhooks end to end: GraphQL registration, the outbox, and the server's own worker.

A receiver on 127.0.0.1 is registered over GraphQL; orders are created, confirmed and
cancelled; the worker running in the app's lifespan delivers signed events in commit order,
and keeps retrying a failing receiver until it recovers. No test connects outside 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from auth.webhooks import verify
from database.engine import make_engine, tenant_transaction
from resolvers import outbox
from server.app import create_app
from server.settings import Settings
from tests.server.conftest import Tokens, gql, make_settings
from tests.server.webhook_helpers import (
    CONFIRM_ORDER,
    CREATE_ENDPOINT,
    CREATE_ORDER,
    new_product,
    order_life,
    payload,
    post,
    receiver,
    register,
    unregister,
    wait_until,
)

FAST = {
    "webhooks": True,
    "webhook_poll_seconds": 0.05,
    "webhook_backoff_base_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.3,
    "webhook_timeout_seconds": 2.0,
}


@pytest.fixture(scope="module")
async def hook_app(database_url: str) -> AsyncIterator[Any]:
    application = create_app(make_settings(database_url, **FAST))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def hooks(hook_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=hook_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


ORDER_TOPICS = ["ORDER_CREATED", "ORDER_CONFIRMED", "ORDER_CANCELLED"]


async def test_create_confirm_cancel_deliver_three_signed_events_in_commit_order(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    product_id = await new_product(hooks, tokens)
    with receiver() as rx:
        endpoint = await register(hooks, tokens, rx.url, ORDER_TOPICS)
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        try:
            order_id = await order_life(hooks, tokens, product_id)
            await wait_until(lambda: len(rx.snapshot()) >= 3)
            got = rx.snapshot()
        finally:
            await unregister(hooks, tokens, endpoint["endpoint"]["id"])
    assert len(got) == 3
    events = [payload(r) for r in got]
    assert [e["topic"] for e in events] == ORDER_TOPICS
    assert [e["data"]["status"] for e in events] == ["PENDING", "CONFIRMED", "CANCELLED"]
    assert [e["data"]["version"] for e in events] == [1, 2, 3]
    for received, event in zip(got, events, strict=True):
        verify(received.body, received.headers["tollgate-signature"], secret)
        assert received.headers["tollgate-event-id"] == event["id"]
        assert received.headers["content-type"] == "application/json"
        assert event["tenant"]["slug"] == "acme"
        assert event["data"]["id"] == order_id
        assert event["occurredAt"].endswith("Z")
        assert event["data"]["total"] == {"amount": "10.00", "currency": "USD"}
        # Free text stays out of the payload (the receiver reads it over the API if allowed).
        assert "note" not in event["data"] and "leave it" not in received.body.decode()
    assert len({e["id"] for e in events}) == 3


async def test_a_product_update_reaches_only_endpoints_subscribed_to_it(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    product_id = await new_product(hooks, tokens)
    with receiver() as orders_rx, receiver() as products_rx:
        orders = await register(hooks, tokens, orders_rx.url, ["ORDER_CREATED"])
        products = await register(hooks, tokens, products_rx.url, ["PRODUCT_UPDATED"])
        try:
            data = await post(
                hooks,
                """mutation($id: ID!) { updateProduct(input: {id: $id, expectedVersion: 1,
                   stock: 7}) { product { version } userErrors { code } } }""",
                {"id": product_id},
                tokens.headers("ADMIN"),
            )
            assert data["updateProduct"]["product"]["version"] == 2
            await wait_until(lambda: len(products_rx.snapshot()) == 1)
            event = payload(products_rx.snapshot()[0])
        finally:
            await unregister(hooks, tokens, orders["endpoint"]["id"])
            await unregister(hooks, tokens, products["endpoint"]["id"])
    assert event["topic"] == "PRODUCT_UPDATED"
    assert event["data"]["stock"] == 7 and event["data"]["id"] == product_id
    assert "unitCost" not in event["data"]
    assert orders_rx.snapshot() == []


async def test_a_receiver_failing_for_a_while_gets_every_event_once_it_recovers(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    product_id = await new_product(hooks, tokens)
    with receiver() as rx:
        rx.status = 503
        endpoint = await register(hooks, tokens, rx.url, ORDER_TOPICS)
        try:
            for _ in range(3):
                await order_life(hooks, tokens, product_id)
            # Every event is attempted and refused at least once while the receiver fails.
            await wait_until(
                lambda: len({r.headers["tollgate-event-id"] for r in rx.snapshot()}) == 9
            )
            failed = len(rx.snapshot())
            rx.status = 200
            await wait_until(lambda: len(rx.delivered()) >= 9)
            query = """query { webhookEndpoints { id deliveries(first: 20) {
                eventId status attempts lastResponseCode nextAttemptAt lastError } } }"""

            async def view() -> list[dict[str, Any]]:
                data = await post(hooks, query, {}, tokens.headers("ADMIN"))
                (mine,) = [
                    e for e in data["webhookEndpoints"] if e["id"] == endpoint["endpoint"]["id"]
                ]
                return mine["deliveries"]  # type: ignore[no-any-return]

            deliveries = await view()
        finally:
            await unregister(hooks, tokens, endpoint["endpoint"]["id"])
    delivered_ids = [r.headers["tollgate-event-id"] for r in rx.delivered()]
    assert failed >= 9
    assert sorted(set(delivered_ids)) == sorted(delivered_ids)  # each delivered once
    assert len(delivered_ids) == 9
    assert len(deliveries) == 9
    assert {d["status"] for d in deliveries} == {"DELIVERED"}
    assert all(d["attempts"] >= 2 and d["lastResponseCode"] == 200 for d in deliveries)
    assert all(d["nextAttemptAt"] is None and d["lastError"] is None for d in deliveries)
    assert {d["eventId"] for d in deliveries} == set(delivered_ids)


async def test_metrics_count_attempts_retries_and_deliveries(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    text = (await hooks.get("/metrics")).text
    for name in (
        "tollgate_webhook_attempts_total",
        "tollgate_webhook_retries_total",
        "tollgate_webhook_deliveries_total",
        "tollgate_webhook_attempt_duration_seconds_count",
    ):
        assert name in text
    assert 'tollgate_webhook_attempts_total{result="failure"}' in text
    assert 'tollgate_webhook_deliveries_total{outcome="delivered"}' in text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
        ("http://[::ffff:192.168.0.1]/hook", "192.168.0.1 is a private address"),
        ("ftp://127.0.0.1/hook", "the URL must use http or https"),
        ("http://user:pw@127.0.0.1/hook", "credentials"),
    ],
)
async def test_forbidden_urls_are_refused_at_registration_with_the_reason(
    hooks: httpx.AsyncClient, tokens: Tokens, url: str, reason: str
) -> None:
    data = await post(
        hooks,
        CREATE_ENDPOINT,
        {"input": {"url": url, "topics": ["ORDER_CREATED"]}},
        tokens.headers("ADMIN"),
    )
    payload_ = data["webhookEndpointCreate"]
    assert payload_["endpoint"] is None and payload_["secret"] is None
    (error,) = payload_["userErrors"]
    assert error["code"] == "INVALID_INPUT" and error["field"] == ["url"]
    assert reason in error["message"]


async def test_only_admin_with_write_webhooks_manages_and_only_admin_reads(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    variables = {"input": {"url": "http://127.0.0.1:9/hook", "topics": ["ORDER_CREATED"]}}
    for headers in (
        tokens.headers("STAFF"),
        tokens.headers("ADMIN", scopes=["read:orders", "write:products"]),
    ):
        body = (await gql(hooks, CREATE_ENDPOINT, variables, headers)).json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    body = (await gql(hooks, "{ webhookEndpoints { id } }", None, tokens.headers("STAFF"))).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = (await gql(hooks, "{ webhookEndpoints { id } }")).json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_endpoints_are_tenant_scoped_and_the_secret_is_shown_once(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    created = await register(hooks, tokens, "http://127.0.0.1:9/acme", ["ORDER_CREATED"])
    endpoint_id = created["endpoint"]["id"]
    try:
        theirs = await post(
            hooks, "{ webhookEndpoints { id } }", {}, tokens.headers("ADMIN", "globex")
        )
        assert endpoint_id not in [e["id"] for e in theirs["webhookEndpoints"]]
        deleted = await post(
            hooks,
            "mutation($id: ID!) { webhookEndpointDelete(input: {id: $id}) { deletedId userErrors { code } } }",
            {"id": endpoint_id},
            tokens.headers("ADMIN", "globex"),
        )
        assert deleted["webhookEndpointDelete"] == {
            "deletedId": None,
            "userErrors": [{"code": "NOT_FOUND"}],
        }
        ours = await post(
            hooks,
            "{ webhookEndpoints { id url topics status consecutiveFailures } }",
            {},
            tokens.headers("ADMIN"),
        )
        (mine,) = [e for e in ours["webhookEndpoints"] if e["id"] == endpoint_id]
        assert mine == {
            "id": endpoint_id,
            "url": "http://127.0.0.1:9/acme",
            "topics": ["ORDER_CREATED"],
            "status": "ENABLED",
            "consecutiveFailures": 0,
        }
        # No field reads the secret back.
        body = (
            await gql(hooks, "{ webhookEndpoints { secret } }", None, tokens.headers("ADMIN"))
        ).json()
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    finally:
        await unregister(hooks, tokens, endpoint_id)


async def test_rotation_signs_with_both_secrets_during_the_grace(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    product_id = await new_product(hooks, tokens)
    with receiver() as rx:
        created = await register(hooks, tokens, rx.url, ["ORDER_CREATED"])
        endpoint_id = created["endpoint"]["id"]
        try:
            rotated = await post(
                hooks,
                """mutation($id: ID!) { webhookEndpointRotateSecret(input: {id: $id, graceSeconds: 600}) {
                   secret endpoint { previousSecretExpiresAt } userErrors { code } } }""",
                {"id": endpoint_id},
                tokens.headers("ADMIN"),
            )
            payload_ = rotated["webhookEndpointRotateSecret"]
            assert payload_["userErrors"] == [] and payload_["secret"] != created["secret"]
            assert payload_["endpoint"]["previousSecretExpiresAt"] is not None
            await order_life(hooks, tokens, product_id)
            await wait_until(lambda: len(rx.snapshot()) == 1)
        finally:
            await unregister(hooks, tokens, endpoint_id)
    (got,) = rx.snapshot()
    header = got.headers["tollgate-signature"]
    assert header.count("v1=") == 2
    verify(got.body, header, created["secret"])
    verify(got.body, header, payload_["secret"])


async def test_loopback_is_refused_when_the_setting_says_so(
    database_url: str, tokens: Tokens
) -> None:
    settings: Settings = make_settings(database_url, webhook_allow_loopback=False)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        data = await post(
            http,
            CREATE_ENDPOINT,
            {"input": {"url": "http://localhost:9/hook", "topics": ["ORDER_CREATED"]}},
            tokens.headers("ADMIN"),
        )
    (error,) = data["webhookEndpointCreate"]["userErrors"]
    assert "localhost resolves to" in error["message"] and "loopback" in error["message"]


async def test_a_name_resolving_to_loopback_is_refused_in_production(
    database_url: str, tmp_path: Any
) -> None:
    settings = make_settings(
        database_url, env="production", jwt_secret="p" * 40, graphiql=False, metrics=False
    )
    prod_tokens = Tokens(settings)
    await prod_tokens.load()
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        headers = prod_tokens.headers("ADMIN")
        refused = {}
        for url in ("https://localhost:8443/hook", "http://203.0.113.9/hook"):
            data = await post(
                http, CREATE_ENDPOINT, {"input": {"url": url, "topics": ["ORDER_CREATED"]}}, headers
            )
            refused[url] = data["webhookEndpointCreate"]["userErrors"][0]["message"]
    assert (
        "localhost resolves to 127.0.0.1: 127.0.0.1 is a loopback address"
        in refused["https://localhost:8443/hook"]
        or "localhost resolves to ::1" in refused["https://localhost:8443/hook"]
    )
    assert "must use https" in refused["http://203.0.113.9/hook"]


async def test_no_event_without_a_committed_change_and_none_for_a_replay(
    hooks: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    product_id = await new_product(hooks, tokens, stock=3)
    engine = make_engine(settings.database_url)
    with receiver() as rx:
        endpoint = await register(hooks, tokens, rx.url, ORDER_TOPICS)
        try:
            before = await _events(engine, tokens)
            order = {
                "idempotencyKey": uuid.uuid4().hex,
                "currency": "USD",
                "items": [{"productId": product_id, "quantity": 2}],
            }
            created = await post(hooks, CREATE_ORDER, {"input": order}, tokens.headers("CUSTOMER"))
            replayed = await post(hooks, CREATE_ORDER, {"input": order}, tokens.headers("CUSTOMER"))
            assert replayed["createOrder"]["order"]["id"] == created["createOrder"]["order"]["id"]
            too_many = {**order, "idempotencyKey": uuid.uuid4().hex}
            too_many["items"] = [{"productId": product_id, "quantity": 2}]
            refused = await post(
                hooks, CREATE_ORDER, {"input": too_many}, tokens.headers("CUSTOMER")
            )
            assert refused["createOrder"]["userErrors"][0]["code"] == "INSUFFICIENT_STOCK"
            stale = await post(
                hooks,
                CONFIRM_ORDER,
                {"id": created["createOrder"]["order"]["id"], "v": 7},
                tokens.headers("STAFF"),
            )
            assert stale["confirmOrder"]["userErrors"][0]["code"] == "VERSION_CONFLICT"
            await wait_until(lambda: len(rx.snapshot()) >= 1)
            await asyncio.sleep(0.3)
            after = await _events(engine, tokens)
        finally:
            await unregister(hooks, tokens, endpoint["endpoint"]["id"])
            await engine.dispose()
    assert after - before == 1
    assert [payload(r)["topic"] for r in rx.snapshot()] == ["ORDER_CREATED"]


async def _events(engine: Any, tokens: Tokens) -> int:
    async with tenant_transaction(engine, tokens.tenants["acme"]) as conn:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(outbox.EVENTS)
                .where(outbox.EVENTS.c.tenant_id == tokens.tenants["acme"])
            )
            or 0
        )


async def test_webhook_fields_are_priced_by_their_list_sizes(
    hooks: httpx.AsyncClient, tokens: Tokens
) -> None:
    query = "{ webhookEndpoints { id deliveries(first: 50) { eventId } } }"
    response = await gql(hooks, query, None, {**tokens.headers("ADMIN"), "X-Cost-Dry-Run": "1"})
    cost = response.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 16 + 16 * 50  # at most 16 endpoints, `first` each
    endpoint = await register(hooks, tokens, "http://127.0.0.1:9/priced", ["ORDER_CREATED"])
    try:
        too_many = "{ webhookEndpoints { deliveries(first: 101) { eventId } } }"
        body = (await gql(hooks, too_many, None, tokens.headers("ADMIN"))).json()
    finally:
        await unregister(hooks, tokens, endpoint["endpoint"]["id"])
    (error,) = body["errors"]
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "argument": "first",
        "observed": 101,
        "limit": 100,
    }
