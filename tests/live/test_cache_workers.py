"""Two uvicorn workers, PostgreSQL and the Redis response cache (issue #14): a write through
one connection is seen by every read that starts after its response, on fresh connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.live.servers import Server, two_workers_on_postgres

pytestmark = pytest.mark.slow

PRODUCT = "query($id: ID!) { product(id: $id) { stock } }"
CATALOG = "{ products(first: 5) { nodes { id stock } } }"
UPDATE = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) { product { version stock } userErrors { code } }
}
"""


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "TOLLGATE_RESPONSE_CACHE_PREFIX": f"tg:rc:live:{time.time_ns()}:",
        # Budgets are not under test (and the demo users' buckets in the shared Redis
        # may be drained by other suites).
        "TOLLGATE_RATELIMIT": "false",
    }
    with two_workers_on_postgres(tmp_path_factory.mktemp("cache-workers"), env) as server:
        yield server


async def _post(
    url: str, query: str, token: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    # A fresh client per request: a new connection, to whichever worker accepts it.
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def test_no_read_after_a_write_sees_the_state_before_it(workers: Server) -> None:
    admin = workers.cli("token", "--tenant", "acme", "--role", "admin")
    customer = workers.cli("token", "--tenant", "acme", "--role", "customer")
    url = workers.url
    first = (await _post(url, CATALOG, admin))["data"]["products"]["nodes"][0]
    pid = first["id"]
    version = (
        await _post(url, "query($id: ID!) { product(id: $id) { version } }", admin, {"id": pid})
    )["data"]["product"]["version"]
    # Warm both workers' view of the shared cache.
    warm = [await _post(url, PRODUCT, customer, {"id": pid}) for _ in range(4)]
    assert warm[-1]["extensions"]["cache"]["status"] == "HIT"

    writes: list[tuple[float, int]] = []  # (when the response arrived, the stock it wrote)
    reads: list[tuple[float, int, int, str]] = []  # (when the read began, product, catalog)
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            began = time.monotonic()
            one, page = await asyncio.gather(
                _post(url, PRODUCT, customer, {"id": pid}), _post(url, CATALOG, customer)
            )
            listed = next(n["stock"] for n in page["data"]["products"]["nodes"] if n["id"] == pid)
            reads.append(
                (
                    began,
                    one["data"]["product"]["stock"],
                    listed,
                    one["extensions"]["cache"]["status"],
                )
            )

    async def writer() -> None:
        nonlocal version
        for stock in range(1000, 1008):
            await asyncio.sleep(0.25)
            body = await _post(
                url,
                UPDATE,
                admin,
                {"input": {"id": pid, "expectedVersion": version, "stock": stock}},
            )
            writes.append((time.monotonic(), stock))
            version = body["data"]["updateProduct"]["product"]["version"]
        await asyncio.sleep(0.25)
        done.set()

    await asyncio.gather(writer(), *(reader() for _ in range(6)))
    stale = []
    for began, product_stock, listed_stock, _ in reads:
        written = [stock for at, stock in writes if at < began]
        if written and (product_stock < written[-1] or listed_stock < written[-1]):
            stale.append((began, product_stock, listed_stock, written[-1]))
    assert stale == [], f"{len(stale)} stale reads of {len(reads)}"
    assert sum(1 for *_, status in reads if status == "HIT") > 0, "the cache was never used"
    assert len(reads) > 20
