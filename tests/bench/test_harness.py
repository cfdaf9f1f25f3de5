"""The benchmark's peers answer like the server, and the harness measures and cleans up."""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from bench import profile, run
from bench.load import VARY, VARY_BLOCK, lua_script, run_python, run_wrk
from server.cli import mint_demo_token
from server.settings import Settings
from tests.live.servers import http_thread

OPS = {name: run.read_operation(name, run.OPERATIONS_DIR) for name in run.DEFAULT_OPS}


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, seeded SQLite file made the way the harness makes it."""
    path = tmp_path_factory.mktemp("bench") / "tollgate.db"
    run.ensure_database(path)
    return path


@pytest.fixture(scope="session")
async def token(seeded_db: Path) -> str:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{seeded_db}")
    return await mint_demo_token(settings, "acme", "staff")


async def test_peer_and_floor_return_the_servers_data(seeded_db: Path, token: str) -> None:
    _, data = await run.count_statements(seeded_db, token, OPS)
    for name in OPS:
        assert data["a"][name], f"server returned no data for {name}"
        assert run.first_difference(data["a"][name], data["b"][name]) is None, name
        assert run.first_difference(data["a"][name], data["c"][name]) is None, name
    orders = data["a"]["OrdersPage"]["orders"]
    assert len(orders["nodes"]) == 20 and orders["totalCount"] > 20
    assert sum(len(node["items"]) for node in orders["nodes"]) > 20


async def test_floor_sends_exactly_the_servers_sql(seeded_db: Path, token: str) -> None:
    statements, _ = await run.count_statements(seeded_db, token, OPS)
    for name in OPS:
        assert statements["c"][name] == statements["a"][name], name
    # Batched loaders: a page of 20 orders with customers, items and products is a handful
    # of statements (plus BEGIN), not one per order.
    assert run._selects(statements["a"]["OrdersPage"]) == 5
    assert run._selects(statements["b"]["OrdersPage"]) == 5


def test_first_difference_names_the_path() -> None:
    left = {"orders": {"nodes": [{"id": "1", "total": {"amount": "1.00"}}]}}
    right = {"orders": {"nodes": [{"id": "1", "total": {"amount": "1.10"}}]}}
    assert run.first_difference(left, left) is None
    assert (
        run.first_difference(left, right) == "data.orders.nodes[0].total.amount ('1.00' != '1.10')"
    )
    assert "length 1 != 0" in (run.first_difference([1], []) or "")
    assert "missing" in (run.first_difference({"a": 1}, {}) or "")


def test_lua_script_carries_body_and_headers() -> None:
    script = lua_script(b'{"query":"{ a }"}', {"Authorization": "Bearer x"})
    assert 'wrk.body = [==[{"query":"{ a }"}]==]' in script
    assert 'wrk.headers["Authorization"] = "Bearer x"' in script
    with pytest.raises(ValueError):
        lua_script(b"]==]", {})


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[bytes]]]:
    """A keep-alive HTTP server on 127.0.0.1 that answers 200 and keeps every body it got."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            return None

    with http_thread(Handler) as base_url:
        yield f"{base_url}/graphql", bodies


@pytest.mark.slow
def test_varied_bodies_never_repeat_across_connections_and_runs(
    recording_server: tuple[str, list[bytes]],
) -> None:
    """``text_unseen`` measures text the server has never seen: a warm-up, the measured run
    and later rounds must not resend a document, nor may two connections send the same one."""
    url, bodies = recording_server
    body = b'{"query":"{ a }\\n# ' + VARY.encode() + b'"}'
    for _ in range(2):  # a warm-up and a measured run, say
        result = run_python(url, body, {}, duration=1.0, concurrency=4)
        assert result.requests > 0 and result.non_2xx == 0
    assert len(bodies) >= 2 and all(VARY.encode() not in b for b in bodies)
    assert len({len(b) for b in bodies}) == 1  # fixed width
    assert len(set(bodies)) == len(bodies)


def test_each_wrk_script_counts_from_its_own_block() -> None:
    """wrk's Lua counter starts afresh in every run: each script starts a block further."""
    starts = [
        int(re.search(r"local sent = (\d+)", lua_script(VARY.encode(), {}))[1])  # type: ignore[index]
        for _ in range(3)
    ]
    assert all(b - a == VARY_BLOCK for a, b in itertools.pairwise(starts)), starts


@pytest.mark.slow
def test_servers_start_agree_take_load_and_stop(seeded_db: Path, tmp_path: Path) -> None:
    token = run.mint_token(seeded_db)
    servers = run.build_servers(seeded_db, tmp_path, cpu=None)
    with run.running(servers):
        diffs = run.compare_over_http(servers, token, OPS)
        assert all(diff is None for per in diffs.values() for diff in per.values()), diffs
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = run.request_body("ViewerProfile", OPS["ViewerProfile"])
        result = run_python(servers["c"].url, body, headers, duration=1.0, concurrency=2)
        assert result.requests > 0 and result.errors == 0 and result.non_2xx == 0
        if shutil.which("wrk"):
            result = run_wrk(servers["a"].url, body, headers, duration=1.0, concurrency=2)
            assert (
                result.requests > 0 and result.non_2xx == 0 and result.p99_ms >= result.p50_ms > 0
            )
    for server in servers.values():
        assert server.process is not None and server.process.poll() is not None


def test_profile_summary_drops_idle_samples_and_ranks_busy_ones(tmp_path: Path) -> None:
    idle_line = next(iter(profile._idle_leaves()))[2]
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        "run (uvicorn/main.py:1);execute_field (/x/site-packages/graphql/execution/executor.py:9) 30\n"
        "run (uvicorn/main.py:1);rows (/work/main/loaders/session.py:5) 10\n"
        f"_connection_worker_thread (/x/site-packages/aiosqlite/core.py:{idle_line}) 500\n",
        encoding="utf-8",
    )
    summary = profile.summarise(raw)
    assert summary["busy_samples"] == 40 and summary["idle_samples_dropped"] == 500
    assert summary["self_by_package"] == [("graphql", 75.0), ("loaders", 25.0)]
    assert ("run (uvicorn/main.py)", 100.0) in summary["inclusive_by_function"]


def test_rounds_combine_into_one_result_weighted_by_requests() -> None:
    from bench.load import LoadResult, combine

    fast = LoadResult("wrk", 300, 10.0, 30.0, 10.0, 20.0, 40.0, 12.0, 90.0, 0, 0)
    slow = LoadResult("wrk", 100, 10.0, 10.0, 30.0, 50.0, 80.0, 33.0, 120.0, 1, 2)
    both = combine([fast, slow])
    assert (both.requests, both.duration_s, both.rps) == (400, 20.0, 20.0)
    assert both.p50_ms == 15.0 and both.max_ms == 120.0  # (300*10 + 100*30) / 400
    assert (both.errors, both.non_2xx) == (1, 2)
    assert combine([fast]) is fast
