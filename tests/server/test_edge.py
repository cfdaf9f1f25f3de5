"""The HTTP edge: CORS with an explicit origin list, gzip, and the rateLimit dry run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import create_app
from tests.server.conftest import Tokens, gql, make_settings, operation


@pytest.fixture
async def edge(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url, cors_origins=["https://shop.example"]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        yield http


async def test_cors_allows_only_the_configured_origins(edge: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = await edge.options(
        "/graphql", headers={"Origin": "https://shop.example", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    refused = await edge.options(
        "/graphql", headers={"Origin": "https://evil.example", **preflight}
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    simple = await edge.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in simple.headers


async def test_large_responses_are_gzipped(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await gql(
        client,
        operation("OrdersPage"),
        {"first": 20},
        {**tokens.headers(), "Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["data"]["orders"]["nodes"]


@pytest.mark.parametrize("accept", ["identity", None])
async def test_uncompressed_answers_still_vary_on_accept_encoding(
    client: httpx.AsyncClient, tokens: Tokens, accept: str | None
) -> None:
    """A cache between client and server must not hand a gzipped body to a client that did
    not ask for one, nor the reverse: every answer names Accept-Encoding in Vary, beside
    what the endpoint already varies on (Authorization for a caller's GET)."""
    request = client.build_request(
        "GET",
        "/graphql",
        params={"query": operation("ProductCatalog") + "\n# vary", "variables": '{"first": 3}'},
        headers=tokens.headers("CUSTOMER"),
    )
    del request.headers["accept-encoding"]  # httpx's default asks for gzip
    if accept is not None:
        request.headers["accept-encoding"] = accept
    response = await client.send(request)
    assert response.status_code == 200 and "content-encoding" not in response.headers
    vary = [v.strip().lower() for v in response.headers["vary"].split(",")]
    assert "accept-encoding" in vary and "authorization" in vary
    assert len(response.headers.get_list("vary")) == 1


async def test_rate_limit_dry_run_prices_without_executing_or_charging(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    query = "query { rateLimit(dryRun: true) { cost nodeCount remaining } orders(first: 50) { nodes { id items { quantity } } } }"
    headers = tokens.headers("STAFF", "globex")
    first = (await gql(client, query, headers=headers)).json()
    second = (await gql(client, query, headers=headers)).json()
    assert "orders" not in first["data"]  # priced, not executed
    assert (
        first["data"]["rateLimit"]["cost"] == first["extensions"]["cost"]["requestedQueryCost"] > 1
    )
    assert first["data"]["rateLimit"]["nodeCount"] > 50
    assert (
        second["data"]["rateLimit"]["remaining"] >= first["data"]["rateLimit"]["remaining"]
    )  # not charged
    breakdown = first["extensions"]["cost"]["breakdown"]
    assert {"path", "weight", "multiplier", "subtotal"} <= set(breakdown[0])
    assert first["extensions"]["cost"]["actualQueryCost"] == 0
