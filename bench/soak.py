"""Scale-out soak: 2 workers on PostgreSQL and Redis under a mixed load for 60 seconds.

``.venv/bin/python -m bench.soak [--duration 60] [--concurrency 32] [--users-per-tenant 5]``

1. Creates its own PostgreSQL database ``tollgate_soak_<pid>`` on 127.0.0.1:5432 (role
   ``postgres``), migrates it and seeds it with a seed of its own, so its tenant and user ids
   (hence its rate-limit keys in the shared Redis) clash with nobody else's.
2. Starts ``python -m server serve --workers 2`` connected as the row-level-security-bound
   app role, with ``TOLLGATE_REDIS_URL`` and the default budgets (so 429s are expected).
3. Mints tokens with ``python -m server token`` for the customer, staff and admin demo users
   of both tenants and a few more customers, then checks every operation once per caller.
4. Drives a weighted mix of the contract operations from its own process (a raw HTTP/1.1
   keep-alive client on uvloop, ``bench.load.KeepAliveClient``, over at most
   ``--concurrency`` connections, each loop bounded by the deadline), recording status codes
   and latencies. The client costs tens of microseconds a request: with httpx the driver
   itself saturated a core at about 300 requests/s and the soak measured the client.
5. Prints throughput, p50/p99 per operation and overall, counts by status and
   ``non-429 errors: N`` (exit status 1 unless N is 0); writes ``bench/results/soak.json``.

Whatever happens, the server is stopped, the database dropped and the run's rate-limit keys
deleted. A response is an error unless it is HTTP 200 or 429 and its only GraphQL error code
is ``THROTTLED``; business ``userErrors`` (e.g. ``INSUFFICIENT_STOCK``) are not errors.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

from bench import run
from bench.load import ClientError, KeepAliveClient
from server.settings import ROOT

PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
RATE_LIMIT_PREFIX = "tg:rl:"
TENANTS = ("acme", "globex")
ROLES = ("customer", "staff", "admin")
WORKERS = 2
# Share of requests per operation; CreateOrder stays small (it writes and has its own budget).
DEFAULT_MIX: tuple[tuple[str, int], ...] = (
    ("OrdersPage", 25),
    ("ProductCatalog", 20),
    ("ViewerProfile", 25),
    ("RateLimitStatus", 25),
    ("CreateOrder", 5),
)
VARIABLES: dict[str, dict[str, Any]] = {
    "OrdersPage": {"first": 20},
    "ProductCatalog": {"first": 20},
    "ViewerProfile": {},
    "RateLimitStatus": {},
}
OK = "ok"
THROTTLED = "throttled"
ALLOWED_STATUSES = frozenset({200, 429})
REQUEST_TIMEOUT_S = 10.0
STARTUP_TIMEOUT_S = 90.0
CATALOG_SIZE = 50
ERROR_SAMPLES = 3
OPEN_LOOP_P95_S = 0.2  # the open-loop mode's bar: p95 under 200 ms and no error but 429


# --------------------------------------------------------------------------- pure parts


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """``"OrdersPage=25,CreateOrder=5"`` as ``(name, weight)`` pairs; weights are positive."""
    mix: list[tuple[str, int]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, weight = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"mix entry {part!r} is not NAME=WEIGHT")
        value = int(weight)
        if value <= 0:
            raise ValueError(f"weight of {name.strip()} must be positive, got {value}")
        mix.append((name.strip(), value))
    if not mix:
        raise ValueError("the mix is empty")
    names = [name for name, _ in mix]
    if len(set(names)) != len(names):
        raise ValueError(f"operation named twice in the mix: {names}")
    return tuple(mix)


class Mix:
    """A weighted choice of operations, drawn with a caller's ``random.Random``."""

    def __init__(self, weights: Sequence[tuple[str, int]]) -> None:
        if not weights or any(weight <= 0 for _, weight in weights):
            raise ValueError("a mix needs at least one operation and positive weights")
        self.names = [name for name, _ in weights]
        self.cumulative = list(itertools.accumulate(weight for _, weight in weights))

    @property
    def total(self) -> int:
        return self.cumulative[-1]

    def pick(self, rng: random.Random) -> str:
        """One operation name, each with probability weight / total."""
        return self.names[bisect.bisect_right(self.cumulative, rng.randrange(self.total))]

    def shares(self) -> dict[str, float]:
        """Each operation's expected share of requests."""
        previous = 0
        shares = {}
        for name, bound in zip(self.names, self.cumulative, strict=True):
            shares[name] = (bound - previous) / self.total
            previous = bound
        return shares


