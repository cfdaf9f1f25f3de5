"""The benchmark harness: this server, a docs-style Strawberry peer and the floor, in one run.

``.venv/bin/python -m bench.run [--duration 10] [--concurrency 16] [--ops OrdersPage,...]``

1. Makes (or reuses) a migrated, seeded SQLite file and mints a JWT for acme's staff user.
2. Counts SQL statements per request of every server in-process (an engine event on each
   app's engine, one request at a time) and checks that the floor sends the server's SQL.
3. Starts (a) ``python -m server serve``, (b) ``python -m bench.peer_strawberry`` and
   (c) ``python -m bench.floor``, each one uvicorn worker on 127.0.0.1, pinned to core 0.
4. Checks over HTTP that the three return the same ``data`` for every operation.
5. Loads each server and operation in turn with wrk (pinned to core 1) after a warm-up.
6. Prints a table and writes the same figures to ``bench/results/latest.json``.

Every server is stopped at the end, whatever happens. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import floor, peer_strawberry, profile
from bench.load import LoadResult, combine, run_load, wrk_available
from database.engine import reader_of
from database.reader import Reader
from server.app import create_app
from server.cli import mint_demo_token
from server.settings import ROOT, Settings

OPERATIONS_DIR = ROOT.parent / "shared" / "contract" / "operations"
DEFAULT_OPS = ("OrdersPage", "ProductCatalog", "ViewerProfile")
VARIABLES: dict[str, dict[str, Any]] = {
    "OrdersPage": {"first": 20},
    "ProductCatalog": {"first": 20},
    "ViewerProfile": {},
}
SERVERS = ("a", "b", "c")
LABELS = {"a": "tollgate", "b": "strawberry-docs", "c": "floor"}
# Capacities so large that no benchmark request is ever throttled (the limiter still runs).
BIG_CAPACITY = 1_000_000_000
BIG_RESTORE_RATE = 1_000_000_000.0
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


@dataclass
class Server:
    """One server process under test."""

    key: str
    port: int
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"


@dataclass
class OpResult:
    """Everything measured for one operation on one server."""

    statements: int | None = None
    selects: int | None = None
    load: LoadResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- setup


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _db_url(path: Path | str) -> str:
    """A SQLite file's URL, or the database URL given (``--database postgresql://...``)."""
    if "://" in str(path):
        return str(path)
    return f"sqlite+aiosqlite:///{path}"


def server_settings(db_path: Path | str) -> dict[str, str]:
    """The ``TOLLGATE_*`` environment of server (a) in the benchmark."""
    cap, rate = str(BIG_CAPACITY), str(BIG_RESTORE_RATE)
    return {
        "TOLLGATE_DATABASE_URL": _db_url(db_path),
        "TOLLGATE_RATELIMIT": "true",
        "TOLLGATE_USER_CAPACITY": cap,
        "TOLLGATE_USER_RESTORE_RATE": rate,
        "TOLLGATE_TENANT_CAPACITY": cap,
        "TOLLGATE_TENANT_RESTORE_RATE": rate,
        "TOLLGATE_WORKERS": "1",
        # Every benchmark measures work done; bench.variants' "cached" measures the cache.
        "TOLLGATE_RESPONSE_CACHE": "false",
    }


def ensure_database(db_path: Path | str) -> None:
    """Migrate ``db_path`` to head (the schema moves on) and seed it when it is empty."""
    if isinstance(db_path, Path):
        db_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TOLLGATE_DATABASE_URL": _db_url(db_path)}
    for command in ("migrate", "seed"):  # seed skips a database that already has data
        print(f"==> python -m server {command} ({db_path})", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "server", command],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )


def read_operation(name: str, operations_dir: Path) -> str:
    return (operations_dir / f"{name}.graphql").read_text(encoding="utf-8")


def request_body(name: str, text: str) -> bytes:
    return orjson.dumps(
        {"query": text, "variables": VARIABLES.get(name, {}), "operationName": name}
    )


def mint_token(db_path: Path | str) -> str:
    settings = Settings(database_url=_db_url(db_path))
    return asyncio.run(mint_demo_token(settings, "acme", "staff", ttl=6 * 3600))


# --------------------------------------------------------------------------- statements


