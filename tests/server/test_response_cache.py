"""The response cache over HTTP (issue #14): hits priced at what they cost, no leaks, exact
invalidation. SQLite runs the in-process cache; PostgreSQL runs the Redis one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth import Role
from auth.tokens import mint_token
from resolvers.ids import to_global_id
from server.app import create_app
from tests.guards.test_ratelimit import drop_keys, redis_client_or_skip
from tests.server.conftest import Tokens, gql, make_settings, operation

STRICT = {"Accept": "application/graphql-response+json"}
CATALOG = operation("ProductCatalog")


class Cached:
    """An app with the response cache on (memory for SQLite, Redis for PostgreSQL)."""

    def __init__(self, http: httpx.AsyncClient, app: Any, backend: str) -> None:
        self.http, self.app, self.backend = http, app, backend

    async def post(self, query: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        response = await gql(self.http, query, headers=headers, **body)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


async def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def cached(database_url: str) -> AsyncIterator[Cached]:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    # Budgets as make_settings gives them: the Redis limiter's keys are shared by every suite
    # (demo users' buckets must never be pushed far into the future by a tiny restore rate).
    overrides: dict[str, Any] = {}
    client = None
    if backend == "postgres":
        from tests.services import REDIS_URL

        client = await redis_client_or_skip()
        overrides.update(
            redis_url=REDIS_URL,
            response_cache_prefix=f"tg:rc:test:{uuid.uuid4().hex}:",
            redis_timeout_ms=500,
        )
    app = create_app(make_settings(database_url, **overrides))
    try:
        async with app.router.lifespan_context(app):
            http = await _client(app)
            async with http:
                yield Cached(http, app, backend)
    finally:
        if client is not None:
            await drop_keys(client, overrides["response_cache_prefix"])
            await client.aclose()


@pytest.fixture(scope="module")
async def uncached(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url, response_cache=False))
    async with app.router.lifespan_context(app):
        http = await _client(app)
        async with http:
            yield http


def status(body: dict[str, Any]) -> str:
    return body["extensions"]["cache"]["status"]  # type: ignore[no-any-return]


async def test_a_repeated_catalog_is_a_hit_charged_the_hit_price(
    cached: Cached, tokens: Tokens
) -> None:
    """The issue's done-when: a new user repeats ProductCatalog and sees HIT, a smaller cost."""
    # A new subject (its own bucket) and a negligible restore rate: the debits are exact.
    settings = cached.app.state.settings.model_copy(update={"user_restore_rate": 0.0001})
    app = create_app(settings)
    subject = str(uuid.uuid4())
    token = mint_token(
        settings.jwt(), subject=subject, tenant_id=tokens.tenants["globex"], role=Role.CUSTOMER
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with app.router.lifespan_context(app), await _client(app) as http:
            first = await gql(http, CATALOG, {"first": 5}, headers=headers)
            second = await gql(http, CATALOG, {"first": 5}, headers=headers)
    finally:
        if settings.redis_url:  # the new subject's bucket keys are this test's own
            client = await redis_client_or_skip()
            for key in [k async for k in client.scan_iter(match=f"tg:rl:*{subject}*")]:
                await client.delete(key)
            await client.aclose()
    one, two = first.json(), second.json()
    assert one["extensions"]["cache"] == {"status": "MISS", "maxAge": 60, "scope": "PUBLIC"}
    assert two["extensions"]["cache"] == {"status": "HIT", "maxAge": 60, "scope": "PUBLIC"}
    assert two["data"] == one["data"]
    assert one["extensions"]["cost"]["actualQueryCost"] > 1
    assert two["extensions"]["cost"]["actualQueryCost"] == 1
    assert (
        two["extensions"]["cost"]["requestedQueryCost"]
        == one["extensions"]["cost"]["requestedQueryCost"]
    )
    # The budget paid 1 point for the hit (the restore rate is negligible here).
    spent = int(first.headers["x-ratelimit-remaining"]) - int(
        second.headers["x-ratelimit-remaining"]
    )
    assert spent == 1
    assert two["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == int(
        second.headers["x-ratelimit-remaining"]
    )
    assert re.search(r"(^|, )cache;dur=", second.headers["server-timing"])


async def test_the_hit_price_is_configurable(database_url: str, tokens: Tokens) -> None:
    app = create_app(make_settings(database_url, response_cache_hit_price=3))
    async with app.router.lifespan_context(app), await _client(app) as http:
        headers = tokens.headers("STAFF", "globex")
        for _ in range(2):
            body = (await gql(http, CATALOG, {"first": 2}, headers=headers)).json()
        assert status(body) == "HIT" and body["extensions"]["cost"]["actualQueryCost"] == 3


async def test_over_a_per_operation_limit_is_refused_cached_or_not(
    database_url: str, tokens: Tokens
) -> None:
    """Two apps share one Redis cache; the one with a lower cost limit refuses the cached
    answer: the limits are checked before the lookup."""
    from tests.services import REDIS_URL

    client = await redis_client_or_skip()
    prefix = f"tg:rc:test:{uuid.uuid4().hex}:"
    shared = {
        "redis_url": REDIS_URL,
        "response_cache_prefix": prefix,
        "redis_timeout_ms": 500,
        "ratelimit": False,  # the demo users' buckets in the shared Redis are not ours
    }
    headers = tokens.headers("STAFF", "acme")
    try:
        wide = create_app(make_settings(database_url, **shared))
        async with wide.router.lifespan_context(wide), await _client(wide) as http:
            for _ in range(2):
                ok = (await gql(http, CATALOG, {"first": 50}, headers=headers)).json()
            assert status(ok) == "HIT"
        requested = ok["extensions"]["cost"]["requestedQueryCost"]
        limits = {"max_cost": str(requested - 1)}
        strict = create_app(make_settings(database_url, limits=limits, **shared))
        async with strict.router.lifespan_context(strict), await _client(strict) as http:
            small = (await gql(http, CATALOG, {"first": 1}, headers=headers)).json()
            assert status(small) == "MISS"  # the same cache, under the limit: served
            refused = await gql(http, CATALOG, {"first": 50}, headers=headers)
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


async def test_two_tenants_never_share(cached: Cached, tokens: Tokens) -> None:
    acme = await cached.post(CATALOG, tokens.headers("CUSTOMER", "acme"), variables={"first": 4})
    globex = await cached.post(
        CATALOG, tokens.headers("CUSTOMER", "globex"), variables={"first": 4}
    )
    assert status(globex) == "MISS" and globex["data"] != acme["data"]


async def test_two_customers_share_the_catalog_but_not_their_orders(
    cached: Cached, tokens: Tokens
) -> None:
    one, two = tokens.headers("CUSTOMER", "acme"), tokens.headers("CUSTOMER2", "acme")
    first = await cached.post(CATALOG, one, variables={"first": 3})
    shared = await cached.post(CATALOG, two, variables={"first": 3})
    assert status(first) == "MISS" and status(shared) == "HIT"  # PUBLIC: same view, same tenant
    for name in ("ViewerProfile", "OrdersPage"):
        mine = await cached.post(operation(name), one)
        again = await cached.post(operation(name), one)
        theirs = await cached.post(operation(name), two)
        assert mine["extensions"]["cache"]["scope"] == "PRIVATE"
        assert status(again) == "HIT" and status(theirs) == "MISS"
        assert theirs["data"] != mine["data"]


# What each caller may see differs on these (staff against customer on permissioned fields,
# a user's own email against another's, scopes): a cached answer must never cross over.
PROBES = [
    CATALOG,
    operation("ViewerProfile"),
    operation("OrdersPage"),
    "{ products(first: 3) { nodes { id name unitCost { amount } } } }",
    "{ orders(first: 3) { nodes { number internalNote customer { name email } } } }",
    "query($id: ID!) { node(id: $id) { ... on User { name email } } }",
    "query($id: ID!) { user: node(id: $id) { id ... on User { reviews(first: 2) { totalCount } } } }",
]
CALLERS = [
    ("CUSTOMER", "acme", None),
    ("CUSTOMER2", "acme", None),
    ("STAFF", "acme", None),
    ("STAFF", "acme", ["read:orders", "read:products"]),  # no orders:internal
    ("ADMIN", "acme", None),
    ("CUSTOMER", "globex", None),
]


@pytest.fixture
async def answers(
    uncached: httpx.AsyncClient, tokens: Tokens
) -> dict[tuple[int, int], dict[str, Any]]:
    """What every caller sees without a cache, per probe (ids: acme's demo customer)."""
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for c, (role, tenant, scopes) in enumerate(CALLERS):
        headers = tokens.headers(role, tenant, scopes=scopes)
        for p, probe in enumerate(PROBES):
            response = await gql(uncached, probe, _variables(tokens), headers=headers)
            found[(c, p)] = _visible(response.json())
    return found


def _variables(tokens: Tokens) -> dict[str, Any]:
    return {"id": to_global_id("User", tokens.users[("acme", "CUSTOMER")].id)}


def _visible(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": body.get("data"),
        "errors": sorted(
            (e["extensions"]["code"], tuple(e.get("path") or ())) for e in body.get("errors", [])
        ),
    }


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(st.integers(0, len(CALLERS) - 1), st.integers(0, len(PROBES) - 1)),
        min_size=6,
        max_size=20,
    )
)
async def test_no_caller_is_served_what_another_would_see(
    cached: Cached,
    tokens: Tokens,
    answers: dict[tuple[int, int], dict[str, Any]],
    calls: list[tuple[int, int]],
) -> None:
    for c, p in calls:
        role, tenant, scopes = CALLERS[c]
        headers = tokens.headers(role, tenant, scopes=scopes)
        response = await gql(cached.http, PROBES[p], _variables(tokens), headers=headers)
        assert _visible(response.json()) == answers[(c, p)], (CALLERS[c], PROBES[p])