def classify(status: int, payload: object) -> str:
    """``ok``, ``throttled``, or why the response counts as an error.

    Only HTTP 200 and 429 are acceptable, and the only acceptable GraphQL error code is
    ``THROTTLED``. Business failures live in ``userErrors`` inside ``data`` and are fine.
    """
    if status not in ALLOWED_STATUSES:
        return f"http {status}"
    if not isinstance(payload, dict):
        return f"http {status}: body is not a JSON object"
    errors = payload.get("errors") or []
    if not isinstance(errors, list):
        return f"http {status}: malformed errors"
    codes: list[str] = []
    for error in errors:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        codes.append(str(code) if code else "NO_CODE")
    unexpected = sorted({code for code in codes if code != "THROTTLED"})
    if unexpected:
        return f"graphql {','.join(unexpected)}"
    if codes:
        return THROTTLED
    if status == 429:
        return "http 429 without THROTTLED"
    if payload.get("data") is None:
        return "http 200 without data"
    return OK


def is_error(outcome: str) -> bool:
    """Whether an outcome of :func:`classify` counts against the run."""
    return outcome not in (OK, THROTTLED)


def user_error_codes(payload: object) -> list[str]:
    """The ``userErrors`` codes of every root field of a response's ``data``."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return []
    codes = []
    for value in data.values():
        if isinstance(value, dict):
            for error in value.get("userErrors") or []:
                if isinstance(error, dict):
                    codes.append(str(error.get("code")))
    return codes


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ascending ``ordered``."""
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if not ordered:
        return None
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of the soak: its operation, outcome, HTTP status (0: no response), latency."""

    operation: str
    outcome: str
    status: int
    latency_s: float


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def latency_summary(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99, mean and max in milliseconds."""
    ordered = sorted(latencies)
    return {
        "p50_ms": _ms(percentile(ordered, 50)),
        "p90_ms": _ms(percentile(ordered, 90)),
        "p99_ms": _ms(percentile(ordered, 99)),
        "mean_ms": _ms(sum(ordered) / len(ordered)) if ordered else None,
        "max_ms": _ms(ordered[-1]) if ordered else None,
    }


def summarise(samples: Sequence[Sample], elapsed_s: float) -> dict[str, Any]:
    """Throughput, latency percentiles overall and per operation, counts by status and outcome.

    ``served`` latencies are those of requests that ran (outcome ``ok``); ``all`` includes
    the quick 429s too.
    """
    elapsed = max(elapsed_s, 1e-9)
    by_operation: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_operation[sample.operation].append(sample)

    def block(group: Sequence[Sample]) -> dict[str, Any]:
        outcomes = Counter(sample.outcome for sample in group)
        served = [sample.latency_s for sample in group if sample.outcome == OK]
        return {
            "requests": len(group),
            "served": outcomes[OK],
            "throttled": outcomes[THROTTLED],
            "errors": sum(count for outcome, count in outcomes.items() if is_error(outcome)),
            "rps": round(len(group) / elapsed, 1),
            "served_rps": round(outcomes[OK] / elapsed, 1),
            "latency_all": latency_summary([sample.latency_s for sample in group]),
            "latency_served": latency_summary(served),
        }

    errors = Counter(sample.outcome for sample in samples if is_error(sample.outcome))
    return {
        "elapsed_s": round(elapsed_s, 3),
        **block(samples),
        "status_counts": {
            str(status): count
            for status, count in sorted(Counter(sample.status for sample in samples).items())
        },
        "non_429_errors": sum(errors.values()),
        "errors_by_kind": dict(errors.most_common()),
        "operations": {name: block(group) for name, group in sorted(by_operation.items())},
    }