class StatementLog:
    """Records every statement an engine sends (attached to its sync engine) and every
    statement of a raw-driver reader (``database.reader``; the read path's SQL)."""

    def __init__(self, engine: AsyncEngine | None = None, reader: Reader | None = None) -> None:
        self.statements: list[str] = []
        if engine is not None:
            event.listen(engine.sync_engine, "before_cursor_execute", self._record)
            reader = reader or reader_of(engine)
        if reader is not None:
            reader.listen(lambda statement: self._record(None, None, statement))

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    def take(self) -> list[str]:
        """The statements since the last call, without the registry's own bookkeeping.

        The persisted-query registry checks its version at most twice a second, in its own
        transaction, whenever a request happens to come due: not part of the operation's SQL.
        """
        taken, self.statements = self.statements, []
        kept: list[str] = []
        for statement in taken:
            if "persisted_documents" in statement:
                if kept and kept[-1] == "BEGIN":
                    kept.pop()
                continue
            kept.append(statement)
        return kept


def _selects(statements: Sequence[str]) -> int:
    return sum(1 for s in statements if s.upper().startswith("SELECT"))


async def count_statements(
    db_path: Path | str, token: str, ops: dict[str, str]
) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, Any]]]:
    """Per server and operation: the statements of one (warm) request, and its ``data``."""
    settings = Settings(
        database_url=_db_url(db_path),
        # The in-process server would log every operation; the harness's output is the table.
        log_level="WARNING",
        user_capacity=BIG_CAPACITY,
        user_restore_rate=BIG_RESTORE_RATE,
        tenant_capacity=BIG_CAPACITY,
        tenant_restore_rate=BIG_RESTORE_RATE,
        response_cache=False,  # the statements of work done, not of a cache hit
    )
    app_a = create_app(settings)
    app_b = peer_strawberry.create_app(str(db_path))
    app_c = floor.create_app(str(db_path))
    engines: dict[str, AsyncEngine] = {"a": app_a.state.engine, "b": app_b.engine}
    readers: dict[str, Reader] = {"c": app_c.state.reader}
    apps: dict[str, Any] = {"a": app_a, "b": app_b, "c": app_c}
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    statements: dict[str, dict[str, list[str]]] = {key: {} for key in SERVERS}
    data: dict[str, dict[str, Any]] = {key: {} for key in SERVERS}
    try:
        for key in SERVERS:
            log = StatementLog(engines.get(key), readers.get(key))
            transport = httpx.ASGITransport(app=apps[key])
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for name, text in ops.items():
                    for _ in range(2):  # the second request runs with every cache warm
                        log.take()
                        response = await client.post(
                            "/graphql", content=request_body(name, text), headers=headers
                        )
                    statements[key][name] = log.take()
                    data[key][name] = response.json().get("data")
    finally:
        for engine in engines.values():
            await engine.dispose()
        for reader in readers.values():
            await reader.close()
    return statements, data


# --------------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pin(command: list[str], cpu: int | None) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


def build_servers(db_path: Path | str, log_dir: Path, cpu: int | None) -> dict[str, Server]:
    py = sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    servers: dict[str, Server] = {}
    port = _free_port()
    servers["a"] = Server(
        "a",
        port,
        _pin([py, "-m", "server", "serve", "--port", str(port)], cpu),
        {**base_env, **server_settings(db_path)},
        log_dir / "a.log",
    )
    for key, module in (("b", "bench.peer_strawberry"), ("c", "bench.floor")):
        port = _free_port()
        servers[key] = Server(
            key,
            port,
            _pin([py, "-m", module, "--port", str(port), "--database", str(db_path)], cpu),
            base_env,
            log_dir / f"{key}.log",
        )
    return servers


def start(server: Server) -> None:
    log = server.log_path.open("wb")
    server.process = subprocess.Popen(
        server.command,
        cwd=ROOT,
        env=server.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()


def wait_ready(server: Server, deadline: float) -> None:
    """Wait until the server accepts TCP connections; raise if it died or took too long."""
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(
                f"server {server.key} exited with {server.process.returncode}:\n"
                + server.log_path.read_text(errors="replace")[-3000:]
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), timeout=1),
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"server {server.key} not ready after {STARTUP_TIMEOUT_S:.0f}s")


