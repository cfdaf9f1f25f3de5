"""Dependency faults against a live server and a real PostgreSQL this module starts and stops.

The PostgreSQL is a throwaway cluster (the 15 binaries, ``initdb`` into a temporary folder, a
free port on 127.0.0.1, trust auth), never the machine's main cluster on 5432. The server is
``python -m server serve`` on its own port. Stopping the database mid-load must give 503
``SERVICE_UNAVAILABLE`` quickly (never a 500, never a hang), the database's circuit breaker
must then answer at once, and starting the database again must heal the server by itself.
SIGTERM must let in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from database import migrate
from database.engine import make_engine
from database.seed import seed
from guards.breaker import CircuitBreaker
from guards.ratelimit import BucketPolicy, LimiterUnavailable, RedisRateLimiter
from loaders.session import DatabaseUnavailable, RequestDb
from resolvers.ids import to_global_id
from server.faults import GuardedLimiter, is_database_unavailable
from tests.guards.test_ratelimit_faults import RedisProcess
from tests.live.servers import Server, free_port
from tests.server.conftest import operation
from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
PG_BIN = Path(os.environ.get("TOLLGATE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
CLIENT_TIMEOUT = 5.0  # no request may hang: the client gives up (and the test fails) after this
ANSWER_WITHIN = 2.0  # every answer during an outage comes within this
AT_ONCE = 0.25  # what "at once" means once the breaker is open (generous for a loaded CI box)

pytestmark = pytest.mark.slow


class TempPostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 that a test can stop and start at will.

    PostgreSQL refuses to run as root, so under root its tools run as the ``postgres`` user.
    """

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                unavailable(f"PostgreSQL binaries ({PG_BIN / tool}) are not installed")
        self.as_user: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                owner = None
            if runuser is None or owner is None:
                unavailable("running PostgreSQL as root needs runuser and a 'postgres' user")
            self.as_user = [runuser, "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-pg-"))
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=90, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def stop(self) -> None:
        """Stop the cluster like an operator would: fast shutdown, sessions terminated."""
        if self.running:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        """Stop the cluster (immediately if need be) and delete its files."""
        try:
            self.stop()
        except Exception:
            subprocess.run(
                [*self.as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "i", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


def _server_env(database_url: str) -> dict[str, str]:
    return {
        "TOLLGATE_DATABASE_URL": database_url,
        "TOLLGATE_ENV": "development",
        "TOLLGATE_USER_CAPACITY": "100000000",
        "TOLLGATE_TENANT_CAPACITY": "1000000000",
        "TOLLGATE_WRITE_CAPACITY": "100000000",
        "TOLLGATE_LOG_JSON": "false",
        # Every request must reach the database: a response-cache hit would answer 200
        # through an outage (within its maxAge).
        "TOLLGATE_RESPONSE_CACHE": "false",
    }


async def _migrate_and_seed(url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, url)
    engine = make_engine(url)
    try:
        await seed(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def postgres() -> Iterator[TempPostgres]:
    cluster = TempPostgres()
    try:
        cluster.start()
        asyncio.run(_migrate_and_seed(cluster.url))
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-logs")


@pytest.fixture
def start_server(postgres: TempPostgres, logs: Path) -> Iterator[Callable[..., Server]]:
    """Start servers against the cluster (extra ``TOLLGATE_*`` settings as keywords)."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        if not postgres.running:
            postgres.start()
        running = Server({**_server_env(postgres.url), **env}, logs)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()
        if not postgres.running:
            postgres.start()  # leave the cluster up for the next test


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


def _orders(first: int) -> dict[str, Any]:
    return {"query": operation("OrdersPage"), "variables": {"first": first}}


def _create_order() -> dict[str, Any]:
    product = to_global_id("Product", uuid.uuid4())  # unknown: only reaching the DB matters
    return {
        "query": operation("CreateOrder"),
        "variables": {
            "input": {
                "idempotencyKey": uuid.uuid4().hex,
                "currency": "USD",
                "items": [{"productId": product, "quantity": 1}],
            }
        },
    }


def _codes(body: dict[str, Any]) -> set[str | None]:
    return {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}


async def _timed_post(
    client: httpx.AsyncClient, payload: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.post("/graphql", json=payload, headers=headers)
    return response, time.perf_counter() - started


def _assert_unavailable(response: httpx.Response, elapsed: float, what: str) -> None:
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text[:500]}"
    body = response.json()
    assert body.get("data") is None, f"{what}: {body}"
    assert _codes(body) == {"SERVICE_UNAVAILABLE"}, f"{what}: {body}"
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and int(retry_after) >= 1, f"{what}: {response.headers}"
    assert elapsed < ANSWER_WITHIN, f"{what} took {elapsed:.2f} s"


async def test_database_outage_answers_503_fast_then_recovers_by_itself(
    postgres: TempPostgres, server: Server
) -> None:
    token = server.cli("token", "--tenant", "acme", "--role", "staff")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
        healthy, _ = await _timed_post(client, _orders(20), headers)
        assert healthy.status_code == 200, healthy.text[:500]
        assert healthy.json()["data"]["orders"]["nodes"], healthy.text[:500]

        postgres.stop()

        # (a) Every request that needs the database: 503 SERVICE_UNAVAILABLE, fast.
        latencies: list[float] = []
        for attempt in range(12):
            response, elapsed = await _timed_post(client, _orders(20), headers)
            _assert_unavailable(response, elapsed, f"OrdersPage #{attempt}")
            latencies.append(elapsed)
        concurrent = await asyncio.gather(
            *(_timed_post(client, _orders(100), headers) for _ in range(8))
        )
        for response, elapsed in concurrent:
            _assert_unavailable(response, elapsed, "concurrent OrdersPage")
        response, elapsed = await _timed_post(client, _create_order(), headers)
        _assert_unavailable(response, elapsed, "CreateOrder")
        # A document the registry has never seen makes it look in its SQL store.
        fresh = {"query": f"query Fresh{uuid.uuid4().hex} {{ viewer {{ id name }} }}"}
        response, elapsed = await _timed_post(client, fresh, headers)
        _assert_unavailable(response, elapsed, "a new ad-hoc document")
        ready = await client.get("/readyz")
        assert ready.status_code == 503

        # The breaker is open by now: answers come at once, without trying the database.
        open_latencies = [(await _timed_post(client, _orders(20), headers))[1] for _ in range(10)]
        assert statistics.median(open_latencies) < AT_ONCE, open_latencies
        assert max(open_latencies) < ANSWER_WITHIN, open_latencies
        print(
            f"outage latencies (s): first {latencies[0]:.3f}, median "
            f"{statistics.median(latencies):.3f}; breaker open: median "
            f"{statistics.median(open_latencies):.4f}, max {max(open_latencies):.4f}"
        )

        # (b) The database comes back: the server heals without a restart.
        postgres.start()
        recovered_after: float | None = None
        started = time.monotonic()
        while time.monotonic() - started < 15:
            response, elapsed = await _timed_post(client, _orders(20), headers)
            assert elapsed < ANSWER_WITHIN
            if response.status_code == 200:
                recovered_after = time.monotonic() - started
                break
            _assert_unavailable(response, elapsed, "OrdersPage while recovering")
            await asyncio.sleep(0.2)
        assert recovered_after is not None, "no recovery within 15 s of the database's return"
        print(f"recovered {recovered_after:.2f} s after the database came back")
        for _ in range(5):
            response, _ = await _timed_post(client, _orders(20), headers)
            assert response.status_code == 200, response.text[:500]
            assert response.json()["data"]["orders"]["nodes"]
        assert (await client.get("/readyz")).status_code == 200
    output = server.output()
    assert "Exception in ASGI application" not in output  # an unhandled error: a 500
    assert "INTERNAL_SERVER_ERROR" not in output
    assert "circuit breaker database: closed -> open" in output


async def _lock_waiters(conn: Any) -> int:
    result = await conn.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
    )
    count = int(result.scalar())
    # pg_stat_activity is a snapshot per transaction: end it to see the next one.
    await conn.rollback()
    return count


@pytest.fixture
async def admin(postgres: TempPostgres) -> AsyncIterator[Any]:
    engine = make_engine(postgres.url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_sigterm_lets_in_flight_requests_finish(server: Server, admin: Any) -> None:
    token = server.cli("token", "--tenant", "acme", "--role", "staff")
    headers = {"Authorization": f"Bearer {token}"}
    in_flight = 6
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        warm, _ = await _timed_post(client, _orders(100), headers)
        assert warm.status_code == 200, warm.text[:500]
        # Hold every reader of `orders` in the database, so the requests are provably in
        # flight (waiting on the lock in PostgreSQL) when the server is told to stop.
        async with admin.connect() as blocker, admin.connect() as watcher:
            lock = await blocker.begin()
            await blocker.execute(text("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"))
            requests = [
                asyncio.create_task(_timed_post(client, _orders(100), headers))
                for _ in range(in_flight)
            ]
            try:
                deadline = time.monotonic() + 10
                while await _lock_waiters(watcher) < in_flight:
                    assert time.monotonic() < deadline, "requests never reached the database"
                    await asyncio.sleep(0.05)
                server.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(1.0)
                assert server.process.poll() is None, "the server quit with requests in flight"
                # A stopping server takes no new work.
                with pytest.raises(httpx.TransportError):
                    async with httpx.AsyncClient(timeout=2) as fresh:
                        await fresh.post(f"{server.url}/graphql", json=_orders(1), headers=headers)
            finally:
                await lock.rollback()
            results = await asyncio.wait_for(asyncio.gather(*requests), timeout=20)
    for response, _ in results:
        assert response.status_code == 200, response.text[:500]
        assert len(response.json()["data"]["orders"]["nodes"]) == 100
    exit_code = await asyncio.to_thread(server.process.wait, 30)
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert exit_code in (0, -signal.SIGTERM), server.output()[-2000:]
    assert "Exception in ASGI application" not in server.output()


async def test_a_hung_database_is_cut_off_by_the_deadline_and_the_pool_recovers(
    start_server: Callable[..., Server], admin: Any
) -> None:
    server = start_server(TOLLGATE_EXECUTION_TIMEOUT_MS="1000")
    token = server.cli("token", "--tenant", "acme", "--role", "staff")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
        warm, _ = await _timed_post(client, _orders(20), headers)
        assert warm.status_code == 200, warm.text[:500]
        async with admin.connect() as blocker:
            lock = await blocker.begin()
            await blocker.execute(text("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"))
            try:
                stuck = await asyncio.gather(
                    *(_timed_post(client, _orders(20), headers) for _ in range(4))
                )
            finally:
                await lock.rollback()
        for response, elapsed in stuck:
            assert response.status_code != 500, response.text[:500]
            assert _codes(response.json()) == {"TIMEOUT"}, response.text[:500]
            assert elapsed < 1.0 + ANSWER_WITHIN, f"took {elapsed:.2f} s"
        # The cancelled statements' connections were discarded, not leaked or reused broken.
        for _ in range(15):
            response, _ = await _timed_post(client, _orders(20), headers)
            assert response.status_code == 200, response.text[:500]
    output = server.output()
    assert "Exception in ASGI application" not in output
    assert "INTERNAL_SERVER_ERROR" not in output


# -- the pieces the server composes, against the same real services ------------------------


async def test_request_db_breaker_opens_on_an_outage_and_closes_on_recovery(
    postgres: TempPostgres,
) -> None:
    engine = make_engine(postgres.url, pool_size=2)
    breaker = CircuitBreaker("database", failure_threshold=3, reset_timeout=0.5)
    statement = text("SELECT count(*) FROM tenants")

    async def count() -> int:
        db = RequestDb(engine, None, breaker)
        try:
            return int(await db.scalar(statement) or 0)
        finally:
            await db.close()

    try:
        assert await count() >= 0
        postgres.stop()
        for _ in range(3):
            with pytest.raises(DatabaseUnavailable):
                await count()
        assert breaker.state == "open"
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable) as refused:
            await count()
        assert time.perf_counter() - started < 0.01  # refused without touching the network
        assert refused.value.extensions == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 1}
        # One request never counts twice: its later statements fail at once.
        db = RequestDb(engine, None)
        with pytest.raises(DatabaseUnavailable):
            await db.scalar(statement)
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable):
            await db.rows(statement)
        assert time.perf_counter() - started < 0.01
        await db.close()

        postgres.start()
        await asyncio.sleep(0.6)
        assert breaker.state == "half-open"
        assert await count() >= 0  # the probe
        assert breaker.state == "closed"
    finally:
        if not postgres.running:
            postgres.start()
        await engine.dispose()


async def test_request_db_counts_a_bad_statement_as_the_database_answering(
    postgres: TempPostgres,
) -> None:
    engine = make_engine(postgres.url, pool_size=2)
    breaker = CircuitBreaker("database", failure_threshold=1)
    try:
        db = RequestDb(engine, None, breaker)
        with pytest.raises(DBAPIError) as raised:
            await db.scalar(text("SELECT * FROM no_such_table"))
        await db.close()
        assert not is_database_unavailable(raised.value)
        assert breaker.state == "closed"
    finally:
        await engine.dispose()


async def test_classifier_tells_outages_from_mistakes(
    postgres: TempPostgres, tmp_path: Path
) -> None:
    engine = make_engine(postgres.url, pool_size=2)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TEMP TABLE dup (id int PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO dup VALUES (1)"))
            with pytest.raises(IntegrityError) as duplicate:
                await conn.execute(text("INSERT INTO dup VALUES (1)"))
            assert not is_database_unavailable(duplicate.value)
            await conn.rollback()
            with pytest.raises(DBAPIError) as syntax:
                await conn.execute(text("SELEC 1"))
            assert not is_database_unavailable(syntax.value)
            await conn.rollback()
            with pytest.raises(DBAPIError) as division:
                await conn.execute(text("SELECT 1 / 0"))
            assert not is_database_unavailable(division.value)
    finally:
        await engine.dispose()

    nowhere = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres")
    try:
        with pytest.raises(OSError) as refused:
            async with nowhere.connect():
                pass
        assert is_database_unavailable(refused.value)
    finally:
        await nowhere.dispose()

    sqlite = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    try:
        with pytest.raises(OperationalError) as unopenable:
            async with sqlite.connect():
                pass
        assert is_database_unavailable(unopenable.value)
    finally:
        await sqlite.dispose()
    sqlite = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with sqlite.connect() as conn:
            with pytest.raises(OperationalError) as no_table:
                await conn.execute(text("SELECT * FROM no_such_table"))
        assert not is_database_unavailable(no_table.value)
    finally:
        await sqlite.dispose()

    # Server-side states asyncpg reports with these SQLSTATEs (raised by real servers while
    # starting, shutting down or full; built here because they are hard to provoke on cue).
    for exc in (
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients already"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    ):
        assert is_database_unavailable(exc), exc
    assert not is_database_unavailable(asyncpg.exceptions.QueryCanceledError("timeout"))
    assert not is_database_unavailable(ValueError("not a database error"))


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not on PATH (apt-get install redis-server)")
    process = RedisProcess(binary, free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_guarded_limiter_stops_waiting_on_a_hung_redis(
    redis_process: RedisProcess,
) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=redis_process.port)
    breaker = CircuitBreaker("redis", failure_threshold=3, reset_timeout=0.5)
    limiter = GuardedLimiter(
        RedisRateLimiter(client, prefix="tg:rl:breaker:", timeout=0.25), breaker
    )
    policy = BucketPolicy("user", capacity=100, restore_rate=1)
    try:
        assert (await limiter.debit_all([("k", policy)], 1)).allowed
        redis_process.pause()  # accepts connections, never answers
        for _ in range(3):
            started = time.perf_counter()
            with pytest.raises(LimiterUnavailable):
                await limiter.debit_all([("k", policy)], 1)
            assert time.perf_counter() - started >= 0.2  # each one waited for its timeout
        assert breaker.state == "open"
        started = time.perf_counter()
        for _ in range(20):
            with pytest.raises(LimiterUnavailable):
                await limiter.debit_all([("k", policy)], 1)
        assert time.perf_counter() - started < 0.05  # twenty refusals, no waiting
        redis_process.resume()
        await asyncio.sleep(0.6)
        assert (await limiter.debit_all([("k", policy)], 1)).allowed
        assert breaker.state == "closed"
    finally:
        redis_process.resume()
        await limiter.close()
        await client.aclose()