UPDATE = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) { product { id version price { amount } stock } userErrors { code } }
}
"""
CREATE = """
mutation($input: CreateProductInput!) {
  createProduct(input: $input) { product { id version } userErrors { code } }
}
"""
PRODUCT = "query($id: ID!) { product(id: $id) { name stock price { amount } } }"
SEARCH = (
    "query($s: String) { products(first: 5, search: $s) { totalCount nodes { id name stock } } }"
)


async def _new_product(cached: Cached, tokens: Tokens, tag: str) -> tuple[str, int]:
    admin = tokens.headers("ADMIN", "acme")
    created = await cached.post(
        CREATE,
        admin,
        variables={
            "input": {
                "sku": f"rc-{tag}",
                "name": f"Cachetest {tag}",
                "price": "10.00",
                "currency": "USD",
                "stock": 5,
            }
        },
    )
    product = created["data"]["createProduct"]["product"]
    return product["id"], product["version"]


async def test_an_admin_s_update_is_visible_to_the_very_next_read(
    cached: Cached, tokens: Tokens
) -> None:
    tag = uuid.uuid4().hex[:10]
    admin, customer = tokens.headers("ADMIN", "acme"), tokens.headers("CUSTOMER", "acme")
    search = {"s": f"Cachetest {tag}"}
    empty = await cached.post(SEARCH, customer, variables=search)
    assert empty["data"]["products"]["totalCount"] == 0
    pid, version = await _new_product(cached, tokens, tag)
    # createProduct invalidated the product lists: the new product is found at once.
    listed = await cached.post(SEARCH, customer, variables=search)
    assert status(listed) == "MISS" and listed["data"]["products"]["nodes"][0]["id"] == pid
    for _ in range(2):
        read = await cached.post(PRODUCT, customer, variables={"id": pid})
    assert status(read) == "HIT" and read["data"]["product"]["stock"] == 5
    for stock in (7, 2, 9):
        updated = await cached.post(
            UPDATE,
            admin,
            variables={"input": {"id": pid, "expectedVersion": version, "stock": stock}},
        )
        assert status(updated) == "BYPASS"  # mutations are never stored
        version = updated["data"]["updateProduct"]["product"]["version"]
        after = await cached.post(PRODUCT, customer, variables={"id": pid})
        assert after["data"]["product"]["stock"] == stock, after
        in_list = await cached.post(SEARCH, customer, variables=search)
        assert in_list["data"]["products"]["nodes"][0]["stock"] == stock
    renamed = await cached.post(
        UPDATE,
        admin,
        variables={"input": {"id": pid, "expectedVersion": version, "name": f"Gone {tag}"}},
    )
    assert renamed["data"]["updateProduct"]["userErrors"] == []
    gone = await cached.post(SEARCH, customer, variables=search)
    assert gone["data"]["products"]["totalCount"] == 0  # a rename leaves the searched list


async def test_an_order_invalidates_the_stock_it_took(cached: Cached, tokens: Tokens) -> None:
    tag = uuid.uuid4().hex[:10]
    pid, _ = await _new_product(cached, tokens, tag)
    customer = tokens.headers("CUSTOMER", "acme")
    for _ in range(2):
        before = await cached.post(PRODUCT, customer, variables={"id": pid})
    assert status(before) == "HIT" and before["data"]["product"]["stock"] == 5
    ordered = await cached.post(
        "mutation($input: CreateOrderInput!) { createOrder(input: $input) { order { id } "
        "userErrors { code } } }",
        customer,
        variables={
            "input": {
                "idempotencyKey": f"rc-{tag}",
                "currency": "USD",
                "items": [{"productId": pid, "quantity": 2}],
            }
        },
    )
    assert ordered["data"]["createOrder"]["userErrors"] == [], ordered
    after = await cached.post(PRODUCT, customer, variables={"id": pid})
    assert status(after) == "MISS" and after["data"]["product"]["stock"] == 3


async def test_errors_dry_runs_and_rate_limits_are_never_stored(
    cached: Cached, tokens: Tokens
) -> None:
    customer = tokens.headers("CUSTOMER", "acme")
    forbidden = "{ products(first: 2) { nodes { id unitCost { amount } } } }"
    for _ in range(2):
        body = await cached.post(forbidden, customer)
        assert body["errors"] and status(body) == "MISS"
    for _ in range(2):
        dry = await cached.post(CATALOG, {**customer, "X-Cost-Dry-Run": "1"})
        assert status(dry) == "BYPASS"
    for _ in range(2):
        budget = await cached.post(
            "{ rateLimit { remaining } products(first: 1) { nodes { id } } }", customer
        )
        assert status(budget) == "BYPASS" and budget["extensions"]["cache"]["maxAge"] == 0


async def test_concurrent_misses_execute_once(cached: Cached, tokens: Tokens) -> None:
    headers = tokens.headers("STAFF", "globex")
    query = "query($n: Int) { products(first: $n) { nodes { id name stock } } }"
    variables = {"n": 7 + uuid.uuid4().int % 50}
    bodies = await asyncio.gather(
        *(gql(cached.http, query, variables, headers=headers) for _ in range(6))
    )
    statuses = sorted(status(b.json()) for b in bodies)
    assert statuses == ["HIT"] * 5 + ["MISS"]
    assert len({str(b.json()["data"]) for b in bodies}) == 1


async def test_metrics_and_the_log_line_tell_hits_and_misses(
    cached: Cached, tokens: Tokens
) -> None:
    from tests.server.test_privacy import _lines, captured_logs

    headers = tokens.headers("CUSTOMER", "acme")
    with captured_logs(make_settings("sqlite://", log_json=False)) as stream:
        for _ in range(2):
            await cached.post(CATALOG, headers, variables={"first": 2})
    events = [line for line in _lines(stream) if line.get("event") == "graphql.operation"]
    assert [line["cache"] for line in events] == ["MISS", "HIT"]
    metrics = (await cached.http.get("/metrics")).text
    for event in ("hit", "miss", "store"):
        assert re.search(
            rf'^tollgate_response_cache_events_total\{{event="{event}"\}} [1-9]', metrics, re.M
        ), event


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_get_of_a_persisted_document_carries_cache_control_and_age(
    cached: Cached, tokens: Tokens
) -> None:
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": _sha(CATALOG), "name": "ProductCatalog", "type": "query", "body": CATALOG}
        ],
    }
    pushed = await cached.http.post(
        "/admin/persisted-queries", json={"manifest": manifest}, headers=tokens.headers("ADMIN")
    )
    assert pushed.status_code == 200, pushed.text
    params = {"documentId": f"sha256:{_sha(CATALOG)}", "variables": '{"first": 6}'}
    headers = {**STRICT, **tokens.headers("CUSTOMER", "acme")}
    first = await cached.http.get("/graphql", params=params, headers=headers)
    second = await cached.http.get("/graphql", params=params, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.headers["cache-control"] == "private, max-age=60" and "age" not in first.headers
    assert second.json()["extensions"]["cache"]["status"] == "HIT"
    assert int(second.headers["age"]) >= 0 and second.headers["etag"] == first.headers["etag"]
    again = await cached.http.get(
        "/graphql", params=params, headers={**headers, "If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


async def test_the_sdl_prints_apollo_s_directive(cached: Cached) -> None:
    sdl = cached.app.state.sdl
    assert (
        "directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean) "
        "on FIELD_DEFINITION | OBJECT | INTERFACE | UNION"
    ) in sdl
    assert re.search(r"enum CacheControlScope \{\s+PUBLIC\s+PRIVATE\s+\}", sdl)


async def test_several_workers_without_redis_run_no_cache(
    database_url: str, tokens: Tokens
) -> None:
    app = create_app(make_settings(database_url, workers=2))
    assert app.state.response_cache is None  # one worker could not see another's writes
    async with app.router.lifespan_context(app), await _client(app) as http:
        body = (await gql(http, CATALOG, {"first": 2}, headers=tokens.headers())).json()
    assert "cache" not in body["extensions"] and body["data"]["products"]
    off = create_app(make_settings(database_url, response_cache=False))
    assert off.state.response_cache is None


async def test_an_erasure_from_the_cli_empties_the_shared_cache(
    cached: Cached, tokens: Tokens
) -> None:
    import os
    import subprocess
    import sys

    from database.engine import make_engine, tenant_transaction
    from database.ids import new_id
    from loaders.loaders import USERS
    from server.settings import ROOT

    settings = cached.app.state.settings
    tenant_id = tokens.tenants["acme"]
    user_id, tag = new_id(), uuid.uuid4().hex[:8]
    engine = make_engine(settings.database_url)
    try:
        async with tenant_transaction(engine, tenant_id, write=True) as conn:
            await conn.execute(
                USERS.insert().values(
                    id=user_id, tenant_id=tenant_id, name=f"Cached {tag}", role="CUSTOMER"
                )
            )
    finally:
        await engine.dispose()
    query = "query($id: ID!) { node(id: $id) { ... on User { name } } }"
    variables = {"id": to_global_id("User", user_id)}
    staff = tokens.headers("STAFF", "acme")
    for _ in range(2):
        before = await cached.post(query, staff, variables=variables)
    assert status(before) == "HIT" and before["data"]["node"]["name"] == f"Cached {tag}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env["TOLLGATE_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        env["TOLLGATE_REDIS_URL"] = settings.redis_url
        env["TOLLGATE_RESPONSE_CACHE_PREFIX"] = settings.response_cache_prefix
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server", "privacy", "erase", "--tenant", "acme",
         "--user", str(user_id), "--requested-by", "cache-test"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)["responseCache"]
    after = await cached.post(query, staff, variables=variables)
    if cached.backend == "sqlite":  # another process cannot reach this one's memory
        assert said.startswith("not shared") and status(after) == "HIT"
    else:
        assert said == "invalidated" and status(after) == "MISS"
        assert after["data"]["node"]["name"] != f"Cached {tag}"


async def test_a_read_after_a_write_never_joins_or_stores_a_read_from_before_it(
    cached: Cached, tokens: Tokens
) -> None:
    """Generations: a miss that began before an invalidation neither shares nor stores."""
    from auth import Principal, Role
    from server.response_cache import CacheState

    cache = cached.app.state.response_cache
    prepared = cached.app.state.pipeline.prepare(CATALOG, None, may_introspect=True)
    principal = Principal(
        subject=str(uuid.uuid4()),
        tenant_id=tokens.tenants["globex"],
        role=Role.STAFF,
        scopes=frozenset({"read:products", "x-" + uuid.uuid4().hex}),  # a view of its own
    )
    before = CacheState()
    cache.begin(before, CATALOG, prepared, {"first": 1}, principal, bypass=False)
    assert await cache.find(before) is None and before.status == "MISS"  # leads a flight
    await cache.invalidate(principal, {"Product:list"})  # a write finishes meanwhile
    after = CacheState()
    cache.begin(after, CATALOG, prepared, {"first": 1}, principal, bypass=False)
    # Not the earlier flight's follower (that would wait for its answer): a miss of its own.
    assert await asyncio.wait_for(cache.find(after), 5) is None and after.status == "MISS"
    await cache.store_result(before, {"products": "stale"}, failed=False)
    after.release()
    again = CacheState()
    cache.begin(again, CATALOG, prepared, {"first": 1}, principal, bypass=False)
    assert await cache.find(again) is None, "the read from before the write was stored"
    again.release()


async def test_batches_are_never_stored_but_their_writes_invalidate(
    database_url: str, tokens: Tokens
) -> None:
    app = create_app(make_settings(database_url, batching=True))
    headers = {**STRICT, **tokens.headers("ADMIN", "globex")}
    query = "query($n: Int) { products(first: $n) { nodes { id stock } } }"
    variables = {"n": 2 + uuid.uuid4().int % 60}
    async with app.router.lifespan_context(app), await _client(app) as http:
        batch = await http.post(
            "/graphql", json=[{"query": query, "variables": variables}] * 2, headers=headers
        )
        assert [b["extensions"]["cache"]["status"] for b in batch.json()] == ["BYPASS"] * 2
        single = (await gql(http, query, variables, headers=headers)).json()
        assert status(single) == "MISS"  # the batch stored nothing
        assert status((await gql(http, query, variables, headers=headers)).json()) == "HIT"
        node = single["data"]["products"]["nodes"][0]
        version = (
            await gql(http, "query($id: ID!) { product(id: $id) { version } }", {"id": node["id"]},
                      headers=headers)
        ).json()["data"]["product"]["version"]  # fmt: skip
        update = {
            "input": {"id": node["id"], "expectedVersion": version, "stock": node["stock"] + 1}
        }
        written = await http.post(
            "/graphql",
            json=[{"query": UPDATE, "variables": update}, {"query": "{ __typename }"}],
            headers=headers,
        )
        assert written.json()[0]["data"]["updateProduct"]["userErrors"] == []
        after = (await gql(http, query, variables, headers=headers)).json()
        assert status(after) == "MISS"
        assert after["data"]["products"]["nodes"][0]["stock"] == node["stock"] + 1


@pytest.mark.parametrize(
    "override", [{"response_cache_max_bytes": 10}, {"response_cache_hit_price": 0}]
)
def test_cache_settings_are_validated(override: dict[str, int]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=next(iter(override))):
        make_settings("sqlite+aiosqlite:///:memory:", **override)


async def test_a_write_invalidates_exactly_what_it_changed(cached: Cached, tokens: Tokens) -> None:
    """An order drops its product and its customer's profile, not another product."""
    tag = uuid.uuid4().hex[:10]
    kept, _ = await _new_product(cached, tokens, f"{tag}-kept")
    taken, _ = await _new_product(cached, tokens, f"{tag}-taken")
    customer = tokens.headers("CUSTOMER2", "acme")
    profile = operation("ViewerProfile")
    for _ in range(2):
        reads = [
            await cached.post(PRODUCT, customer, variables={"id": kept}),
            await cached.post(PRODUCT, customer, variables={"id": taken}),
            await cached.post(profile, customer),
        ]
    assert [status(r) for r in reads] == ["HIT"] * 3
    ordered = await cached.post(
        "mutation($input: CreateOrderInput!) { createOrder(input: $input) { order { number } "
        "userErrors { code } } }",
        customer,
        variables={
            "input": {
                "idempotencyKey": f"rc-{tag}",
                "currency": "USD",
                "items": [{"productId": taken, "quantity": 1}],
            }
        },
    )
    number = ordered["data"]["createOrder"]["order"]["number"]
    still = await cached.post(PRODUCT, customer, variables={"id": kept})
    changed = await cached.post(PRODUCT, customer, variables={"id": taken})
    mine = await cached.post(profile, customer)
    assert status(still) == "HIT"  # not written: still served from the cache
    assert status(changed) == "MISS" and changed["data"]["product"]["stock"] == 4
    assert status(mine) == "MISS"
    assert number in [o["number"] for o in mine["data"]["viewer"]["orders"]["nodes"]]


async def test_a_write_whose_request_is_cancelled_after_it_ran_still_invalidates(
    cached: Cached, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that goes away (or a shutdown) after a mutation committed must not leave the
    state before it in the cache: the invalidation was skipped when the cancellation landed
    between execution and the store phase."""
    from server.operation import Operation

    tag = uuid.uuid4().hex[:10]
    admin, customer = tokens.headers("ADMIN", "acme"), tokens.headers("CUSTOMER", "acme")
    pid, version = await _new_product(cached, tokens, tag)
    for _ in range(2):
        read = await cached.post(PRODUCT, customer, variables={"id": pid})
    assert status(read) == "HIT" and read["data"]["product"]["stock"] == 5

    async def cancelled(self: Operation) -> None:
        raise asyncio.CancelledError  # the cancellation arrives right after execution

    monkeypatch.setattr(Operation, "store", cancelled)
    with pytest.raises(asyncio.CancelledError):
        await gql(
            cached.http,
            UPDATE,
            headers=admin,
            variables={"input": {"id": pid, "expectedVersion": version, "stock": 3}},
        )
    monkeypatch.undo()
    after = await cached.post(PRODUCT, customer, variables={"id": pid})
    assert after["data"]["product"]["stock"] == 3, after
