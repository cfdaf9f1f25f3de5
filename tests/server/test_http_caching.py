"""Conditional GET (ETag, 304, Cache-Control, Vary) and batches priced as one total."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import create_app
from tests.server.conftest import Tokens, make_settings, operation


async def test_get_carries_a_strong_etag_and_answers_304(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    # Text no test registers (a registered document's GET carries its cache policy's
    # Cache-Control instead: tests/server/test_response_cache.py).
    text = operation("ProductCatalog") + "\n# ad hoc"
    params = {"query": text, "variables": '{"first": 3}'}
    headers = tokens.headers("CUSTOMER")
    first = await client.get("/graphql", params=params, headers=headers)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "private, no-cache"
    assert "Authorization" in first.headers["vary"]
    again = await client.get("/graphql", params=params, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get(
        "/graphql",
        params={**params, "variables": '{"first": 4}'},
        headers={**headers, "If-None-Match": etag},
    )
    assert other.status_code == 200 and other.headers["etag"] != etag
    posted = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert "etag" not in posted.headers


@pytest.fixture
async def batching(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        make_settings(database_url, batching=True, user_capacity=150, user_restore_rate=1.0)
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        yield http


async def test_batches_are_off_by_default(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await client.post(
        "/graphql", json=[{"query": "{ __typename }"}] * 2, headers=tokens.headers()
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BATCH_LIMIT_EXCEEDED"


async def test_a_batch_is_bounded_and_priced_as_one_total(
    batching: httpx.AsyncClient, tokens: Tokens
) -> None:
    """T9/T16: the batch's total is debited at once; over the budget nothing runs."""
    headers = tokens.headers("STAFF", "globex")
    too_many = await batching.post(
        "/graphql", json=[{"query": "{ __typename }"}] * 11, headers=headers
    )
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["extensions"]["limit"] == 10
    ops = [{"query": "{ products(first: 50) { nodes { id } } }"}] * 2  # 51 points each
    ran = await batching.post("/graphql", json=ops, headers=headers)
    assert ran.status_code == 200 and [len(r["data"]["products"]["nodes"]) for r in ran.json()] == [
        50,
        50,
    ]
    assert int(ran.headers["x-ratelimit-remaining"]) <= 150 - 102 + 2
    refused = await batching.post("/graphql", json=ops, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
