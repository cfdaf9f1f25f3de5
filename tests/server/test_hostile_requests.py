"""The hostile request corpus: whole HTTP requests (beside the gate's hostile documents in
tests/guards/test_gate.py), each refused cheaply, with its own code, and paid for."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from resolvers.ids import to_global_id
from server.app import create_app
from tests.server.conftest import Tokens, make_settings

STRICT = {"Accept": "application/graphql-response+json"}
WIDE = "query Wide {" + "".join(f" p{i}: products(first: 100) {{ nodes {{ id name }} }}" for i in range(10)) + " }"  # fmt: skip


def _apq(text: str) -> dict[str, Any]:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


@dataclass(frozen=True)
class Hostile:
    body: Callable[[], Any]
    code: str
    status: int
    setup: dict[str, Any] | None = None  # a request sent first (e.g. an APQ registration)


HOSTILE: dict[str, Hostile] = {
    "900 KB operation name": Hostile(
        lambda: {"query": "query Q { __typename }", "operationName": "N" * 900_000},
        "OPERATION_NAME_TOO_LONG",
        400,
    ),
    "900 KB operation name on a persisted id": Hostile(
        lambda: {"extensions": _apq("query Q { __typename }"), "operationName": "N" * 900_000},
        "OPERATION_NAME_TOO_LONG",
        400,
        setup={"query": "query Q { __typename }", "extensions": _apq("query Q { __typename }")},
    ),
    "hash-first batch": Hostile(
        lambda: (
            [{"extensions": _apq(WIDE)} for _ in range(9)]
            + [{"query": WIDE, "extensions": _apq(WIDE)}]
        ),
        "PERSISTED_QUERY_NOT_FOUND",
        200,
    ),
    "10,000-id variable": Hostile(
        lambda: {
            "query": "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            "variables": {"ids": [to_global_id("Order", uuid.uuid4()) for _ in range(10_000)]},
        },
        "BAD_USER_INPUT",
        400,
    ),
}


@pytest.fixture
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        make_settings(database_url, batching=True, user_capacity=25_000, user_restore_rate=0.001)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_request_is_refused_with_its_own_code_and_paid_for(
    http: httpx.AsyncClient, tokens: Tokens, name: str
) -> None:
    from auth import Role
    from auth.tokens import mint_token

    case = HOSTILE[name]
    token = mint_token(
        tokens.settings.jwt(),
        subject=str(uuid.uuid4()),
        tenant_id=tokens.tenants["acme"],
        role=Role.CUSTOMER,
    )
    headers = {**STRICT, "Authorization": f"Bearer {token}"}
    if case.setup is not None:
        assert (await http.post("/graphql", json=case.setup, headers=headers)).status_code == 200
    before = 25_000 if case.setup is None else None
    response = await http.post("/graphql", json=case.body(), headers=headers)
    assert response.status_code == case.status, response.text[:500]
    body = response.json()
    first = body[0] if isinstance(body, list) else body
    assert first["errors"][0]["extensions"]["code"] == case.code
    assert len(response.content) < 200_000  # nothing unbounded is echoed
    remaining = int(response.headers["x-ratelimit-remaining"])
    if isinstance(body, list):  # every item that ran was priced and charged
        ran = sum(
            item.get("extensions", {}).get("cost", {}).get("actualQueryCost", 0) for item in body
        )
        assert 25_000 - remaining >= ran > 0
    elif before is not None:
        assert remaining == before - 1  # a refusal costs one point
