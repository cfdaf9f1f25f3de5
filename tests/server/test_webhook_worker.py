"""The delivery worker on a real database (SQLite and PostgreSQL), driven directly.

The app here runs no worker of its own (``webhooks=False``); each test starts the workers it
needs, with a policy fit for the test. The receiver listens on 127.0.0.1; where a test
pretends a name resolves elsewhere, the connect step fails the test if it is ever reached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.egress import EgressGuard
from database.engine import make_engine, tenant_transaction
from observability import configure_logging
from resolvers import outbox
from resolvers import webhook_delivery as store
from resolvers.webhook_delivery import Job, RetryPolicy
from server.settings import Settings
from server.webhooks import Sender, WebhookWorker
from tests.server.conftest import Tokens
from tests.server.webhook_helpers import post, receiver, register, unregister, wait_until

QUICK = RetryPolicy(
    backoff_base_seconds=0.02,
    backoff_max_seconds=0.1,
    retry_for_seconds=3600,
    lease_seconds=30,
    disable_after_seconds=3600,
    disable_after_failures=1000,
)
ENDPOINTS_QUERY = """{ webhookEndpoints { id status disabledReason consecutiveFailures
  deliveries(first: 50) { eventId status attempts lastResponseCode lastError nextAttemptAt } } }"""


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = make_engine(database_url)
    try:
        yield made
    finally:
        await made.dispose()


def loopback_guard() -> EgressGuard:
    return EgressGuard(require_https=False, allow_loopback=True)


def worker(engine: AsyncEngine, policy: RetryPolicy = QUICK, **kwargs: Any) -> WebhookWorker:
    sender = kwargs.pop("sender", None) or Sender(loopback_guard(), timeout=5)
    return WebhookWorker(engine, sender, policy, poll_seconds=0.01, rng=random.Random(7), **kwargs)


async def emit_many(engine: AsyncEngine, tenant_id: uuid.UUID, count: int) -> list[str]:
    """``count`` ORDER_CREATED events, each in its own transaction (as mutations write them)."""
    ids = []
    for n in range(count):
        async with tenant_transaction(engine, tenant_id, write=True) as conn:
            event_id = await outbox.emit(conn, tenant_id, "ORDER_CREATED", {"n": n})
        assert event_id is not None
        ids.append(str(event_id))
    return ids


async def endpoint_view(
    client: httpx.AsyncClient, tokens: Tokens, endpoint_id: str
) -> dict[str, Any]:
    data = await post(client, ENDPOINTS_QUERY, {}, tokens.headers("ADMIN"))
    (mine,) = [e for e in data["webhookEndpoints"] if e["id"] == endpoint_id]
    return mine  # type: ignore[no-any-return]


async def test_two_workers_never_deliver_an_event_twice(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine, database_url: str
) -> None:
    """PostgreSQL: FOR UPDATE SKIP LOCKED and leases; SQLite: one claimant at a time."""
    tenant_id = tokens.tenants["acme"]
    with receiver() as rx:
        rx.delay = 0.01
        endpoint = await register(client, tokens, rx.url, ["ORDER_CREATED"])
        other_engine = make_engine(database_url)
        workers = [worker(engine, batch=3), worker(other_engine, batch=3)]
        try:
            event_ids = await emit_many(engine, tenant_id, 40)
            for w in workers:
                w.start()
            await wait_until(lambda: len(rx.snapshot()) >= 40)
            await asyncio.sleep(0.3)  # room for a duplicate to show up
        finally:
            for w in workers:
                await w.stop()
            await other_engine.dispose()
            await unregister(client, tokens, endpoint["endpoint"]["id"])
    got = [r.headers["tollgate-event-id"] for r in rx.snapshot()]
    assert sorted(got) == sorted(event_ids)  # every event exactly once
    assert len(got) == len(set(got)) == 40


async def test_the_delivery_time_check_refuses_a_name_that_now_resolves_to_metadata(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine
) -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        assert host == "localhost"
        return ["169.254.169.254"]

    async def never_connect(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"the worker tried to connect to {args}")

    sender = Sender(
        EgressGuard(require_https=False, allow_loopback=True, resolver=rebinding),
        timeout=5,
        connect=never_connect,
    )
    with receiver() as rx:
        port = rx.url.split(":")[2].split("/")[0]
        # Registration resolves localhost for real (127.0.0.1: allowed outside production).
        endpoint = await register(
            client, tokens, f"http://localhost:{port}/hook", ["ORDER_CREATED"]
        )
        endpoint_id = endpoint["endpoint"]["id"]
        try:
            await emit_many(engine, tokens.tenants["acme"], 1)
            w = worker(engine, sender=sender)
            assert await w.run_once() == 1
            view = await endpoint_view(client, tokens, endpoint_id)
        finally:
            await unregister(client, tokens, endpoint_id)
    assert rx.snapshot() == []
    (delivery,) = view["deliveries"]
    assert delivery["status"] == "PENDING" and delivery["attempts"] == 1
    assert delivery["lastResponseCode"] is None and delivery["nextAttemptAt"] is not None
    assert delivery["lastError"] == (
        "refused: localhost resolves to 169.254.169.254: 169.254.169.254 is a cloud metadata "
        "address; webhooks may not target it"
    )


def _job(url: str, **overrides: Any) -> Job:
    values: dict[str, Any] = {
        "delivery_id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "endpoint_id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
        "topic": "ORDER_CREATED",
        "payload": b'{"id":"x"}',
        "url": url,
        "secrets": ("whsec_test",),
        "attempts": 0,
        "created_at": dt.datetime.now(dt.UTC),
    }
    values.update(overrides)
    return Job(**values)


@pytest.mark.parametrize("answer", ["10.0.0.1", "169.254.169.254", "127.0.0.1", "::1", "fe80::1"])
async def test_the_sender_never_connects_to_a_refused_address(answer: str) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return [answer]

    async def never_connect(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"the sender tried to connect to {args}")

    sender = Sender(
        EgressGuard(require_https=True, allow_loopback=False, resolver=resolver),
        timeout=2,
        connect=never_connect,
    )
    attempt = await sender.send(_job("https://hooks.example.test/in"))
    assert attempt.status_code is None and not attempt.ok
    assert attempt.error is not None and attempt.error.startswith(
        f"refused: hooks.example.test resolves to {answer}"
    )


async def test_the_sender_connects_to_the_address_it_checked_with_the_urls_host() -> None:
    seen: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with receiver() as rx:
        port = int(rx.url.split(":")[2].split("/")[0])
        guard = EgressGuard(require_https=False, allow_loopback=True, resolver=resolver)
        sender = Sender(guard, timeout=5)
        inner = sender._backend._connect

        async def recording(address: str, port_: int, **kwargs: Any) -> Any:
            seen.append((address, port_))
            return await inner(address, port_, **kwargs)

        sender._backend._connect = recording
        attempt = await sender.send(_job(f"http://hooks.example.test:{port}/in"))
    assert attempt.ok and attempt.status_code == 200
    assert seen == [("127.0.0.1", port)]
    (got,) = rx.snapshot()
    assert got.headers["host"] == f"hooks.example.test:{port}"


async def test_redirects_are_not_followed(tokens: Tokens) -> None:
    with receiver() as rx:
        rx.status, rx.location = 302, "http://169.254.169.254/latest/meta-data/"
        attempt = await Sender(loopback_guard(), timeout=5).send(_job(rx.url))
    assert attempt.status_code == 302 and not attempt.ok
    assert attempt.error == "HTTP 302: redirects are not followed"
    assert len(rx.snapshot()) == 1


async def test_a_slow_receiver_times_out_within_the_bound() -> None:
    with receiver() as rx:
        rx.delay = 2.0
        started = asyncio.get_running_loop().time()
        attempt = await Sender(loopback_guard(), timeout=0.3).send(_job(rx.url))
        elapsed = asyncio.get_running_loop().time() - started
    assert attempt.error == "timed out after 0.3 s"
    assert elapsed < 1.5


async def test_an_endpoint_failing_continuously_is_disabled_and_its_admin_sees_it(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine
) -> None:
    policy = RetryPolicy(
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
        retry_for_seconds=3600,
        lease_seconds=30,
        disable_after_seconds=0,
        disable_after_failures=4,
    )
    with receiver() as rx:
        rx.status = 500
        endpoint = await register(client, tokens, rx.url, ["ORDER_CREATED"])
        endpoint_id = endpoint["endpoint"]["id"]
        w = worker(engine, policy)
        try:
            await emit_many(engine, tokens.tenants["acme"], 2)
            w.start()
            await wait_until(lambda: len(rx.snapshot()) >= 4)
            await asyncio.sleep(0.2)
        finally:
            await w.stop()
        view = await endpoint_view(client, tokens, endpoint_id)
        try:
            # A disabled endpoint is not subscribed any more: nothing is written for it.
            async with tenant_transaction(engine, tokens.tenants["acme"], write=True) as conn:
                assert await outbox.emit(conn, tokens.tenants["acme"], "ORDER_CREATED", {}) is None
        finally:
            await unregister(client, tokens, endpoint_id)
    assert len(rx.snapshot()) == 4
    assert view["status"] == "DISABLED" and view["consecutiveFailures"] == 4
    assert view["disabledReason"].startswith("Disabled after 4 failed attempts in a row since")
    assert "HTTP 500" in view["disabledReason"]
    assert {d["status"] for d in view["deliveries"]} == {"FAILED"}
    assert all(d["nextAttemptAt"] is None for d in view["deliveries"])


async def test_a_delivery_failing_past_the_retry_window_is_marked_failed(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine
) -> None:
    policy = RetryPolicy(
        backoff_base_seconds=0.05,
        backoff_max_seconds=0.1,
        retry_for_seconds=1.0,
        lease_seconds=30,
        disable_after_seconds=3600,
        disable_after_failures=1000,
    )
    with receiver() as rx:
        rx.status = 502
        endpoint = await register(client, tokens, rx.url, ["ORDER_CREATED"])
        endpoint_id = endpoint["endpoint"]["id"]
        w = worker(engine, policy)
        try:
            await emit_many(engine, tokens.tenants["acme"], 1)
            w.start()

            async def final() -> bool:
                view = await endpoint_view(client, tokens, endpoint_id)
                return view["deliveries"][0]["status"] == "FAILED"

            for _ in range(200):
                if await final():
                    break
                await asyncio.sleep(0.05)
            view = await endpoint_view(client, tokens, endpoint_id)
        finally:
            await w.stop()
            await unregister(client, tokens, endpoint_id)
    (delivery,) = view["deliveries"]
    assert delivery["status"] == "FAILED" and delivery["nextAttemptAt"] is None, view
    assert delivery["lastResponseCode"] == 502 and delivery["lastError"] == "HTTP 502", view
    # Retried within the window (how often depends on the machine's speed), then given up.
    assert 1 <= delivery["attempts"] == len(rx.snapshot()), (view, len(rx.snapshot()))
    assert view["status"] == "ENABLED"


async def test_graceful_shutdown_releases_claims_in_flight(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine
) -> None:
    with receiver() as rx:
        rx.delay = 3.0
        endpoint = await register(client, tokens, rx.url, ["ORDER_CREATED"])
        endpoint_id = endpoint["endpoint"]["id"]
        try:
            (event_id,) = await emit_many(engine, tokens.tenants["acme"], 1)
            first = worker(engine)
            first.start()
            await wait_until(lambda: rx.started == 1)
            await first.stop(grace=0.1)
            async with tenant_transaction(engine, tokens.tenants["acme"]) as conn:
                row = (
                    await conn.execute(
                        select(outbox.DELIVERIES).where(
                            outbox.DELIVERIES.c.tenant_id == tokens.tenants["acme"],
                            outbox.DELIVERIES.c.event_id == uuid.UUID(event_id),
                        )
                    )
                ).one()
            # Not stuck until the lease expires: due again at once, for any worker.
            assert row.status == "PENDING" and row.claimed_by is None and row.lease_until is None
            assert row.attempts == 0
            rx.delay = 0
            second = worker(engine)
            assert await second.run_once() == 1
        finally:
            await unregister(client, tokens, endpoint_id)
    delivered = [r.headers["tollgate-event-id"] for r in rx.delivered()]
    assert event_id in delivered  # the duplicate a receiver may see carries the same id


async def test_an_expired_lease_is_claimable_again_and_the_old_claimant_records_nothing(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine
) -> None:
    tenant_id = tokens.tenants["acme"]
    endpoint = await register(client, tokens, "http://127.0.0.1:9/never", ["ORDER_CREATED"])
    try:
        await emit_many(engine, tenant_id, 1)
        now = dt.datetime.now(dt.UTC)
        (job,) = await store.claim(engine, tenant_id, "a", now, limit=10, lease_seconds=60)
        assert await store.claim(engine, tenant_id, "b", now, limit=10, lease_seconds=60) == []
        later = now + dt.timedelta(seconds=61)
        (again,) = await store.claim(engine, tenant_id, "b", later, limit=10, lease_seconds=60)
        assert again.delivery_id == job.delivery_id and again.event_id == job.event_id
        ok = store.Attempt(status_code=200)
        assert await store.record(engine, job, "a", ok, later, QUICK) == "lost"
        assert await store.record(engine, again, "b", ok, later, QUICK) == "delivered"
    finally:
        await unregister(client, tokens, endpoint["endpoint"]["id"])


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff_base_seconds=10, backoff_max_seconds=3600)
    rng = random.Random(1)
    for attempts in range(1, 40):
        ceiling = min(3600, 10 * 2 ** (attempts - 1))
        delays = {policy.backoff(attempts, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter


async def test_one_log_line_per_attempt_without_secret_url_or_payload(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine, settings: Settings
) -> None:
    stream = io.StringIO()
    with receiver() as rx:
        rx.status = 500
        endpoint = await register(client, tokens, rx.url + "?token=hush", ["ORDER_CREATED"])
        endpoint_id = endpoint["endpoint"]["id"]
        configure_logging(level="INFO", json=True, stream=stream)
        try:
            async with tenant_transaction(engine, tokens.tenants["acme"], write=True) as conn:
                await outbox.emit(
                    conn, tokens.tenants["acme"], "ORDER_CREATED", {"email": "jo@example.com"}
                )
            w = worker(engine, policy=dataclasses.replace(QUICK, backoff_base_seconds=0.001))
            assert await w.run_once() == 1
            rx.status = 200
            await asyncio.sleep(0.01)
            assert await w.run_once() == 1
        finally:
            configure_logging(level=settings.log_level, json=settings.log_json)
            await unregister(client, tokens, endpoint_id)
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    attempts = [line for line in lines if line.get("event") == "webhook.attempt"]
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in attempts] == [
        (1, 500, "retry"),
        (2, 200, "delivered"),
    ]
    assert all(
        a["logger"] == "tollgate.webhooks" and a["topic"] == "ORDER_CREATED" for a in attempts
    )
    for secret_or_personal in (endpoint["secret"], "hush", "jo@example.com", rx.url):
        assert secret_or_personal not in text


async def test_pruning_deletes_ended_deliveries_and_expired_previous_secrets(
    client: httpx.AsyncClient, tokens: Tokens, engine: AsyncEngine
) -> None:
    tenant_id = tokens.tenants["acme"]
    with receiver() as rx:
        endpoint = await register(client, tokens, rx.url, ["ORDER_CREATED"])
        endpoint_id = endpoint["endpoint"]["id"]
        try:
            delivered = await emit_many(engine, tenant_id, 2)
            assert await worker(engine).run_once() == 2
            (pending,) = await emit_many(engine, tenant_id, 1)
            rotated = await post(
                client,
                """mutation($id: ID!) { webhookEndpointRotateSecret(input: {id: $id,
                   graceSeconds: 60}) { userErrors { code } } }""",
                {"id": endpoint_id},
                tokens.headers("ADMIN"),
            )
            assert rotated["webhookEndpointRotateSecret"]["userErrors"] == []
            # Nothing has ended long enough ago yet.
            now = dt.datetime.now(dt.UTC)
            assert await store.prune(engine, tenant_id, now, keep_seconds=3600) == 0
            later = now + dt.timedelta(days=10)
            assert await store.prune(engine, tenant_id, later, keep_seconds=86400) >= 2
            async with tenant_transaction(engine, tenant_id) as conn:
                left = (
                    await conn.execute(
                        select(outbox.DELIVERIES.c.event_id, outbox.DELIVERIES.c.status).where(
                            outbox.DELIVERIES.c.tenant_id == tenant_id,
                            outbox.DELIVERIES.c.event_id.in_(
                                [uuid.UUID(e) for e in [*delivered, pending]]
                            ),
                        )
                    )
                ).all()
                events = (
                    (
                        await conn.execute(
                            select(outbox.EVENTS.c.id).where(
                                outbox.EVENTS.c.tenant_id == tenant_id,
                                outbox.EVENTS.c.id.in_(
                                    [uuid.UUID(e) for e in [*delivered, pending]]
                                ),
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                secrets = (
                    await conn.execute(
                        select(
                            outbox.ENDPOINTS.c.previous_secret,
                            outbox.ENDPOINTS.c.previous_secret_expires_at,
                        ).where(outbox.ENDPOINTS.c.tenant_id == tenant_id)
                    )
                ).all()
        finally:
            await unregister(client, tokens, endpoint_id)
    assert [(str(row.event_id), row.status) for row in left] == [(pending, "PENDING")]
    assert [str(e) for e in events] == [pending]
    assert all(row.previous_secret is None for row in secrets)


async def test_an_unexpected_error_while_sending_is_a_failed_attempt_not_a_crash() -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    sender = Sender(loopback_guard(), timeout=2, connect=broken)
    attempt = await sender.send(_job("http://127.0.0.1:9/x"))
    assert attempt == store.Attempt(status_code=None, error="failed: RuntimeError")


def test_settings_decide_loopback_https_and_a_lease_covering_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.webhooks import webhook_egress, webhook_worker

    secret = "s" * 40
    assert Settings(env="development").effective_webhook_allow_loopback is True
    assert Settings(env="production", jwt_secret=secret).effective_webhook_allow_loopback is False
    monkeypatch.setenv("TOLLGATE_WEBHOOK_ALLOW_LOOPBACK", "true")
    prod = Settings(env="production", jwt_secret=secret)
    assert webhook_egress(prod) == EgressGuard(require_https=True, allow_loopback=True)
    monkeypatch.setenv("TOLLGATE_WEBHOOK_ALLOW_LOOPBACK", "false")
    dev = Settings(env="development", webhook_timeout_seconds=5, webhook_batch=10)
    assert webhook_egress(dev) == EgressGuard(require_https=False, allow_loopback=False)
    built = webhook_worker(dev, engine=None)  # type: ignore[arg-type]
    assert built.policy.lease_seconds == 5 * 11 + 30 and built.sender.timeout == 5


async def test_the_event_commits_or_rolls_back_with_the_change(
    client: httpx.AsyncClient,
    tokens: Tokens,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The outbox rows are written on the mutation's connection: when the transaction fails
    after they were written, neither the order nor its event exists."""
    from resolvers.errors import UserErrorCode, UserFailure
    from tests.server.webhook_helpers import CREATE_ORDER, new_product

    tenant_id = tokens.tenants["acme"]
    written: list[uuid.UUID] = []
    original = outbox.emit_order

    async def emit_then_fail(*args: Any, **kwargs: Any) -> Any:
        event_id = await original(*args, **kwargs)
        assert event_id is not None
        written.append(event_id)
        raise UserFailure(UserErrorCode.INVALID_STATE, "failed after the outbox write")

    product_id = await new_product(client, tokens, stock=5)
    endpoint = await register(client, tokens, "http://127.0.0.1:9/tx", ["ORDER_CREATED"])
    try:
        monkeypatch.setattr(outbox, "emit_order", emit_then_fail)
        order = {
            "idempotencyKey": uuid.uuid4().hex,
            "currency": "USD",
            "items": [{"productId": product_id, "quantity": 1}],
        }
        data = await post(client, CREATE_ORDER, {"input": order}, tokens.headers("CUSTOMER"))
        assert data["createOrder"]["order"] is None
        assert data["createOrder"]["userErrors"][0]["message"] == "failed after the outbox write"
        async with tenant_transaction(engine, tenant_id) as conn:
            events = (
                await conn.execute(
                    select(outbox.EVENTS.c.id).where(
                        outbox.EVENTS.c.tenant_id == tenant_id, outbox.EVENTS.c.id.in_(written)
                    )
                )
            ).all()
            deliveries = (
                await conn.execute(
                    select(outbox.DELIVERIES.c.id).where(
                        outbox.DELIVERIES.c.tenant_id == tenant_id,
                        outbox.DELIVERIES.c.event_id.in_(written),
                    )
                )
            ).all()
    finally:
        monkeypatch.undo()
        await unregister(client, tokens, endpoint["endpoint"]["id"])
    assert len(written) == 1 and events == [] and deliveries == []
