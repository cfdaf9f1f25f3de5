"""Cost-based rate limiting through the real app: memory and Redis buckets, faults, headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.app import create_app
from tests.server.conftest import Tokens, gql, make_settings, operation
from tests.services import REDIS_URL, require_redis

BACKENDS = pytest.mark.parametrize("backend", ["memory", "redis"])


@pytest.fixture
async def limited(database_url: str, backend: str) -> AsyncIterator[httpx.AsyncClient]:
    redis_url = None
    if backend == "redis":
        require_redis()
        redis_url = REDIS_URL
    app = create_app(
        make_settings(
            database_url,
            redis_url=redis_url,
            user_capacity=300,
            user_restore_rate=1.0,
            tenant_capacity=100_000,
            write_capacity=200,
            write_restore_rate=1.0,
            response_cache=False,  # the limiter's arithmetic, on operations repeated as is
        )
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


def _fresh_user_headers(tokens: Tokens) -> dict[str, str]:
    # A token for a new subject of acme, so each test starts with a full bucket.
    from auth import Role
    from auth.tokens import mint_token

    token = mint_token(
        tokens.settings.jwt(),
        subject=str(uuid.uuid4()),
        tenant_id=tokens.tenants["acme"],
        role=Role.STAFF,
    )
    return {"Authorization": f"Bearer {token}"}


@BACKENDS
async def test_debits_refunds_headers_and_throttling(
    limited: httpx.AsyncClient, tokens: Tokens, backend: str
) -> None:
    headers = _fresh_user_headers(tokens)
    query = "query($f: Int) { products(first: $f) { nodes { id } } }"  # requested 1 + f
    first = await gql(limited, query, {"f": 100}, headers)
    cost = first.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 101 and cost["actualQueryCost"] == 101
    assert first.headers["x-ratelimit-limit"] == "300"
    assert int(first.headers["x-ratelimit-remaining"]) in range(195, 201)
    assert first.headers["ratelimit-policy"].startswith('"user";q=300;w=300')
    # A dry run prices without charging or executing.
    dry = await gql(limited, query, {"f": 100}, {**headers, "X-Cost-Dry-Run": "1"})
    assert dry.json()["data"] == {} and dry.json()["extensions"]["cost"]["dryRun"] is True
    assert dry.json()["extensions"]["cost"]["breakdown"]
    # Only 12 objects exist for this search, so 89 of the 101 requested are refunded.
    small = await gql(
        limited,
        'query($f: Int) { products(first: $f, search: "zzz-none") { nodes { id } } }',
        {"f": 100},
        headers,
    )
    assert small.json()["extensions"]["cost"]["actualQueryCost"] == 1
    remaining = int(small.headers["x-ratelimit-remaining"])
    assert remaining >= 95
    second = await gql(limited, query, {"f": 100}, headers)
    assert second.status_code == 200
    throttled = await gql(limited, query, {"f": 100}, headers)
    throttled = (
        throttled
        if throttled.status_code == 429
        else await gql(limited, query, {"f": 100}, headers)
    )
    assert throttled.status_code == 429
    body = throttled.json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert int(throttled.headers["retry-after"]) >= 1
    assert throttled.headers["x-ratelimit-limit"] == "300" and "ratelimit" in throttled.headers
    # Refusals before the debit (here a parse error) still carry the caller's budget.
    broken = await gql(limited, "{", None, headers)
    assert broken.status_code == 400 and broken.headers["x-ratelimit-limit"] == "300"
    assert broken.headers["ratelimit-policy"].startswith('"user"')


@BACKENDS
async def test_cost_over_capacity_is_cost_limit_exceeded(
    limited: httpx.AsyncClient, tokens: Tokens, backend: str
) -> None:
    response = await gql(
        limited, operation("OrdersPage"), {"first": 50}, _fresh_user_headers(tokens)
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"


@BACKENDS
async def test_rate_limit_field_reports_the_budget(
    limited: httpx.AsyncClient, tokens: Tokens, backend: str
) -> None:
    data: Any = (
        await gql(limited, operation("RateLimitStatus"), None, _fresh_user_headers(tokens))
    ).json()["data"]
    assert data["rateLimit"]["limit"] == 300 and data["rateLimit"]["cost"] == 1
    assert data["rateLimit"]["remaining"] == 299 and data["rateLimit"]["restoreRate"] == 1.0


async def test_unreachable_redis_fails_open_or_closed_never_500(
    database_url: str, tokens: Tokens
) -> None:
    for fail_open, status in ((True, 200), (False, 503)):
        app = create_app(
            make_settings(
                database_url,
                redis_url="redis://127.0.0.1:1/0",
                redis_timeout_ms=50,
                ratelimit_fail_open=fail_open,
            )
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            response = await gql(http, "{ viewer { id } }", headers=_fresh_user_headers(tokens))
            assert response.status_code == status, response.text
            if status == 503:
                assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
