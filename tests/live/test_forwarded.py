"""X-Forwarded-For is trusted only from TOLLGATE_TRUSTED_PROXIES (real servers, anonymous buckets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live.server_process import migrated_sqlite
from tests.live.servers import Server

pytestmark = pytest.mark.slow
CAPACITY = 10
# Anonymous callers are keyed by client address; 1 point per query, restored very slowly, so
# X-RateLimit-Remaining shows which bucket each request drew on.
QUERY = {"query": "{ rateLimit { remaining } }"}


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "TOLLGATE_DATABASE_URL": database_url,
        "TOLLGATE_ANONYMOUS_CAPACITY": str(CAPACITY),
        "TOLLGATE_ANONYMOUS_RESTORE_RATE": "0.001",
        **extra,
    }


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("forwarded-db"))


@pytest.fixture
def untrusting(database_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(_env(database_url), tmp_path)
    yield server
    server.stop()


@pytest.fixture
def trusting(database_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(_env(database_url, TOLLGATE_TRUSTED_PROXIES="127.0.0.1"), tmp_path)
    yield server
    server.stop()


def _remaining(http: httpx.Client, forwarded_for: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = http.post("/graphql", json=QUERY, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["rateLimit"]["remaining"] == int(
        response.headers["x-ratelimit-remaining"]
    )
    return int(response.headers["x-ratelimit-remaining"])


def test_spoofed_forwarded_for_draws_on_the_same_bucket_without_trusted_proxies(
    untrusting: Server,
) -> None:
    with untrusting.client() as http:
        first = _remaining(http, "203.0.113.1")
        second = _remaining(http, "198.51.100.2")
        third = _remaining(http, None)
    assert first == CAPACITY - 1
    assert (second, third) == (first - 1, first - 2)


def test_forwarded_for_from_a_trusted_proxy_keys_each_client_apart(
    trusting: Server,
) -> None:
    with trusting.client() as http:
        first = _remaining(http, "203.0.113.1")
        second = _remaining(http, "198.51.100.2")
        again = _remaining(http, "203.0.113.1")
        direct = _remaining(http, None)  # the proxy's own address: a bucket of its own
    assert first == second == direct == CAPACITY - 1
    assert again == CAPACITY - 2


def test_a_trusted_tls_terminating_proxy_gets_hsts(trusting: Server) -> None:
    with trusting.client() as http:
        behind_tls = http.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        plain = http.get("/healthz")
    assert "max-age=" in behind_tls.headers["strict-transport-security"]
    assert "strict-transport-security" not in plain.headers
