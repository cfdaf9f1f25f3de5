"""Persisted queries over HTTP: APQ, documentId, allowlist mode, the admin endpoint."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from server.app import create_app
from tests.server.conftest import Tokens, gql, make_settings, operation

STRICT = {"Accept": "application/graphql-response+json"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _apq(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": _sha(text)}}


async def test_apq_miss_then_register_then_hit(client: httpx.AsyncClient, tokens: Tokens) -> None:
    text = "query ApqProbe { viewer { id } } # " + tokens.settings.database_url[-8:]
    headers = {**STRICT, **tokens.headers("CUSTOMER")}
    miss = await client.post("/graphql", json={"extensions": _apq(text)}, headers=headers)
    assert miss.status_code == 200
    assert miss.json()["errors"][0] == {
        "message": "PersistedQueryNotFound",
        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
    }
    assert "no-cache" in miss.headers["cache-control"]
    registered = await client.post(
        "/graphql", json={"query": text, "extensions": _apq(text)}, headers=headers
    )
    assert registered.status_code == 200 and registered.json()["data"]["viewer"]["id"]
    hit = await client.get(
        "/graphql", params={"extensions": orjson.dumps(_apq(text)).decode()}, headers=headers
    )
    assert hit.status_code == 200 and hit.json()["data"] == registered.json()["data"]
    mismatch = await client.post(
        "/graphql", json={"query": "{ __typename }", "extensions": _apq(text)}, headers=headers
    )
    assert mismatch.status_code == 400
    assert mismatch.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"


@pytest.fixture(scope="module")
async def allowlist(database_url: str, tokens: Tokens) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url, pq_mode="allowlist"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        yield http


async def test_allowlist_runs_only_registered_documents(
    allowlist: httpx.AsyncClient, tokens: Tokens
) -> None:
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {
                "id": "viewer-profile-v1",
                "name": "ViewerProfile",
                "type": "query",
                "body": operation("ViewerProfile"),
            },
            {
                "id": _sha(operation("ProductCatalog")),
                "name": "ProductCatalog",
                "type": "query",
                "body": operation("ProductCatalog"),
            },
        ],
    }
    forbidden = await allowlist.post(
        "/admin/persisted-queries", json={"manifest": manifest}, headers=tokens.headers("STAFF")
    )
    assert forbidden.status_code == 403
    pushed = await allowlist.post(
        "/admin/persisted-queries", json={"manifest": manifest}, headers=tokens.headers("ADMIN")
    )
    assert pushed.status_code == 200, pushed.text
    assert len(pushed.json()["added"]) + len(pushed.json()["unchanged"]) == 2
    customer = {**STRICT, **tokens.headers("CUSTOMER")}
    by_id = await allowlist.post(
        "/graphql", json={"documentId": "viewer-profile-v1"}, headers=customer
    )
    assert by_id.status_code == 200 and by_id.json()["data"]["viewer"]["role"] == "CUSTOMER"
    by_get = await allowlist.get(
        "/graphql",
        params={"documentId": f"sha256:{_sha(operation('ProductCatalog'))}"},
        headers=customer,
    )
    assert by_get.status_code == 200 and by_get.json()["data"]["products"]["edges"]
    relay = await allowlist.post("/graphql", json={"doc_id": "viewer-profile-v1"}, headers=customer)
    assert relay.status_code == 200 and "errors" not in relay.json()
    adhoc = await gql(allowlist, "{ viewer { id email } }", headers=tokens.headers("CUSTOMER"))
    error = adhoc.json()["errors"][0]
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
    assert "viewer" not in error["message"] and "data" not in adhoc.json()
    unknown = await allowlist.post(
        "/graphql", json={"extensions": _apq("{ __typename }")}, headers=customer
    )
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
    developer = await gql(allowlist, "{ viewer { id } }", headers=tokens.headers("STAFF"))
    assert developer.status_code == 200 and developer.json()["data"]["viewer"]["id"]
    listing = await allowlist.get("/graphql/persisted", headers=tokens.headers("STAFF"))
    assert {"viewer-profile-v1"} <= {op["id"] for op in listing.json()["operations"]}


async def test_registration_refuses_documents_over_the_cost_limit(
    database_url: str, tokens: Tokens
) -> None:
    app = create_app(make_settings(database_url, limits={"max_cost": "50"}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        manifest = {"orders-page": operation("OrdersPage")}
        pushed = await http.post(
            "/admin/persisted-queries",
            json={"manifest": manifest, "clientName": "web"},
            headers=tokens.headers("ADMIN"),
        )
        refused = pushed.json()["refused"]
        assert (
            refused and refused[0]["id"] == "orders-page" and "cost" in refused[0]["reason"].lower()
        )
