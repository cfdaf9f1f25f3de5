"""Read scopes (issue #12, finding 5): `read:orders`, `read:products` and `read:users` are
enforced on the fields they name as soon as a token carries any `read:*` scope; a token with
none keeps the role rules. A denied field is FORBIDDEN with the rest of the answer intact
(as far as GraphQL's null propagation allows), on both executors and both databases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth import ROLE_SCOPES, Principal, Role, policy
from server.app import create_app
from tests.server.conftest import Tokens, gql, make_settings

SCOPES = sorted(
    {"read:orders", "read:products", "read:users", "read:reviews"} | set(ROLE_SCOPES[Role.ADMIN])
)
LOOKUPS = """query($o: ID!, $p: ID!, $u: ID!) {
  order(id: $o) { id number }
  product(id: $p) { id name }
  node(id: $u) { id }
  viewer { id name }
}"""
ORDERS = "{ orders(first: 1) { totalCount nodes { id } } }"
PRODUCTS = "{ products(first: 1) { totalCount nodes { id } } }"
USERS = "{ users(first: 1) { totalCount } }"
VIEWER_ORDERS = "{ viewer { id orders(first: 1) { totalCount } } }"


@pytest.fixture(scope="module")
async def generic_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same app with graphql-core's executor only (``fast_executor=False``)."""
    application = create_app(make_settings(database_url, fast_executor=False))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture(scope="module")
async def ids(client: httpx.AsyncClient, tokens: Tokens) -> dict[str, str]:
    """A customer's own order, a product and the customer's own user id."""
    response = await gql(
        client,
        "{ viewer { id orders(first: 1) { nodes { id } } } products(first: 1) { nodes { id } } }",
        None,
        tokens.headers("CUSTOMER"),
    )
    data = response.json()["data"]
    return {
        "o": data["viewer"]["orders"]["nodes"][0]["id"],
        "p": data["products"]["nodes"][0]["id"],
        "u": data["viewer"]["id"],
    }


def _forbidden_paths(body: dict[str, Any]) -> set[tuple[Any, ...]]:
    errors = body.get("errors") or []
    assert all(e["extensions"]["code"] == "FORBIDDEN" for e in errors), body
    return {tuple(e["path"]) for e in errors}


def _may(role: str, scopes: frozenset[str], scope: str) -> bool:
    """The rule, stated independently of auth.policy."""
    if not any(s.startswith("read:") for s in scopes):
        return True
    return scope in scopes


async def _check(
    http: httpx.AsyncClient,
    tokens: Tokens,
    ids: dict[str, str],
    role: str,
    scopes: frozenset[str],
) -> None:
    headers = tokens.headers(role, scopes=sorted(scopes))
    context = {"role": role, "scopes": sorted(scopes)}

    lookups = await gql(http, LOOKUPS, ids, headers)
    assert lookups.status_code == 200, lookups.text
    body = lookups.json()
    denied = _forbidden_paths(body)
    lookups_scopes = {"order": "read:orders", "product": "read:products", "node": "read:users"}
    expected = {(f,) for f, scope in lookups_scopes.items() if not _may(role, scopes, scope)}
    assert denied == expected, (context, body)
    data = body["data"]
    # The rest is intact: every field not denied is served, the viewer always is.
    assert data["viewer"]["id"], (context, body)
    for field, key in (("order", "o"), ("product", "p"), ("node", "u")):
        if (field,) in denied:
            assert data[field] is None
        else:
            assert data[field]["id"] == ids[key], (context, body)

    for query, field, scope in (
        (ORDERS, "orders", "read:orders"),
        (PRODUCTS, "products", "read:products"),
        (VIEWER_ORDERS, "viewer", "read:orders"),
    ):
        answer = (await gql(http, query, None, headers)).json()
        if _may(role, scopes, scope):
            assert "errors" not in answer, (context, query, answer)
        else:
            assert answer["data"] is None, (context, query, answer)
            paths = _forbidden_paths(answer)
            assert paths and all(p[0] == field for p in paths), (context, query, answer)

    users = (await gql(http, USERS, None, headers)).json()
    if role == "STAFF" and _may(role, scopes, "read:users"):
        assert "errors" not in users, (context, users)
    else:
        assert _forbidden_paths(users) == {("users",)}, (context, users)


async def test_a_products_only_token_does_not_read_orders(
    client: httpx.AsyncClient,
    generic_client: httpx.AsyncClient,
    tokens: Tokens,
    ids: dict[str, str],
) -> None:
    """The report: `token --role customer --scope "read:products"` still read `orders`."""
    headers = tokens.headers("CUSTOMER", scopes=["read:products"])
    for http in (client, generic_client):
        body = (await gql(http, ORDERS, None, headers)).json()
        assert body["data"] is None and _forbidden_paths(body) == {("orders",)}, body
        body = (await gql(http, LOOKUPS, ids, headers)).json()
        assert _forbidden_paths(body) == {("order",), ("node",)}, body
        assert body["data"]["product"]["id"] == ids["p"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    role=st.sampled_from(["CUSTOMER", "STAFF"]),
    scopes=st.frozensets(st.sampled_from(SCOPES)),
)
async def test_read_scopes_over_any_scope_set(
    client: httpx.AsyncClient,
    generic_client: httpx.AsyncClient,
    tokens: Tokens,
    ids: dict[str, str],
    role: str,
    scopes: frozenset[str],
) -> None:
    for http in (client, generic_client):
        await _check(http, tokens, ids, role, scopes)


@given(scopes=st.frozensets(st.text(min_size=1, max_size=12)))
def test_the_policy_predicate_matches_the_rule(scopes: frozenset[str]) -> None:
    principal = Principal(subject="s", tenant_id=None, role=Role.CUSTOMER, scopes=scopes)
    named = (("Order", "read:orders"), ("Product", "read:products"), ("User", "read:users"))
    for type_name, scope in named:
        assert policy.can_read(principal, type_name) == _may("CUSTOMER", scopes, scope)
    assert policy.can_read(principal, "Review")