def stop(server: Server) -> None:
    """SIGTERM the server's process group, SIGKILL it if it does not exit in time."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def running(servers: dict[str, Server]) -> Iterator[None]:
    """Start every server, wait for all, and always stop them (also on SIGTERM/Ctrl-C)."""

    def _terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        for server in servers.values():
            start(server)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for server in servers.values():
            wait_ready(server, deadline)
        yield
    finally:
        for server in servers.values():
            stop(server)
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------- checks


def first_difference(left: Any, right: Any, path: str = "data") -> str | None:
    """The path of the first difference between two JSON values, or None when equal."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if key not in left or key not in right:
                return f"{path}.{key} (missing on one side)"
            found = first_difference(left[key], right[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return f"{path} (length {len(left)} != {len(right)})"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if left == right else f"{path} ({left!r} != {right!r})"


def compare_over_http(
    servers: dict[str, Server], token: str, ops: dict[str, str]
) -> dict[str, dict[str, str | None]]:
    """For each operation, POST to every server and compare ``data`` with (a)'s."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    outcome: dict[str, dict[str, str | None]] = {}
    with httpx.Client(timeout=30) as client:
        for name, text in ops.items():
            bodies: dict[str, Any] = {}
            for key, server in servers.items():
                response = client.post(
                    server.url, content=request_body(name, text), headers=headers
                )
                payload = response.json()
                if (
                    response.status_code != 200
                    or payload.get("errors")
                    or payload.get("data") is None
                ):
                    raise RuntimeError(
                        f"{key} {name}: HTTP {response.status_code} {str(payload)[:500]}"
                    )
                bodies[key] = payload["data"]
            outcome[name] = {
                key: first_difference(bodies["a"], bodies[key]) for key in servers if key != "a"
            }
    return outcome


def profile_under_load(
    server: Server,
    name: str,
    body: bytes,
    headers: dict[str, str],
    args: argparse.Namespace,
    cpu: int | None,
) -> dict[str, Any]:
    """Sample the server with py-spy during one more (unmeasured) round of load."""
    if server.process is None:
        return {}
    raw = args.output.parent / f"profile-{server.key}-{name}.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    sampler = profile.record(server.process.pid, args.duration, raw)
    try:
        run_load(
            server.url, body, headers, duration=args.duration + 1,
            concurrency=args.concurrency, cpu=cpu,
        )  # fmt: skip
    finally:
        try:
            sampler.wait(timeout=args.duration + 30)
        except subprocess.TimeoutExpired:
            sampler.kill()
            sampler.wait(timeout=STOP_TIMEOUT_S)
    if not raw.exists():
        return {"error": "py-spy wrote no samples (is ptrace allowed?)"}
    summary = profile.summarise(raw)
    print(f"    profile of {server.key} on {name} ({raw}):", file=sys.stderr)
    print(profile.render(summary), file=sys.stderr)
    return {"raw_stacks": str(raw), **summary}


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _ratio(x: float | None, y: float | None) -> float | None:
    return round(x / y, 2) if x and y else None


def _cpu(result: OpResult | None) -> float | None:
    return None if result is None else result.extra.get("server_cpu_ms_per_request")


def _rps(result: OpResult | None) -> float | None:
    return result.load.rps if result is not None and result.load is not None else None


def ratios(per_server: dict[str, OpResult]) -> dict[str, float | None]:
    """a/b and a/c by throughput (higher is better for a) and by server CPU per request."""
    a, b, c = (per_server.get(key) for key in SERVERS)
    return {
        "a/b": _ratio(_rps(a), _rps(b)),
        "a/c": _ratio(_rps(a), _rps(c)),
        # Inverted so that, like throughput, a figure above 1 means (a) is cheaper.
        "a/b_cpu": _ratio(_cpu(b), _cpu(a)),
        "a/c_cpu": _ratio(_cpu(c), _cpu(a)),
    }


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(results: dict[str, dict[str, OpResult]]) -> str:
    """The human-readable summary: one row per operation and server, then the ratios."""
    head = (
        f"{'operation':<15} {'server':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/req':>10} {'stmts':>5} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for name, per_server in results.items():
        for key in SERVERS:
            r = per_server.get(key)
            if r is None:
                continue
            load = r.load
            lines.append(
                f"{name:<15} {key + ' ' + LABELS[key]:<18} {_fmt(_rps(r), '.1f'):>8} "
                f"{_fmt(load.p50_ms if load else None, '.2f'):>8} {_fmt(load.p99_ms if load else None, '.2f'):>8} "
                f"{_fmt(_cpu(r), '.2f'):>10} {_fmt(r.statements, 'd'):>5} "
                f"{_fmt((load.errors + load.non_2xx) if load else None, 'd'):>6}"
            )
        rat = ratios(per_server)
        lines.append(
            f"{'':<15} a/b = {_fmt(rat['a/b'], '.2f')}x req/s ({_fmt(rat['a/b_cpu'], '.2f')}x by CPU), "
            f"a/c = {_fmt(rat['a/c'], '.2f')}x req/s ({_fmt(rat['a/c_cpu'], '.2f')}x by CPU)"
        )
    return "\n".join(lines)


def build_report(
    args: argparse.Namespace,
    results: dict[str, dict[str, OpResult]],
    checks: dict[str, Any],
    started: dt.datetime,
    machine_before: dict[str, Any],
) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for name, per_server in results.items():
        entry: dict[str, Any] = {"servers": {}}
        for key, r in per_server.items():
            entry["servers"][key] = {
                "label": LABELS[key],
                "statements_per_request": r.statements,
                "selects_per_request": r.selects,
                **({"load": r.load.as_dict()} if r.load else {}),
                **r.extra,
            }
        entry["ratios"] = ratios(per_server)
        operations[name] = entry
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {**machine_before, "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "load_tool": "wrk" if wrk_available() else "python",
            "pinned": not args.no_pin,
            "variables": {name: VARIABLES.get(name, {}) for name in results},
        },
        "servers": {
            "a": "this server: python -m server serve (uvicorn, 1 worker), SQLite, rate limiter on (huge buckets)",
            "b": "bench.peer_strawberry: strawberry.asgi.GraphQL, SQLAlchemy ORM AsyncSession, aiodataloader",
            "c": "bench.floor: Starlette endpoint, the server's SQL via SQLAlchemy Core, orjson, no GraphQL",
        },
        "checks": checks,
        "operations": operations,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of load per server and operation"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of unmeasured load first"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of load per operation, each loading every server in turn (figures "
        "are over all rounds)",
    )
    parser.add_argument(
        "--ops", default=",".join(DEFAULT_OPS), help="comma-separated operation names"
    )
    parser.add_argument(
        "--servers", default="a,b,c", help="which of a,b,c to load (all are checked)"
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=ROOT / "var" / "bench" / "tollgate.db",
        help="seeded SQLite file (created, migrated and seeded when missing)",
    )
    parser.add_argument(
        "--database",
        default=None,
        metavar="URL",
        help="run on this database instead of --db, e.g. postgresql://postgres@127.0.0.1/"
        "tollgate_bench (migrated and seeded when empty; the peer uses SQLAlchemy's asyncpg "
        "dialect, the server and the floor the raw read path)",
    )
    parser.add_argument("--operations-dir", type=Path, default=OPERATIONS_DIR)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to cores")
    parser.add_argument(
        "--profile",
        default="",
        metavar="SERVERS",
        help="after measuring, profile these servers (e.g. 'a' or 'a,b') with py-spy under "
        "another round of load; raw stacks go next to --output",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the whole benchmark; returns 1 when a peer's data differs from the server's."""
    args = parse_args(argv)
    # create_app() configures logging; the harness's own HTTP client need not log each call.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = dt.datetime.now(dt.UTC)
    machine_before = machine()
    ops = {name: read_operation(name, args.operations_dir) for name in args.ops.split(",") if name}
    unknown = set(args.servers.split(",")) - set(SERVERS)
    if unknown:
        raise SystemExit(f"unknown servers: {sorted(unknown)}")
    profiled = {key for key in args.profile.split(",") if key}
    if profiled - set(SERVERS):
        raise SystemExit(f"unknown servers to profile: {sorted(profiled - set(SERVERS))}")
    if profiled and profile.py_spy() is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and bool(shutil.which("taskset"))
    db_path: Path | str = args.database or args.db.resolve()
    ensure_database(db_path)
    token = mint_token(db_path)

    print("==> SQL statements per request (in-process, one request at a time)", file=sys.stderr)
    statements, in_process_data = asyncio.run(count_statements(db_path, token, ops))
    results: dict[str, dict[str, OpResult]] = {name: {} for name in ops}
    floor_same_sql: dict[str, bool] = {}
    for name in ops:
        for key in SERVERS:
            sql = statements[key][name]
            results[name][key] = OpResult(statements=len(sql), selects=_selects(sql))
        floor_same_sql[name] = statements["a"][name] == statements["c"][name]
        print(
            f"    {name}: "
            + ", ".join(f"{k}={len(statements[k][name])}" for k in SERVERS)
            + f"  (floor sends the server's SQL: {floor_same_sql[name]})",
            file=sys.stderr,
        )
    in_process_diff = {
        name: {
            k: first_difference(in_process_data["a"][name], in_process_data[k][name])
            for k in ("b", "c")
        }
        for name in ops
    }

    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as log_dir:
        servers = build_servers(db_path, Path(log_dir), 0 if pin else None)
        print(
            "==> starting " + ", ".join(f"{k}:{s.port}" for k, s in servers.items()),
            file=sys.stderr,
        )
        with running(servers):
            http_diff = compare_over_http(servers, token, ops)
            same = all(d is None for per in http_diff.values() for d in per.values())
            for name, per in http_diff.items():
                for key, diff in per.items():
                    status = "same data" if diff is None else f"DIFFERENT at {diff}"
                    print(f"    {name}: {key} vs a: {status}", file=sys.stderr)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for name, text in ops.items():
                body = request_body(name, text)
                keys = args.servers.split(",")
                rounds: dict[str, list[tuple[LoadResult, float]]] = {key: [] for key in keys}
                # Rounds interleave the servers (a b c a b c): a slow spell of the shared
                # machine then falls on every server instead of on one of them.
                for round_no in range(1, args.rounds + 1):
                    for key in keys:
                        server = servers[key]
                        load_for = functools.partial(
                            run_load,
                            server.url,
                            body,
                            headers,
                            concurrency=args.concurrency,
                            cpu=1 if pin else None,
                        )
                        if args.warmup > 0:
                            load_for(duration=args.warmup)
                        pid = server.process.pid if server.process else 0
                        cpu_before = cpu_seconds(pid)
                        load = load_for(duration=args.duration)
                        cpu_used = cpu_seconds(pid) - cpu_before
                        rounds[key].append((load, cpu_used))
                        cpu_ms = cpu_used / load.requests * 1000 if load.requests else float("nan")
                        print(
                            f"    {name} {key} (round {round_no}): {load.rps:.1f} req/s, "
                            f"p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, server CPU "
                            f"{cpu_ms:.2f} ms/req, errors {load.errors + load.non_2xx}",
                            file=sys.stderr,
                        )
                for key in keys:
                    result = results[name][key]
                    result.load = combine([load for load, _ in rounds[key]])
                    requests = result.load.requests
                    if requests:
                        cpu_total = sum(cpu for _, cpu in rounds[key])
                        result.extra["server_cpu_ms_per_request"] = round(
                            cpu_total / requests * 1000, 3
                        )
                    result.extra["rounds"] = [
                        {
                            "rps": load.rps,
                            "server_cpu_ms_per_request": round(cpu / load.requests * 1000, 3)
                            if load.requests
                            else None,
                        }
                        for load, cpu in rounds[key]
                    ]
                    if key in profiled:
                        result.extra["profile"] = profile_under_load(
                            servers[key], name, body, headers, args, 1 if pin else None
                        )

    checks = {
        "same_data_over_http": http_diff,
        "same_data_in_process": in_process_diff,
        "floor_sends_server_sql": floor_same_sql,
        "statements": statements,
    }
    report = build_report(args, results, checks, started, machine_before)
    print()
    print(render_table(results))
    print(
        f"\nmachine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"load average {machine_before['load_average']} -> {report['machine']['load_average_after']}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