def render(summary: Mapping[str, Any]) -> str:
    """The human-readable table of a :func:`summarise` result."""
    head = (
        f"{'operation':<16} {'requests':>8} {'served':>7} {'429':>6} {'errors':>6} "
        f"{'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'served p50':>10} {'served p99':>10}"
    )
    lines = [head, "-" * len(head)]

    def row(name: str, block: Mapping[str, Any]) -> str:
        every, served = block["latency_all"], block["latency_served"]

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        return (
            f"{name:<16} {block['requests']:>8} {block['served']:>7} {block['throttled']:>6} "
            f"{block['errors']:>6} {block['rps']:>7.1f} {fmt(every['p50_ms']):>8} "
            f"{fmt(every['p99_ms']):>8} {fmt(served['p50_ms']):>10} {fmt(served['p99_ms']):>10}"
        )

    for name, block in summary["operations"].items():
        lines.append(row(name, block))
    lines.append("-" * len(head))
    lines.append(row("overall", summary))
    statuses = ", ".join(f"{status}: {count}" for status, count in summary["status_counts"].items())
    lines.append(
        f"throughput {summary['rps']:.1f} req/s ({summary['served_rps']:.1f} served; "
        f"{summary['served']} served, {summary['throttled']} throttled) over "
        f"{summary['elapsed_s']:.1f} s; by status: {statuses}"
    )
    for kind, count in summary["errors_by_kind"].items():
        lines.append(f"  error {kind}: {count}")
    lines.append(f"non-429 errors: {summary['non_429_errors']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True, slots=True)
class Caller:
    """A token of one user and the products of its tenant (for CreateOrder)."""

    tenant: str
    role: str
    token: str
    products: tuple[tuple[str, str], ...]  # (global id, currency) with stock left


def request_body(
    name: str, text: str, caller: Caller, rng: random.Random, idempotency_key: str
) -> bytes:
    """The JSON body of one request; CreateOrder buys one unit of a random product."""
    if name == "CreateOrder":
        product_id, currency = rng.choice(caller.products)
        variables: dict[str, Any] = {
            "input": {
                "idempotencyKey": idempotency_key,
                "currency": currency,
                "items": [{"productId": product_id, "quantity": 1}],
                "note": "soak",
            }
        }
    else:
        variables = VARIABLES.get(name, {})
    return orjson.dumps({"query": text, "variables": variables, "operationName": name})


def _headers(token: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
        "accept": "application/graphql-response+json",
        "graphql-client-name": "tollgate-soak",
    }


async def _send(client: KeepAliveClient, body: bytes, token: str) -> tuple[int, Any]:
    status, content = await client.post(body, _headers(token))
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    return status, payload


async def drive(plan: Mapping[str, Any]) -> dict[str, Any]:
    """Run the load described by ``plan`` and return its summary (the driver process)."""
    url: str = plan["url"]
    texts: dict[str, str] = plan["texts"]
    callers = [
        Caller(c["tenant"], c["role"], c["token"], tuple((p[0], p[1]) for p in c["products"]))
        for c in plan["callers"]
    ]
    mix = Mix([(name, int(weight)) for name, weight in plan["mix"]])
    concurrency = int(plan["concurrency"])
    samples: list[Sample] = []
    error_samples: dict[str, list[str]] = defaultdict(list)
    user_errors: Counter[str] = Counter()
    run_id = uuid.uuid4().hex[:12]

    async def worker(index: int, client: KeepAliveClient, deadline: float) -> None:
        rng = random.Random(f"{plan['seed']}:{index}")
        for count in itertools.count():
            if time.perf_counter() >= deadline:
                return
            name = mix.pick(rng)
            caller = rng.choice(callers)
            body = request_body(name, texts[name], caller, rng, f"soak-{run_id}-{index}-{count}")
            started = time.perf_counter()
            try:
                status, payload = await _send(client, body, caller.token)
            except ClientError as exc:
                status, payload = 0, None
                outcome = f"exception {type(exc).__name__}"
            else:
                outcome = classify(status, payload)
            latency = time.perf_counter() - started
            samples.append(Sample(name, outcome, status, latency))
            if is_error(outcome) and len(error_samples[outcome]) < ERROR_SAMPLES:
                error_samples[outcome].append(
                    f"{name} {caller.role}@{caller.tenant}: {payload}"[:800]
                )
            user_errors.update(f"{name} {code}" for code in user_error_codes(payload))

    async def arrival(rng: random.Random, client: KeepAliveClient, index: int, due: float) -> None:
        name = mix.pick(rng)
        caller = rng.choice(callers)
        body = request_body(name, texts[name], caller, rng, f"soak-{run_id}-open-{index}")
        try:
            status, payload = await _send(client, body, caller.token)
        except ClientError as exc:
            status, payload = 0, None
            outcome = f"exception {type(exc).__name__}"
        else:
            outcome = classify(status, payload)
        # Latency from the request's due time, not from when it was sent: a server that
        # falls behind delays the next arrivals too (no coordinated omission).
        samples.append(Sample(name, outcome, status, time.perf_counter() - due))
        if is_error(outcome) and len(error_samples[outcome]) < ERROR_SAMPLES:
            error_samples[outcome].append(f"{name} {caller.role}@{caller.tenant}: {payload}"[:800])

    async def open_loop(client: KeepAliveClient, rate: float, duration: float) -> list[Sample]:
        """Requests at a fixed arrival rate for ``duration`` seconds, whatever the server does."""
        rng = random.Random(f"{plan['seed']}:open:{rate}")
        first = len(samples)
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for index in range(max(1, int(rate * duration))):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(arrival(rng, client, index, due)))
        await asyncio.gather(*tasks)
        return samples[first:]

    client = KeepAliveClient(url, concurrency, REQUEST_TIMEOUT_S)
    try:
        started = time.perf_counter()
        rates = [float(r) for r in plan.get("rates") or ()]
        steps: list[dict[str, Any]] = []
        sustainable: float | None = None
        if rates:
            for rate in rates:
                step_started = time.perf_counter()
                taken = await open_loop(client, rate, float(plan["step_duration"]))
                step = summarise(taken, time.perf_counter() - step_started)
                p95 = percentile(sorted(x.latency_s for x in taken), 95)
                ok = step["non_429_errors"] == 0 and p95 is not None and p95 < OPEN_LOOP_P95_S
                steps.append(
                    {
                        "rate": rate,
                        "p95_ms": _ms(p95),
                        "p50_ms": step["latency_all"]["p50_ms"],
                        "non_429_errors": step["non_429_errors"],
                        "throttled": step["throttled"],
                        "served_rps": step["served_rps"],
                        "sustained": ok,
                    }
                )
                print(f"    open loop {rate:.0f}/s: p95 {_ms(p95)} ms, errors "
                      f"{step['non_429_errors']}, 429s {step['throttled']}", file=sys.stderr)  # fmt: skip
                if not ok:
                    break  # higher rates only queue more
                sustainable = rate
        else:
            deadline = started + float(plan["duration"])
            await asyncio.gather(*(worker(i, client, deadline) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    summary = summarise(samples, elapsed)
    if rates:
        summary["open_loop"] = {
            "steps": steps,
            "p95_limit_ms": OPEN_LOOP_P95_S * 1000,
            "sustainable_rate": sustainable,
        }
    summary["user_errors"] = dict(user_errors.most_common())
    summary["error_samples"] = dict(error_samples)
    return summary


def run_driver(plan: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Run :func:`drive` in its own process, so the client does not share the caller's GIL."""
    with tempfile.TemporaryDirectory(prefix="tollgate-soak-") as tmp:
        plan_path, out_path = Path(tmp) / "plan.json", Path(tmp) / "out.json"
        plan_path.write_bytes(orjson.dumps(plan))
        subprocess.run(
            [sys.executable, "-m", "bench.soak", "--drive", str(plan_path), "--out", str(out_path)],
            cwd=ROOT,
            env=dict(env),
            check=True,
            timeout=float(plan["duration"])
            + float(plan.get("step_duration") or 0) * len(plan.get("rates") or ())
            + 120,
        )
        result: dict[str, Any] = orjson.loads(out_path.read_bytes())
        return result


# --------------------------------------------------------------------------- setup


async def _admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _seed(owner_url: str, seed_value: int) -> list[str]:
    """Seed the database; return its tenant ids."""
    from sqlalchemy import text

    from database.engine import make_engine
    from database.seed import seed

    engine = make_engine(owner_url)
    try:
        summary = await seed(engine, seed=seed_value)
        print(f"    seeded: {summary}", file=sys.stderr)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id FROM tenants"))).scalars().all()
        return [str(row) for row in rows]
    finally:
        await engine.dispose()


async def _customer_ids(owner_url: str, tenant: str, count: int) -> list[str]:
    """Ids of ``count`` customers of ``tenant`` other than its demo customer."""
    from sqlalchemy import text

    from database.engine import make_engine

    engine = make_engine(owner_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT u.id FROM users u JOIN tenants t ON t.id = u.tenant_id "
                    "WHERE t.slug = :slug AND u.role = 'CUSTOMER' "
                    "ORDER BY u.created_at, u.id OFFSET 1 LIMIT :count"
                ),
                {"slug": tenant, "count": count},
            )
            return [str(row) for row in rows.scalars()]
    finally:
        await engine.dispose()


@contextlib.contextmanager
def soak_database(seed_value: int) -> Iterator[tuple[str, list[str]]]:
    """A fresh migrated, seeded database: yields (owner URL, tenant ids); dropped at exit."""
    from database import migrate

    name = f"tollgate_soak_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    owner_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    print(f"==> creating database {name}", file=sys.stderr)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        migrate.upgrade(owner_url)
        tenant_ids = asyncio.run(_seed(owner_url, seed_value))
        yield owner_url, tenant_ids
    finally:
        print(f"==> dropping database {name}", file=sys.stderr)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def delete_rate_limit_keys(redis_url: str, tenant_ids: Sequence[str]) -> int:
    """Delete this run's buckets (their keys carry its tenant ids); returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    deleted = 0
    try:
        for tenant_id in tenant_ids:
            # The server writes tenant ids as bare hex in its keys.
            pattern = f"{RATE_LIMIT_PREFIX}*{uuid.UUID(tenant_id).hex}*"
            keys = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                deleted += int(client.delete(*keys[start : start + 500]))
    finally:
        client.close()
    return deleted


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env() -> dict[str, str]:
    """This environment without any ``TOLLGATE_*`` or ``PROMETHEUS_*`` variable."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TOLLGATE_", "PROMETHEUS_"))
    }


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["TOLLGATE_USER_RESTORE_RATE=20"]`` as a dict; only ``TOLLGATE_*`` names."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("TOLLGATE_"):
            raise ValueError(f"override {pair!r} is not TOLLGATE_NAME=VALUE")
        overrides[name] = value
    return overrides


