"""GraphQL-over-HTTP behaviour, authentication (T18 over HTTP), masking and introspection."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from server.app import create_app
from server.settings import Settings
from tests.server.conftest import Tokens, gql, make_settings

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_get_runs_queries_and_refuses_mutations_with_405(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    ok = await client.get("/graphql", params={"query": "{ __typename }"}, headers=tokens.headers())
    assert ok.status_code == 200 and ok.json() == {
        "data": {"__typename": "Query"},
        "extensions": ok.json()["extensions"],
    }
    refused = await client.get(
        "/graphql",
        params={"query": "mutation { __typename }"},
        headers={"Accept": GRAPHQL_RESPONSE, **tokens.headers()},
    )
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"
    assert "data" not in refused.json()


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"],
)
async def test_csrf_able_content_types_are_415(
    client: httpx.AsyncClient, tokens: Tokens, content_type: str
) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query":"{ __typename }"}',
        headers={"Content-Type": content_type, **tokens.headers()},
    )
    assert response.status_code == 415


async def test_malformed_json_and_bad_parameters_are_400(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    for body in (
        b'{ "not a JSON',
        b"[]",
        b"42",
        b'{"query": 1}',
        b'{"query": "{ __typename }", "variables": []}',
        b"",
    ):
        response = await client.post(
            "/graphql",
            content=body,
            headers={
                "Content-Type": "application/json",
                "Accept": GRAPHQL_RESPONSE,
                **tokens.headers(),
            },
        )
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["extensions"]["code"], body


async def test_parse_and_validation_failures_are_400_without_data_for_graphql_response_json(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    for query, code in (("{", "GRAPHQL_PARSE_FAILED"), ("{ nope }", "GRAPHQL_VALIDATION_FAILED")):
        strict = await gql(client, query, headers=tokens.headers())
        assert strict.status_code == 400
        assert strict.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        assert "data" not in strict.json()
        assert strict.json()["errors"][0]["extensions"]["code"] == code
        legacy = await client.post(
            "/graphql",
            json={"query": query},
            headers={"Accept": "application/json", **tokens.headers()},
        )
        assert legacy.status_code == 200
        assert legacy.headers["content-type"].startswith("application/json")


async def test_unacceptable_accept_is_406(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"Accept": "text/csv", **tokens.headers()},
    )
    assert response.status_code == 406


def _forge(settings: Settings, tokens: Tokens, **changes: Any) -> str:
    user = tokens.users[("acme", "STAFF")]
    now = int(time.time())
    claims = {
        "sub": str(user.id),
        "tenant": str(tokens.tenants["acme"]),
        "role": "STAFF",
        "scope": "read:orders",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "exp": now + 600,
        "iat": now,
    }
    key = changes.pop("key", settings.effective_jwt_secret)
    algorithm = changes.pop("algorithm", "HS256")
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_forged_tokens_are_401_and_never_anonymous(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    """T18 over HTTP: every bad token is 401 UNAUTHENTICATED with no data."""
    now = int(time.time())
    good = _forge(settings, tokens)
    header, _payload, signature = good.split(".")
    edited = jwt.encode({"role": "ADMIN"}, "x" * 32, algorithm="HS256").split(".")[1]
    forged = {
        "alg none": jwt.encode(
            {"sub": "x", "tenant": str(tokens.tenants["acme"])}, None, algorithm="none"
        ),
        "wrong key": _forge(settings, tokens, key="another-secret-that-is-long-enough-000000"),
        "expired": _forge(settings, tokens, exp=now - 3600),
        "not yet valid": _forge(settings, tokens, nbf=now + 3600),
        "wrong issuer": _forge(settings, tokens, iss="evil"),
        "wrong audience": _forge(settings, tokens, aud="other-api"),
        "no exp": _forge(settings, tokens, exp=None),
        "edited claims": f"{header}.{edited}.{signature}",
        "garbage": "not.a.jwt",
    }
    for name, token in forged.items():
        response = await gql(
            client, "{ viewer { id } }", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, name
        body = response.json()
        assert "data" not in body, name
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", name
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (
        await gql(client, "{ viewer { id } }", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200
    malformed = await gql(client, "{ __typename }", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert malformed.status_code == 401


async def test_anonymous_callers_get_nothing_private(client: httpx.AsyncClient) -> None:
    body = (await gql(client, "{ viewer { id } }")).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    orders = (await gql(client, "{ orders { nodes { id } } }")).json()
    assert orders["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_introspection_and_suggestions_follow_policy(
    database_url: str, tokens: Tokens
) -> None:
    """T2, T3, T5: in production only graphql:introspect may introspect or see suggestions."""
    settings = make_settings(database_url, env="production", jwt_secret="p" * 48, pq_mode="open")
    production = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=production), base_url="http://t"
    ) as http:
        prod_tokens = Tokens(settings)
        prod_tokens.users, prod_tokens.tenants = tokens.users, tokens.tenants
        customer = prod_tokens.headers("CUSTOMER")
        staff = prod_tokens.headers("STAFF")
        schema_query = "{ __schema { types { name } } }"
        refused = (await gql(http, schema_query, headers=customer)).json()
        assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "data" not in refused
        allowed = (await gql(http, schema_query, headers=staff)).json()
        assert "errors" not in allowed and allowed["data"]["__schema"]["types"]
        typo = (await gql(http, "{ order { numbr } }", headers=customer)).json()
        assert "Did you mean" not in str(typo)
        assert "Did you mean" in str((await gql(http, "{ ordrs { id } }", headers=staff)).json())
        # GraphiQL is off in production.
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in page.text.lower()


async def test_unexpected_errors_are_masked_with_the_request_id(
    client: httpx.AsyncClient, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T15: an exception inside a resolver becomes INTERNAL_SERVER_ERROR with the request id."""
    from resolvers import queries

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail: password=hunter2")

    monkeypatch.setattr(queries, "orders_page", broken)
    response = await gql(
        client,
        "{ orders { nodes { id } } }",
        headers={"X-Request-ID": "req-123", **tokens.headers()},
    )
    body = response.json()
    assert response.headers["x-request-id"] == "req-123"
    error = body["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"}
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_body_over_the_limit_is_413(database_url: str, tokens: Tokens) -> None:
    app = create_app(make_settings(database_url, max_body_bytes=2_000))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.post(
            "/graphql", json={"query": "{ __typename }" + " " * 5_000}, headers=tokens.headers()
        )
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_TOO_LARGE"


async def test_security_headers_and_request_ids(client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await gql(
        client,
        "{ __typename }",
        headers={"X-Request-ID": "bad id\nwith newline", **tokens.headers()},
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cross-origin-resource-policy"] == "same-origin"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    assert len(response.headers.get_list("content-security-policy")) == 1
    assert "strict-transport-security" not in response.headers
    assert (
        response.headers["x-request-id"] != "bad id\nwith newline"
        and len(response.headers["x-request-id"]) >= 16
    )


async def test_graphiql_is_served_from_the_app_under_a_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert len(page.headers.get_list("content-security-policy")) == 1  # the page's own
    assert "script-src 'self'" in csp and "http" not in csp.split("connect-src")[0]
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    script = await client.get("/graphiql/static/graphiql.min.js")
    assert script.status_code == 200 and len(script.content) > 100_000


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
