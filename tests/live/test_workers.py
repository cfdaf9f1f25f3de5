"""Two uvicorn workers sharing one Redis: the budget is global, and /metrics sums the workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from auth import Role
from auth.tokens import mint_token
from server.settings import Settings
from tests.live.servers import Server
from tests.server.conftest import seeded_database
from tests.services import REDIS_URL, require_redis

pytestmark = pytest.mark.slow
CAPACITY, RATE = 2_000, 200.0
QUERY = "{ products(first: 10) { nodes { id } } }"  # requested 11 = actual 11: no refunds


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_redis()
    tmp = tmp_path_factory.mktemp("workers")
    database_url = next(seeded_database("sqlite", tmp))
    server = Server(
        {
            "TOLLGATE_DATABASE_URL": database_url,
            "TOLLGATE_REDIS_URL": REDIS_URL,
            "TOLLGATE_WORKERS": "2",
            "TOLLGATE_USER_CAPACITY": str(CAPACITY),
            "TOLLGATE_USER_RESTORE_RATE": str(RATE),
            "TOLLGATE_REDIS_TIMEOUT_MS": "500",
            "TOLLGATE_DATABASE_POOL_SIZE": "20",
            # The budget's accounting below charges the static cost: no cache hits.
            "TOLLGATE_RESPONSE_CACHE": "off",
        },
        tmp,
    )
    yield server
    server.stop()


def _fresh_subject_token(tenant_id: uuid.UUID) -> str:
    """A token for a new subject, so the test starts from a full bucket."""
    return mint_token(
        Settings().jwt(),
        subject=str(uuid.uuid4()),
        tenant_id=tenant_id,
        role=Role.STAFF,
        ttl_seconds=600,
    )


async def test_the_budget_is_global_across_workers(two_workers: Server) -> None:
    staff = two_workers.cli("token", "--tenant", "acme", "--role", "staff")
    acme = uuid.UUID(jwt.decode(staff, options={"verify_signature": False})["tenant"])
    # A fresh subject only: the demo users' buckets live under the default prefix of a Redis
    # shared with other test runs, which may have emptied them.
    token = _fresh_subject_token(acme)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=10) as http:
        viewer = await http.post(
            "/graphql", json={"query": "{ rateLimit { limit } }"}, headers=headers
        )
        assert viewer.status_code == 200
        admitted, refused, statuses = 0, 0, set()
        started = time.monotonic()
        deadline = started + 6.0

        async def client() -> None:
            nonlocal admitted, refused
            while time.monotonic() < deadline:
                response = await http.post("/graphql", json={"query": QUERY}, headers=headers)
                statuses.add(response.status_code)
                if response.status_code == 200:
                    admitted += response.json()["extensions"]["cost"]["requestedQueryCost"]
                else:
                    refused += 1
                    assert response.status_code == 429, response.text
                    await asyncio.sleep(min(0.2, float(response.headers.get("retry-after", "1"))))

        await asyncio.gather(*[client() for _ in range(64)])
        elapsed = time.monotonic() - started
        allowed = CAPACITY + RATE * elapsed
        print(
            f"2 workers, 64 clients, {elapsed:.1f}s: admitted cost {admitted}, allowed {allowed:.0f}, "
            f"accuracy {admitted / allowed:.3f}, refusals {refused}"
        )
        assert statuses <= {200, 429}
        assert refused > 0
        assert admitted <= allowed
        assert admitted >= 0.5 * allowed  # the limiter admits what the budget allows, not far less
        metrics = (await http.get("/metrics")).text
        total = sum(
            float(value)
            for value in re.findall(
                r'^tollgate_graphql_operations_total\{[^}]*outcome="OK"[^}]*\} (\S+)$',
                metrics,
                re.M,
            )
        )
        assert total >= admitted / 11, "metrics must sum every worker's operations"


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in os.listdir(f"/proc/{current}/task"):
            with contextlib.suppress(OSError):
                todo += [
                    int(c)
                    for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()
                ]
    return found


def _connections_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections to ``port`` each process holds (from /proc)."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            established.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in pids:
        links = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        counts[pid] = sum(1 for link in links if link in established)
    return counts


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_keep_alive_connections_are_spread_over_the_workers(tmp_path: Path) -> None:
    """A client pool's keep-alive connections, opened one after the other while the server
    is idle (as a load balancer's pool fills), land on both workers. With one shared
    listening socket they landed 31/1, 28/4 and 27/5: one worker carried the load."""
    database_url = next(seeded_database("sqlite", tmp_path))
    server = Server({"TOLLGATE_DATABASE_URL": database_url}, tmp_path, args=("--workers", "2"))
    connections: list[socket.socket] = []
    try:
        for _ in range(32):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            connections.append(sock)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(0.01)
        held = _connections_by_process(server.port, _descendants(server.process.pid))
        busy = sorted(n for n in held.values() if n)
        assert sum(busy) == 32, held  # every connection is held by a worker
        assert len(busy) == 2 and busy[0] >= 6, held  # P(fewer than 6 of 32 by hash) ~ 1e-4
    finally:
        for sock in connections:
            sock.close()
        server.stop()
