"""One owner for an operation's life (issue #12): exact prices, exact refusals, one balance.

Each test reproduces a finding of issue #12 through ``create_app()`` on SQLite and
PostgreSQL (and the Redis limiter where the finding needs it); each failed on ce9ab3d.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from auth import Role
from auth.tokens import mint_token
from resolvers.ids import to_global_id
from server.app import create_app
from tests.server.conftest import Tokens, gql, make_settings, operation
from tests.services import REDIS_URL, require_redis

STRICT = {"Accept": "application/graphql-response+json"}


@contextlib.asynccontextmanager
async def serve(database_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    # Budget arithmetic on repeated operations: without the response cache's hit price.
    app = create_app(make_settings(database_url, **{"response_cache": False, **overrides}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        http.app = app  # type: ignore[attr-defined]
        yield http


def fresh(tokens: Tokens, role: Role = Role.CUSTOMER, tenant: str = "acme") -> dict[str, str]:
    """A token for a new subject, so its bucket starts full."""
    token = mint_token(
        tokens.settings.jwt(),
        subject=str(uuid.uuid4()),
        tenant_id=tokens.tenants[tenant],
        role=role,
    )
    return {"Authorization": f"Bearer {token}"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _apq(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": _sha(text)}}


# -- finding 2: a batch's items are all resolved before the batch is priced ---------------------


async def test_hash_first_batch_is_priced_with_every_item_resolved(
    database_url: str, tokens: Tokens
) -> None:
    text = (
        "{"
        + "".join(f" p{i}: products(first: 100) {{ nodes {{ id name }} }}" for i in range(10))
        + " }"
    )
    text = "query Wide " + text
    async with serve(
        database_url, batching=True, user_capacity=25_000, user_restore_rate=0.001
    ) as http:
        headers = {**STRICT, **fresh(tokens)}
        batch = [{"extensions": _apq(text)} for _ in range(9)]
        batch.append({"query": text, "extensions": _apq(text)})
        response = await http.post("/graphql", json=batch, headers=headers)
        assert response.status_code == 200, response.text
        items = response.json()
        actual = sum(
            (item.get("extensions") or {}).get("cost", {}).get("actualQueryCost", 0)
            for item in items
        )
        spent = 25_000 - int(response.headers["x-ratelimit-remaining"])
        # Every item that ran was priced and charged: the bucket paid at least what ran.
        assert spent >= actual > 0
        codes = [item["errors"][0]["extensions"]["code"] for item in items[:9]]
        assert codes == ["PERSISTED_QUERY_NOT_FOUND"] * 9
        assert items[9]["data"] is not None


async def test_a_dry_run_in_a_batch_is_not_charged_its_price(
    database_url: str, tokens: Tokens
) -> None:
    """A dry run prices without charging: inside a batch as alone (it was debited its full
    price up front, so a batch of dry runs over the balance was throttled or refused)."""
    text = (
        "query Wide {"
        + "".join(f" p{i}: products(first: 100) {{ nodes {{ id name }} }}" for i in range(10))
        + " }"
    )
    async with serve(
        database_url, batching=True, user_capacity=500, user_restore_rate=0.001
    ) as http:
        headers = {**STRICT, **fresh(tokens), "X-Cost-Dry-Run": "1"}
        alone = await http.post("/graphql", json={"query": text}, headers=headers)
        assert alone.status_code == 200, alone.text
        price = alone.json()["extensions"]["cost"]["requestedQueryCost"]
        assert price > 500
        batch = await http.post("/graphql", json=[{"query": text}] * 2, headers=headers)
        assert batch.status_code == 200, batch.text
        items = batch.json()
        assert [i["extensions"]["cost"]["requestedQueryCost"] for i in items] == [price] * 2
        assert all(i["extensions"]["cost"].get("dryRun") for i in items)
        assert 500 - int(batch.headers["x-ratelimit-remaining"]) <= 2


# -- finding 3: a huge operationName is refused first, never cached, never echoed ---------------


async def test_huge_operation_name_is_refused_with_its_own_code(
    database_url: str, tokens: Tokens
) -> None:
    async with serve(database_url, anonymous_capacity=1_000, anonymous_restore_rate=0.001) as http:
        name = "N" * 900_000
        response = await http.post(
            "/graphql",
            json={"query": "query Q { __typename }", "operationName": name},
            headers=STRICT,
        )
        assert response.status_code == 400
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "OPERATION_NAME_TOO_LONG"
        assert error["extensions"]["observed"] == 900_000
        assert error["extensions"]["limit"] == 1_024
        assert len(response.content) < 2_000
        # The refusal was paid for from the anonymous caller's bucket.
        assert int(response.headers["x-ratelimit-remaining"]) <= 999
        cache = http.app.state.pipeline.cache  # type: ignore[attr-defined]
        assert cache.bytes < 100_000


@hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(min_size=301, max_size=1_024, alphabet=st.characters(categories=["L", "N"])))
def test_no_refusal_echoes_more_than_a_few_hundred_characters(name: str) -> None:
    from server.pipeline import cut

    message = cut(f"Unknown operation named '{name}'.")
    assert len(message) <= 300 and name not in message


async def test_unknown_operation_name_message_is_cut(database_url: str) -> None:
    async with serve(database_url) as http:
        name = "x" * 1_000
        response = await gql(http, "query Q { __typename }", operationName=name)
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert len(error["message"]) <= 300


# -- finding 4: measure mode logs and counts bytes and tokens, code and mode as labels ----------


@pytest.mark.parametrize(
    ("limits", "text", "code"),
    [
        (
            {"max_tokens_mode": "measure"},
            "# comment\n" * 4_100 + "{ viewer { id } }",
            "TOKEN_LIMIT_EXCEEDED",
        ),
        (
            {"max_bytes": "1000", "max_bytes_mode": "measure"},
            "#" + "x" * 2_000 + "\n{ viewer { id } }",
            "DOCUMENT_TOO_LARGE",
        ),
    ],
    ids=["tokens", "bytes"],
)
async def test_measured_bytes_and_tokens_are_logged_and_counted(
    database_url: str,
    tokens: Tokens,
    capfd: pytest.CaptureFixture[str],
    limits: dict[str, str],
    text: str,
    code: str,
) -> None:
    async with serve(database_url, limits=limits) as http:
        response = await gql(http, text, headers=tokens.headers("CUSTOMER"))
        assert response.status_code == 200 and response.json()["data"]["viewer"]["id"]
        out, err = capfd.readouterr()
        assert f"limit measured (not enforced): {code}" in out + err
        metrics = (await http.get("/metrics")).text
        assert f'tollgate_graphql_refusals_total{{code="{code}",mode="measure"}} 1.0' in metrics


# -- finding 6: headers, extensions and rateLimit tell one balance, after settlement ------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_headers_extensions_and_rate_limit_field_tell_one_balance(
    database_url: str, tokens: Tokens, backend: str
) -> None:
    redis_url = None
    if backend == "redis":
        require_redis()
        redis_url = REDIS_URL
    async with serve(
        database_url, redis_url=redis_url, user_capacity=25_000, user_restore_rate=0.001
    ) as http:
        headers = fresh(tokens, Role.STAFF)
        page = await gql(http, operation("OrdersPage"), {"first": 50}, headers)
        cost = page.json()["extensions"]["cost"]
        assert cost["actualQueryCost"] < cost["requestedQueryCost"]
        available = cost["throttleStatus"]["currentlyAvailable"]
        assert int(page.headers["x-ratelimit-remaining"]) == available
        dry = await gql(
            http,
            "{ rateLimit(dryRun: true) { remaining } orders(first: 5) { totalCount } }",
            None,
            headers,
        )
        body = dry.json()
        shown = body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        assert body["data"]["rateLimit"]["remaining"] == shown
        assert int(dry.headers["x-ratelimit-remaining"]) == shown
        assert shown <= available  # nothing was given back that was never charged
        both = await gql(
            http, "{ rateLimit { remaining } orders(first: 5) { totalCount } }", None, headers
        )
        body = both.json()
        shown = body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        assert body["data"]["rateLimit"]["remaining"] == shown
        assert int(both.headers["x-ratelimit-remaining"]) == shown


# -- finding 7: 10,000 ids are refused on the raw variables, before coercion and execution ------


async def test_ten_thousand_ids_are_refused_before_execution(
    database_url: str, tokens: Tokens
) -> None:
    async with serve(database_url, user_capacity=100_000, user_restore_rate=0.001) as http:
        ids = [to_global_id("Product", uuid.uuid4()) for _ in range(10_000)]
        response = await gql(
            http, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, fresh(tokens)
        )
        assert response.status_code == 400
        body = response.json()
        assert "data" not in body
        error = body["errors"][0]["extensions"]
        assert error["code"] == "BAD_USER_INPUT"
        assert error["observed"] == 10_000 and error["limit"] == 100
        assert int(response.headers["x-ratelimit-remaining"]) == 99_999  # a refusal's point


# -- finding 8: every id looked up counts, found or not -----------------------------------------


async def test_probing_ids_of_another_tenant_is_paid_for(database_url: str, tokens: Tokens) -> None:
    async with serve(database_url) as http:
        globex = await gql(
            http, "{ orders(first: 50) { nodes { id } } }", None, tokens.headers("STAFF", "globex")
        )
        foreign = [n["id"] for n in globex.json()["data"]["orders"]["nodes"]]
        assert foreign
        probe = "query($ids: [ID!]!) { a: nodes(ids: $ids) { id } b: node(id: $one) { id } }"
        probe = probe.replace("query($ids: [ID!]!)", "query($ids: [ID!]!, $one: ID!)")
        response = await gql(
            http, probe, {"ids": foreign, "one": foreign[0]}, tokens.headers("CUSTOMER")
        )
        body = response.json()
        assert body["data"]["a"] == [None] * len(foreign) and body["data"]["b"] is None
        assert body["extensions"]["cost"]["actualQueryCost"] >= len(foreign) + 1


async def test_no_operation_is_charged_below_one_point(database_url: str, tokens: Tokens) -> None:
    async with serve(database_url, user_capacity=1_000, user_restore_rate=0.001) as http:
        headers = fresh(tokens)
        for remaining in (999, 998):
            response = await gql(http, "{ __typename }", None, headers)
            assert response.json()["extensions"]["cost"]["requestedQueryCost"] == 0
            assert int(response.headers["x-ratelimit-remaining"]) == remaining


# -- finding 9: a caller sees only its own bucket; the tenant's 429 still has an exact wait -----


async def test_customer_never_sees_the_tenant_bucket(database_url: str, tokens: Tokens) -> None:
    async with serve(
        database_url,
        user_capacity=10_000,
        user_restore_rate=1.0,
        tenant_capacity=150,
        tenant_restore_rate=1.0,
    ) as http:
        query = "query($f: Int) { products(first: $f) { nodes { id } } }"  # 1 + f
        first = await gql(http, query, {"f": 100}, fresh(tokens))
        assert first.status_code == 200
        for response in (first,):
            for header in ("ratelimit", "ratelimit-policy"):
                assert "tenant" not in response.headers[header]
            assert response.headers["x-ratelimit-limit"] == "10000"
        throttled = await gql(http, query, {"f": 100}, fresh(tokens))
        assert throttled.status_code == 429
        for header in ("ratelimit", "ratelimit-policy"):
            assert "tenant" not in throttled.headers[header]
        assert throttled.headers["x-ratelimit-limit"] == "10000"
        # Exact: the tenant holds about 150 - 101 = 49 points and needs 101 at 1 point/s.
        retry = int(throttled.headers["retry-after"])
        assert retry == math.ceil(throttled.json()["errors"][0]["extensions"]["retryAfter"])
        assert 50 <= retry <= 53


# -- refusals pay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{"},  # parse error
        {"query": "{ nope }"},  # validation
        {"documentId": "never-registered"},  # unknown persisted id
        {
            "query": "query($f: Int) { products(first: $f) { nodes { id } } }",
            "variables": {"f": "x"},
        },
    ],
    ids=["parse", "validation", "unknown-id", "bad-input"],
)
async def test_a_flood_of_refusals_throttles_itself(
    database_url: str, body: dict[str, Any]
) -> None:
    async with serve(database_url, anonymous_capacity=5, anonymous_restore_rate=0.001) as http:
        statuses = []
        for _ in range(7):
            response = await http.post("/graphql", json=body, headers=STRICT)
            statuses.append(response.status_code)
        assert statuses[-1] == 429, statuses
        assert response.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert int(response.headers["retry-after"]) >= 1


async def test_a_cached_refusal_does_not_keep_the_requests_that_hit_it(database_url: str) -> None:
    from server.pipeline import OperationRefused

    async with serve(database_url) as http:
        pipeline = http.app.state.pipeline  # type: ignore[attr-defined]
        caught = []
        for _ in range(50):
            with pytest.raises(OperationRefused) as refusal:
                pipeline.prepare("{ nope }", None, may_introspect=False)
            caught.append(refusal.value)
        assert len({id(error) for error in caught}) == 50
        depth, tb = 0, caught[-1].__traceback__
        while tb is not None:
            depth, tb = depth + 1, tb.tb_next
        assert depth < 10  # one raise's frames, not fifty requests'


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {"Content-Type": "application/json"}),
        (b'{"query": "{ __typename }"}', {"Content-Type": "text/plain"}),
        (
            b'{"query": "{ __typename }"}',
            {"Content-Type": "application/json", "Authorization": "Bearer not-a-token"},
        ),
    ],
    ids=["malformed-json", "unsupported-media-type", "bad-token"],
)
async def test_requests_refused_before_any_operation_pay_too(
    database_url: str, content: bytes, headers: dict[str, str]
) -> None:
    async with serve(database_url, anonymous_capacity=5, anonymous_restore_rate=0.001) as http:
        statuses = []
        for _ in range(7):
            response = await http.post("/graphql", content=content, headers={**STRICT, **headers})
            statuses.append(response.status_code)
        assert statuses[0] in (400, 401, 415) and statuses[-1] == 429, statuses
        assert response.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert int(response.headers["retry-after"]) >= 1