def server_env(
    app_url: str,
    jwt_secret: str,
    metrics_dir: Path,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What each worker sees: the app role, shared Redis, default budgets, no access log.

    ``overrides`` (e.g. a smaller restore rate, to make the run throttle) come last.
    """
    return {
        **base_env(),
        "TOLLGATE_DATABASE_URL": app_url,
        "TOLLGATE_REDIS_URL": REDIS_URL,
        "TOLLGATE_JWT_SECRET": jwt_secret,
        "TOLLGATE_ACCESS_LOG": "false",
        "TOLLGATE_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **(overrides or {}),
    }


def wait_ready(server: run.Server, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Wait for ``/readyz`` (database and Redis reachable) to answer 200."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}/readyz"
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n"
                + server.log_path.read_text(errors="replace")[-3000:]
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"server not ready after {timeout:.0f}s")


def worker_pids(pid: int) -> list[int]:
    """The child processes of the uvicorn supervisor ``pid`` that serve the app."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(child) for child in path.read_text().split()] if path.exists() else []
    workers = []
    for child in children:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"resource_tracker" not in cmdline:
                workers.append(child)
    return workers


def mint_tokens(
    env: Mapping[str, str], owner_url: str, app_url: str, users_per_tenant: int
) -> list[tuple[str, str, str]]:
    """``(tenant, role, token)`` per caller, minted with ``python -m server token``.

    The role demo users are looked up through the app role. Extra customers are named by id
    with ``--user``, which the CLI looks up without admitting a tenant to row-level security,
    so those are minted against the owner URL of the same database.
    """
    jobs: list[tuple[str, str, list[str], str]] = []
    for tenant in TENANTS:
        for role in ROLES:
            jobs.append((tenant, role, ["--tenant", tenant, "--role", role], app_url))
        extra = max(0, users_per_tenant - len(ROLES))
        for user_id in asyncio.run(_customer_ids(owner_url, tenant, extra)):
            args = ["--tenant", tenant, "--role", "customer", "--user", user_id]
            jobs.append((tenant, "customer", args, owner_url))

    def mint(job: tuple[str, str, list[str], str]) -> tuple[str, str, str]:
        tenant, role, args, url = job
        done = subprocess.run(
            [sys.executable, "-m", "server", "token", *args, "--ttl", "3600"],
            cwd=ROOT,
            env={**env, "TOLLGATE_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"token {' '.join(args)} failed: {done.stderr.strip()[-1000:]}")
        return tenant, role, done.stdout.strip()

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(mint, jobs))


def catalog(url: str, token: str, text: str) -> tuple[tuple[str, str], ...]:
    """(global id, currency) of in-stock products of the token's tenant, via ProductCatalog."""
    body = orjson.dumps(
        {"query": text, "variables": {"first": CATALOG_SIZE}, "operationName": "ProductCatalog"}
    )
    response = httpx.post(url, content=body, headers=_headers(token), timeout=30)
    payload = response.json()
    if classify(response.status_code, payload) != OK:
        raise RuntimeError(f"ProductCatalog failed: HTTP {response.status_code} {payload}")
    edges = payload["data"]["products"]["edges"]
    products = tuple(
        (edge["node"]["id"], edge["node"]["price"]["currency"])
        for edge in edges
        if edge["node"]["stock"] > 0
    )
    if not products:
        raise RuntimeError("no product in stock to order")
    return products


def preflight(url: str, callers: Sequence[Caller], texts: Mapping[str, str]) -> None:
    """One request per caller and operation; raise at the first that is not served."""
    rng = random.Random(0)
    with httpx.Client(timeout=30) as client:
        for index, caller in enumerate(callers):
            for name, text in texts.items():
                body = request_body(name, text, caller, rng, f"soak-preflight-{index}")
                response = client.post(url, content=body, headers=_headers(caller.token))
                payload = response.json()
                outcome = classify(response.status_code, payload)
                if outcome != OK:
                    raise RuntimeError(
                        f"preflight {name} as {caller.role}@{caller.tenant}: {outcome}: "
                        f"{str(payload)[:800]}"
                    )


def _log_problems(log_path: Path) -> list[str]:
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    markers = ("Traceback", '"level": "error"', '"level":"error"', "ERROR")
    return [line[:300] for line in lines if any(marker in line for marker in markers)]


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent client loops")
    parser.add_argument(
        "--users-per-tenant",
        type=int,
        default=5,
        help="callers per tenant: its customer, staff and admin demo users, then customers",
    )
    parser.add_argument(
        "--mix",
        default=",".join(f"{name}={weight}" for name, weight in DEFAULT_MIX),
        help="weighted operations, NAME=WEIGHT,...",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TOLLGATE_NAME=VALUE",
        help="server setting to override (repeatable), e.g. TOLLGATE_USER_RESTORE_RATE=20",
    )
    parser.add_argument(
        "--open-loop",
        type=lambda text: [float(r) for r in text.split(",") if r],
        default=[],
        metavar="RATES",
        help="open-loop mode: fixed arrival rates in req/s, e.g. 25,50,100,200 (each for "
        "--step-duration s, stopping at the first that fails); reports the highest with p95 "
        "< 200 ms and no error but 429. --concurrency then bounds the client's connections",
    )
    parser.add_argument("--step-duration", type=float, default=10.0)
    parser.add_argument(
        "--server-log", type=Path, default=None, metavar="PATH",
        help="keep the server's log there (with --set TOLLGATE_ACCESS_LOG=true: a line per "
        "operation with its server-side latency)",
    )  # fmt: skip
    parser.add_argument("--operations-dir", type=Path, default=run.OPERATIONS_DIR)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--drive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency <= 0 or args.users_per_tenant <= 0:
        parser.error("--duration, --concurrency and --users-per-tenant must be positive")
    try:
        args.overrides = parse_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Phases:
    """Wall-clock seconds per setup and load phase, printed as they end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 1)
        self._last = now
        print(f"    {name}: {self.seconds[name]:.1f} s", file=sys.stderr)


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, load, tear down; returns the report written to ``--output``."""
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the server and drop the database.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _soak(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _soak(args: argparse.Namespace) -> dict[str, Any]:
    mix = parse_mix(args.mix)
    texts = {name: run.read_operation(name, args.operations_dir) for name, _ in mix}
    catalog_text = run.read_operation("ProductCatalog", args.operations_dir)
    started_at = dt.datetime.now(dt.UTC)
    machine_before = run.machine()
    phases = Phases()
    # A seed of its own: other runs' and tests' tenants and users (and buckets) differ.
    seed_value = 1_000_000 + os.getpid()
    jwt_secret = secrets.token_urlsafe(48)
    with (
        tempfile.TemporaryDirectory(prefix="tollgate-soak-") as tmp,
        soak_database(seed_value) as (owner_url, tenant_ids),
    ):
        phases.done("create, migrate and seed the database")
        from database.migrate import app_url as make_app_url

        app_url = make_app_url(owner_url)
        metrics_dir = Path(tmp) / "metrics"
        metrics_dir.mkdir()
        env = server_env(app_url, jwt_secret, metrics_dir, args.overrides)
        port = _free_port()
        command = [sys.executable, "-m", "server", "serve", "--workers", str(WORKERS)]
        server = run.Server(
            "soak", port, [*command, "--port", str(port)], env, Path(tmp) / "server.log"
        )
        try:
            print(f"==> starting {WORKERS} workers on :{port}, minting tokens", file=sys.stderr)
            run.start(server)
            minted = mint_tokens(env, owner_url, app_url, args.users_per_tenant)
            phases.done(f"mint {len(minted)} tokens")
            wait_ready(server)
            phases.done("server ready")
            pids = worker_pids(server.process.pid) if server.process else []
            products = {
                tenant: catalog(server.url, token, catalog_text)
                for tenant, role, token in minted
                if role == "staff"
            }
            callers = [
                Caller(tenant, role, token, products[tenant]) for tenant, role, token in minted
            ]
            preflight(server.url, callers, texts)
            phases.done(f"preflight ({len(callers)} callers x {len(texts)} operations)")
            cpu_before = {pid: run.cpu_seconds(pid) for pid in pids}
            plan = {
                "url": server.url,
                "duration": args.duration,
                "concurrency": args.concurrency,
                "mix": list(mix),
                "texts": texts,
                "seed": seed_value,
                "callers": [asdict(caller) for caller in callers],
                "rates": args.open_loop,
                "step_duration": args.step_duration,
            }
            if args.open_loop:
                print(f"==> open loop: {args.open_loop} req/s, {args.step_duration:.0f} s each",
                      file=sys.stderr)  # fmt: skip
            else:
                print(
                    f"==> load: {args.concurrency} loops for {args.duration:.0f} s",
                    file=sys.stderr,
                )
            summary = run_driver(plan, base_env())
            phases.done("load")
            workers_cpu = {}
            for pid in pids:
                with contextlib.suppress(OSError):
                    workers_cpu[str(pid)] = round(run.cpu_seconds(pid) - cpu_before[pid], 2)
            server_alive = server.process is not None and server.process.poll() is None
        finally:
            run.stop(server)
            problems = _log_problems(server.log_path)
            if args.server_log is not None and server.log_path.exists():
                shutil.copyfile(server.log_path, args.server_log)
            try:
                removed = delete_rate_limit_keys(REDIS_URL, tenant_ids)
                print(f"==> deleted {removed} rate-limit keys of this run", file=sys.stderr)
            except Exception as exc:  # cleanup must not hide the outcome of the run
                print(f"==> could not delete rate-limit keys: {exc!r}", file=sys.stderr)
    phases.done("stop the server, drop the database")
    return {
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": {
            **machine_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "server": " ".join(["python", *command[1:]]),
            "database": "PostgreSQL 127.0.0.1:5432, app role tollgate_app (row-level security)",
            "redis": REDIS_URL,
            "budgets": "defaults (user 25,000 @ 500/s, tenant 250,000 @ 5,000/s, "
            "write 2,500 @ 50/s)",
            "overrides": args.overrides,
            "mix": dict(mix),
            "variables": VARIABLES,
            "callers": [f"{caller.role}@{caller.tenant}" for caller in callers],
            "client": "bench.load.KeepAliveClient in its own process, keep-alive, 10 s timeout",
        },
        "phases_s": phases.seconds,
        "workers": {
            "pids": pids,
            "cpu_s_during_load": workers_cpu,
            "alive_after_load": server_alive,
            "server_log_problems": problems[:20],
        },
        "summary": summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak (or, with ``--drive``, only the load of a plan); exit 1 on any error."""
    args = parse_args(argv)
    if args.drive is not None:
        plan = orjson.loads(args.drive.read_bytes())
        summary = uvloop.run(drive(plan))
        args.out.write_bytes(orjson.dumps(summary))
        return 0
    report = soak(args)
    summary = report["summary"]
    print()
    print(render(summary))
    for outcome, texts in summary["error_samples"].items():
        for text in texts:
            print(f"  sample of {outcome}: {text}")
    open_loop = summary.get("open_loop")
    if open_loop:
        print(
            f"open loop: highest rate with p95 < {open_loop['p95_limit_ms']:.0f} ms and no error "
            f"but 429: {open_loop['sustainable_rate']} req/s"
        )
    if summary["user_errors"]:
        print("userErrors (business outcomes, not errors): " + json.dumps(summary["user_errors"]))
    workers = report["workers"]
    print(
        f"workers {workers['pids']}: CPU seconds during load {workers['cpu_s_during_load']}, "
        f"alive after load: {workers['alive_after_load']}, "
        f"server log problems: {len(workers['server_log_problems'])}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    failed = summary["non_429_errors"] or workers["server_log_problems"] or not summary["served"]
    if open_loop:  # the failing step is what ends the search, not a failure of the run
        failed = workers["server_log_problems"] or not summary["served"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
