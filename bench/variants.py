"""What this server's own features cost: the same server in several configurations, one run.

``.venv/bin/python -m bench.variants [--duration 8] [--warmup 2] [--concurrency 16] [--rounds 2]``

1. Migrates/seeds the bench SQLite file (as ``bench.run`` does), registers OrdersPage as a
   persisted query (``python -m server pq push``) and mints acme's staff token.
2. Starts one ``python -m server serve`` (1 worker, pinned to core 0) per configuration:
   ``default`` (every guard, the in-memory limiter, access log and metrics on, tracing off),
   ``unguarded`` (no limiter, every limit mode ``off``), ``ratelimit_none``,
   ``ratelimit_redis``, ``observability_off`` and ``cached`` (the response cache on; every
   other configuration runs without it). Access logs go to files. ``uncached`` and ``cached``
   send ProductCatalog instead of OrdersPage: a miss's work against a hit's (issue 14).
3. Checks every server answers OrdersPage with the same ``data`` (and the persisted form too)
   and that the limiter runs exactly where it should (the ``RateLimit`` response header).
4. Loads each measurement with wrk (pinned to core 1), round after round (A B A B), so slow
   spells on the shared machine spread over every variant; reads the server's CPU time.
5. Sends sequential requests with a plain client, round-robin over every measurement: the
   first decile and median of each one's wall time (steadier than load on a busy machine:
   a slow spell hits every measurement alike, and noise only ever adds time) and, from ``Server-Timing``, the shares of the request the
   registry look-up (``pq``), pricing (``cost``) and rate limiting (``ratelimit``) take.
6. Prints the table and ratios and writes ``bench/results/variants.json``.

See the "Variants" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.load import VARY, LoadResult, run_load, vary, vary_start, wrk_available
from bench.run import (
    OPERATIONS_DIR,
    Server,
    _free_port,
    _pin,
    cpu_seconds,
    ensure_database,
    first_difference,
    machine,
    mint_token,
    read_operation,
    running,
    server_settings,
)
from persisted_queries.ids import sha256_hex
from server.settings import ROOT

OPERATION = "OrdersPage"
VARIABLES: dict[str, Any] = {"first": 20}
REDIS_URL = "redis://127.0.0.1:6379/0"
# Every operation limit the unguarded configuration switches off (see guards/limits.py).
GUARDED_LIMITS = ("max_cost", "max_nodes", "max_depth", "max_aliases", "max_tokens")

# Server configuration -> TOLLGATE_* overrides on top of bench.run.server_settings (which
# turns the limiter on with buckets of 10^9 points: nothing is ever throttled).
CONFIGS: dict[str, dict[str, str]] = {
    "default": {},
    "unguarded": {
        "TOLLGATE_RATELIMIT": "false",
        "TOLLGATE_LIMITS": json.dumps({f"{name}_mode": "off" for name in GUARDED_LIMITS}),
    },
    "ratelimit_none": {"TOLLGATE_RATELIMIT": "false"},
    "ratelimit_redis": {"TOLLGATE_REDIS_URL": REDIS_URL},
    "observability_off": {"TOLLGATE_ACCESS_LOG": "false", "TOLLGATE_METRICS": "false"},
    # The default configuration on a copy of the database in which OrdersPage is registered
    # (registering it in the bench file itself would turn every other benchmark's ad-hoc text
    # into a registered document's).
    "registered": {},
    # The default configuration again, for text the server has never seen: its document
    # cache fills with a thousand parsed documents, which must not weigh on "default".
    "unseen": {},
    # The response cache on (issue #14): ProductCatalog repeated is a hit after the first.
    "cached": {"TOLLGATE_RESPONSE_CACHE": "true"},
    # The same in Redis (shared by workers; the limiter moves to Redis too), under a prefix of
    # this run's own.
    "cached_redis": {
        "TOLLGATE_RESPONSE_CACHE": "true",
        "TOLLGATE_REDIS_URL": REDIS_URL,
        "TOLLGATE_RESPONSE_CACHE_PREFIX": f"tollgate:rc:bench:{os.getpid()}:",
    },
}
REGISTERED_CONFIGS = frozenset({"registered"})
# Configurations whose responses must (True) or must not (False) carry a RateLimit header.
LIMITER_ON = {
    "default": True,
    "unguarded": False,
    "ratelimit_none": False,
    "ratelimit_redis": True,
    "observability_off": True,
    "registered": True,
    "unseen": True,
    "cached": True,
    "cached_redis": True,
}


@dataclass(frozen=True)
class Measurement:
    """One thing loaded: a server configuration and how the operation is sent."""

    name: str
    config: str
    persisted: bool = False
    # Each request's text ends with a comment holding a request counter: a document the
    # server has never seen, so it is parsed, validated and priced (its cache always misses).
    unseen: bool = False
    operation: str = OPERATION


CATALOG = "ProductCatalog"
MEASUREMENTS = (
    Measurement("default", "default"),
    Measurement("unguarded", "unguarded"),
    Measurement("ratelimit_none", "ratelimit_none"),
    Measurement("ratelimit_redis", "ratelimit_redis"),
    Measurement("observability_off", "observability_off"),
    Measurement("persisted", "registered", persisted=True),
    Measurement("registered_text", "registered"),
    Measurement("text_unseen", "unseen", unseen=True),
    # Issue 14: the same ProductCatalog request without the response cache and with it.
    Measurement("uncached", "default", operation=CATALOG),
    Measurement("cached", "cached", operation=CATALOG),
    Measurement("cached_redis", "cached_redis", operation=CATALOG),
)


@dataclass(frozen=True)
class Comparison:
    """A ratio numerator/denominator of two measurements and the target it should reach."""

    name: str
    numerator: str
    denominator: str
    target: float | None  # None: reported for information only
    source: str


COMPARISONS = (
    Comparison("guarded/unguarded", "default", "unguarded", 0.90, "issue 3"),
    Comparison("memory/none", "default", "ratelimit_none", 0.97, "rate limiter"),
    Comparison("redis/none", "ratelimit_redis", "ratelimit_none", 0.90, "rate limiter"),
    Comparison("observability on/off", "default", "observability_off", 0.90, "observability"),
    # Issue 5's fast path against text that must be parsed, validated and priced. Text the
    # server has seen is served from the document cache (DESIGN.md step 6) like an id is:
    Comparison("persisted/new text", "persisted", "text_unseen", 1.30, "issue 5"),
    Comparison("persisted/repeated text", "persisted", "default", None, "information"),
    Comparison("persisted/registered text", "persisted", "registered_text", None, "information"),
    # A hit costs at most a fifth of a miss's server CPU: by_cpu (uncached/cached ms) >= 5.
    Comparison("cached/uncached", "cached", "uncached", 5.0, "issue 14 (by CPU)"),
    Comparison("cached redis/uncached", "cached_redis", "uncached", 5.0, "issue 14 (by CPU)"),
)

SHARE_TARGETS = {"cost": 0.02}  # issue 3: pricing under 2% of the request


# --------------------------------------------------------------------------- config and bodies


def server_env(db_path: Path, config: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The full environment of the server for ``config``: no inherited ``TOLLGATE_*``."""
    inherited = os.environ if base is None else base
    env = {k: v for k, v in inherited.items() if not k.startswith("TOLLGATE_")}
    return {**env, **server_settings(db_path), **CONFIGS[config]}


def text_body(text: str, operation: str = OPERATION) -> bytes:
    """The request that sends the operation as text."""
    return orjson.dumps({"query": text, "variables": VARIABLES, "operationName": operation})


def persisted_body(text: str) -> bytes:
    """The request that sends only the persisted document's id (the sha256 of its text)."""
    return orjson.dumps({"documentId": sha256_hex(text), "variables": VARIABLES})


def build_servers(
    db_path: Path, registered_db_path: Path, log_dir: Path, cpu: int | None
) -> dict[str, Server]:
    """One ``python -m server serve`` per configuration; stdout and stderr go to a log file."""
    servers: dict[str, Server] = {}
    for config in CONFIGS:
        port = _free_port()
        database = registered_db_path if config in REGISTERED_CONFIGS else db_path
        servers[config] = Server(
            config,
            port,
            _pin([sys.executable, "-m", "server", "serve", "--port", str(port)], cpu),
            server_env(database, config),
            log_dir / f"{config}.log",
        )
    return servers


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file (WAL included), with SQLite's backup API."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _pq_cli(db_path: Path, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env["TOLLGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{db_path}"
    done = subprocess.run(
        [sys.executable, "-m", "server", "pq", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pq {args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def push_persisted(db_path: Path, operation_file: Path, document_id: str) -> dict[str, Any]:
    """Register the operation in the database's default list; raise unless it is then active.

    ``pq push`` prints added/unchanged/refused only (a retired document it reactivates is in
    none of them), so ``pq list`` is what proves the id is active.
    """
    pushed = _pq_cli(db_path, "push", str(operation_file))
    listed = _pq_cli(db_path, "list")
    active = {op["id"] for op in listed.get("operations", [])}
    if pushed.get("refused") or document_id not in active:
        raise RuntimeError(f"pq push did not register {document_id}: {pushed}, active {active}")
    return {"push": pushed, "active": sorted(active)}


def redis_reachable(url: str = REDIS_URL) -> bool:
    """Whether something answers PING on the Redis URL's host and port."""
    host, port = "127.0.0.1", 6379
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    if ":" in rest:
        host, port = rest.rsplit(":", 1)[0], int(rest.rsplit(":", 1)[1])
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --------------------------------------------------------------------------- ratio math


def summarise(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean, min, max and spread ((max - min) / mean, in %) of the rounds' figures."""
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "min": None, "max": None, "spread_pct": None}
    mean = statistics.fmean(present)
    low, high = min(present), max(present)
    spread = round((high - low) / mean * 100, 1) if mean else None
    return {"mean": round(mean, 3), "min": low, "max": high, "spread_pct": spread}


def _ratio(x: float | None, y: float | None) -> float | None:
    return round(x / y, 3) if x and y else None


def _met(ratio: float | None, target: float | None) -> bool | None:
    return None if ratio is None or target is None else ratio >= target


def compare(
    comparison: Comparison,
    rps: Mapping[str, Sequence[float | None]],
    cpu: Mapping[str, Sequence[float | None]],
    sequential_ms: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """The ratio by throughput (mean over rounds, and round by round), by server CPU, and by
    the time of interleaved sequential requests (``sequential_ms``, the first decile).

    By CPU and by sequential time the ratio is inverted (the denominator's milliseconds over
    the numerator's) so that, like throughput, a figure below 1 means the numerator costs more.
    """
    num, den = comparison.numerator, comparison.denominator
    by_rps = _ratio(summarise(rps[num])["mean"], summarise(rps[den])["mean"])
    by_cpu = _ratio(summarise(cpu[den])["mean"], summarise(cpu[num])["mean"])
    seq = sequential_ms or {}
    by_sequential = _ratio(seq.get(den), seq.get(num))
    return {
        "numerator": num,
        "denominator": den,
        "target": comparison.target,
        "source": comparison.source,
        "by_rps": by_rps,
        "by_rps_per_round": [_ratio(a, b) for a, b in zip(rps[num], rps[den], strict=True)],
        "by_cpu": by_cpu,
        "by_cpu_per_round": [_ratio(b, a) for a, b in zip(cpu[num], cpu[den], strict=True)],
        "met_by_rps": _met(by_rps, comparison.target),
        "met_by_cpu": _met(by_cpu, comparison.target),
        "by_sequential": by_sequential,
        "met_by_sequential": _met(by_sequential, comparison.target),
    }


def parse_server_timing(value: str) -> dict[str, float]:
    """``'pq;dur=0.1, total;dur=3'`` -> ``{"pq": 0.1, "total": 3.0}`` (entries without dur: 0)."""
    out: dict[str, float] = {}
    for entry in value.split(","):
        parts = [p.strip() for p in entry.split(";")]
        if not parts[0]:
            continue
        duration = 0.0
        for param in parts[1:]:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "dur":
                duration = float(raw.strip().strip('"'))
        out[parts[0]] = out.get(parts[0], 0.0) + duration
    return out


def timing_shares(samples: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Mean milliseconds per entry and each entry's share of ``total`` (ratio of the means)."""
    if not samples:
        return {"responses": 0, "mean_ms": {}, "median_ms": {}, "share_of_total": {}}
    names = sorted({name for sample in samples for name in sample})
    means = {name: statistics.fmean(s.get(name, 0.0) for s in samples) for name in names}
    total = means.get("total", 0.0)
    shares = {
        name: (round(ms / total, 4) if total else None)
        for name, ms in means.items()
        if name != "total"
    }
    medians = {name: statistics.median(s.get(name, 0.0) for s in samples) for name in names}
    median_total = medians.get("total", 0.0)
    return {
        "responses": len(samples),
        "mean_ms": {name: round(ms, 3) for name, ms in means.items()},
        # Medians resist the odd slow request (a registry version check, a GC pause).
        "median_ms": {name: round(ms, 3) for name, ms in medians.items()},
        "share_of_total": shares,
        "median_share_of_median_total": {
            name: (round(ms / median_total, 4) if median_total else None)
            for name, ms in medians.items()
            if name != "total"
        },
    }


def share_checks(samples: Mapping[str, Any]) -> dict[str, dict[str, bool | None]]:
    """Per sample: whether each entry with a target (``cost`` < 2%) stays below it."""
    return {
        label: {
            name: (None if share is None else share < target)
            for name, target in SHARE_TARGETS.items()
            for share in [entry["share_of_total"].get(name)]
        }
        for label, entry in samples.items()
    }


# --------------------------------------------------------------------------- HTTP


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def check_servers(
    servers: Mapping[str, Server], token: str, bodies: Mapping[str, bytes]
) -> dict[str, Any]:
    """POST every measurement once: 200, no errors, the default's data, limiter as configured."""
    checks: dict[str, Any] = {}
    references: dict[str, Any] = {}  # per operation: the first measurement's data
    with httpx.Client(timeout=60) as client:
        for m in MEASUREMENTS:
            response = client.post(
                servers[m.config].url,
                content=vary(bodies[m.name], vary_start()),
                headers=_headers(token),
            )
            payload = response.json()
            if response.status_code != 200 or payload.get("errors") or not payload.get("data"):
                raise RuntimeError(f"{m.name}: HTTP {response.status_code} {str(payload)[:500]}")
            reference = references.setdefault(m.operation, payload["data"])
            difference = first_difference(reference, payload["data"])
            has_limit = "ratelimit" in response.headers
            if difference is not None:
                raise RuntimeError(f"{m.name}: data differs from default at {difference}")
            if has_limit != LIMITER_ON[m.config]:
                raise RuntimeError(
                    f"{m.name}: RateLimit header {'present' if has_limit else 'missing'}, "
                    f"expected the limiter {'on' if LIMITER_ON[m.config] else 'off'}"
                )
            checks[m.name] = {
                "same_data": True,
                "ratelimit_header": response.headers.get("ratelimit"),
                "server_timing": response.headers.get("server-timing"),
            }
    return checks


def interleaved_order(names: Sequence[str], count: int, burst: int = 1) -> list[str]:
    """``count`` visits per name: round-robin in bursts of ``burst`` consecutive requests,
    starting one name further on each cycle (no position bias)."""
    n, order = len(names), []
    for cycle in range(-(-count // burst)):
        for i in range(n):
            order += [names[(cycle + i) % n]] * min(burst, count - cycle * burst)
    return order


def sample_interleaved(
    targets: Mapping[str, tuple[str, bytes]], token: str, count: int, burst: int
) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """``count`` sequential requests per target, round-robin across targets in bursts.

    Returns per target (wall milliseconds seen by the client, parsed ``Server-Timing``) of
    each 200 response. One request at a time, alternating between servers, so a slow spell
    of the shared machine lands on every target alike. Bursts keep each server's caches
    as warm as steady traffic would (a server visited once per cycle sits idle between).
    """
    out: dict[str, list[tuple[float, dict[str, float]]]] = {name: [] for name in targets}
    first = vary_start()  # a block of counters no load run used
    with httpx.Client(timeout=60) as client:
        for sent, name in enumerate(interleaved_order(list(targets), count, burst)):
            url, body = targets[name]
            body = vary(body, first + sent)
            started = time.perf_counter()
            response = client.post(url, content=body, headers=_headers(token))
            wall_ms = (time.perf_counter() - started) * 1000
            value = response.headers.get("server-timing")
            if response.status_code == 200 and value:
                out[name].append((wall_ms, parse_server_timing(value)))
    return out


def sequential_summary(samples: Sequence[tuple[float, Mapping[str, float]]]) -> dict[str, Any]:
    """Median and mean wall time of sequential requests, plus the Server-Timing shares."""
    walls = sorted(wall for wall, _ in samples)
    quantiles = [round(q, 3) for q in statistics.quantiles(walls, n=10)] if len(walls) >= 2 else []
    return {
        "wall_ms_median": round(statistics.median(walls), 3) if walls else None,
        "wall_ms_mean": round(statistics.fmean(walls), 3) if walls else None,
        # Noise from other work only ever adds time: the first decile is the steadiest figure.
        "wall_ms_p10": quantiles[0] if quantiles else None,
        "wall_ms_deciles": quantiles,
        **timing_shares([timing for _, timing in samples]),
    }


def _limiter_failures(log_path: Path) -> int:
    """Lines in which the server said the limiter was unavailable (it then fails open)."""
    if not log_path.exists():
        return 0
    with log_path.open(errors="replace") as log:
        return sum(1 for line in log if "rate limiter unavailable" in line)


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(per_measurement: Mapping[str, Any], comparisons: Mapping[str, Any]) -> str:
    """Text table: the means and spreads per measurement, then the ratios and their targets."""
    head = (
        f"{'measurement':<18} {'req/s':>7} {'spread':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/req':>10} {'spread':>7} {'seq p10':>7} {'seq p50':>7} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for name, entry in per_measurement.items():
        rps, cpu = entry["rps"], entry["cpu_ms_per_request"]
        seq = entry.get("sequential") or {}
        lines.append(
            f"{name:<18} {_fmt(rps['mean'], '.1f'):>7} {_fmt(rps['spread_pct'], '.0f') + '%':>7} "
            f"{_fmt(entry['p50_ms']['mean'], '.0f'):>8} {_fmt(entry['p99_ms']['mean'], '.0f'):>8} "
            f"{_fmt(cpu['mean'], '.2f'):>10} {_fmt(cpu['spread_pct'], '.0f') + '%':>7} "
            f"{_fmt(seq.get('wall_ms_p10'), '.1f'):>7} {_fmt(seq.get('wall_ms_median'), '.1f'):>7} "
            f"{entry['errors']:>6}"
        )
    lines.append("")
    head = (
        f"{'ratio':<26} {'req/s':>6} {'rounds':>11} {'CPU':>6} {'rounds':>11} {'seq10':>6} "
        f"{'target':>7}  met by req/s, CPU, seq"
    )
    lines += [head, "-" * len(head)]
    met = {True: "yes", False: "NO", None: "-"}
    for name, c in comparisons.items():
        rounds_rps = "/".join(_fmt(r, ".2f") for r in c["by_rps_per_round"])
        rounds_cpu = "/".join(_fmt(r, ".2f") for r in c["by_cpu_per_round"])
        target = "-" if c["target"] is None else f">={c['target']:.2f}"
        lines.append(
            f"{name:<26} {_fmt(c['by_rps'], '.2f'):>6} {rounds_rps:>11} "
            f"{_fmt(c['by_cpu'], '.2f'):>6} {rounds_cpu:>11} {_fmt(c['by_sequential'], '.2f'):>6} "
            f"{target:>7}  {met[c['met_by_rps']]}, {met[c['met_by_cpu']]}, "
            f"{met[c['met_by_sequential']]}"
        )
    return "\n".join(lines)


def render_shares(per_measurement: Mapping[str, Any]) -> str:
    """Text lines: sequential wall time, Server-Timing total, and pq/cost/ratelimit shares."""
    lines = []
    for name, entry in per_measurement.items():
        seq = entry.get("sequential")
        if not seq:
            continue
        means, share = seq["mean_ms"], seq["share_of_total"]
        parts = [
            f"{phase} {_fmt(means.get(phase), '.2f')} ms "
            f"({_fmt((share.get(phase) or 0) * 100, '.2f')}%)"
            for phase in ("pq", "cost", "ratelimit")
        ]
        lines.append(
            f"{name:<18} n={seq['responses']:<4} total {_fmt(means.get('total'), '.2f')} ms; "
            + ", ".join(parts)
        )
    return "\n".join(lines)


def _round_entry(load: LoadResult, cpu_used: float) -> dict[str, Any]:
    cpu_ms = round(cpu_used / load.requests * 1000, 3) if load.requests else None
    return {"load": load.as_dict(), "cpu_ms_per_request": cpu_ms}


def aggregate(rounds: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """Per measurement: every round's figures and their mean/min/max/spread."""
    out: dict[str, Any] = {}
    for name, runs in rounds.items():
        out[name] = {
            "rps": summarise([r["load"]["rps"] for r in runs]),
            "p50_ms": summarise([r["load"]["p50_ms"] for r in runs]),
            "p99_ms": summarise([r["load"]["p99_ms"] for r in runs]),
            "cpu_ms_per_request": summarise([r["cpu_ms_per_request"] for r in runs]),
            "errors": sum(r["load"]["errors"] + r["load"]["non_2xx"] for r in runs),
            "rounds": list(runs),
        }
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.variants", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load")
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every measurement")
    parser.add_argument(
        "--samples",
        type=int,
        default=200,
        help="sequential requests per measurement, interleaved, for Server-Timing",
    )
    parser.add_argument(
        "--burst", type=int, default=5, help="consecutive sequential requests per server visit"
    )
    parser.add_argument(
        "--db", type=Path, default=ROOT / "var" / "bench" / "tollgate.db", help="seeded SQLite"
    )
    parser.add_argument("--operations-dir", type=Path, default=OPERATIONS_DIR)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "variants.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every variant; returns 1 when a check fails (nothing fails on a slow figure)."""
    args = parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = dt.datetime.now(dt.UTC)
    machine_before = machine()
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and bool(shutil.which("taskset"))
    if not redis_reachable():
        raise SystemExit(f"Redis is not reachable at {REDIS_URL}: the redis variant needs it")
    db_path = args.db.resolve()
    ensure_database(db_path)
    text = read_operation(OPERATION, args.operations_dir)
    texts = {m.operation: read_operation(m.operation, args.operations_dir) for m in MEASUREMENTS}
    token = mint_token(db_path)
    bodies = {
        m.name: persisted_body(texts[m.operation])
        if m.persisted
        else text_body(
            f"{texts[m.operation]}\n# {VARY}" if m.unseen else texts[m.operation], m.operation
        )
        for m in MEASUREMENTS
    }
    headers = _headers(token)
    cpu_load = 1 if pin else None
    per_run = args.warmup + args.duration + 1
    print(
        f"==> {len(MEASUREMENTS)} measurements x {args.rounds} rounds, about "
        f"{len(MEASUREMENTS) * args.rounds * per_run / 60:.1f} min of load",
        file=sys.stderr,
    )
    rounds: dict[str, list[dict[str, Any]]] = {m.name: [] for m in MEASUREMENTS}
    samples: dict[str, Any] = {}
    limiter_failures: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="tollgate-variants-") as log_dir:
        registered_db = Path(log_dir) / "registered.db"
        copy_database(db_path, registered_db)
        print(f"==> python -m server pq push {OPERATION}.graphql (copy of the DB)", file=sys.stderr)
        pushed = push_persisted(
            registered_db, args.operations_dir / f"{OPERATION}.graphql", sha256_hex(text)
        )
        servers = build_servers(db_path, registered_db, Path(log_dir), 0 if pin else None)
        print(
            "==> starting " + ", ".join(f"{k}:{s.port}" for k, s in servers.items()),
            file=sys.stderr,
        )
        with running(servers):
            checks = check_servers(servers, token, bodies)
            print("    every configuration returns the same data; limiter as configured",
                  file=sys.stderr)  # fmt: skip
            for round_no in range(1, args.rounds + 1):
                for m in MEASUREMENTS:
                    server = servers[m.config]
                    if args.warmup > 0:
                        run_load(
                            server.url, bodies[m.name], headers, duration=args.warmup,
                            concurrency=args.concurrency, cpu=cpu_load,
                        )  # fmt: skip
                    pid = server.process.pid if server.process else 0
                    before = cpu_seconds(pid)
                    load = run_load(
                        server.url, bodies[m.name], headers, duration=args.duration,
                        concurrency=args.concurrency, cpu=cpu_load,
                    )  # fmt: skip
                    entry = _round_entry(load, cpu_seconds(pid) - before)
                    rounds[m.name].append(entry)
                    print(
                        f"    round {round_no} {m.name:<18} {load.rps:7.1f} req/s  "
                        f"p50 {load.p50_ms:7.1f} ms  p99 {load.p99_ms:7.1f} ms  "
                        f"CPU {_fmt(entry['cpu_ms_per_request'], '.2f')} ms/req  "
                        f"errors {load.errors + load.non_2xx}",
                        file=sys.stderr,
                    )
            print(
                f"==> {args.samples} sequential requests per measurement, interleaved in "
                f"bursts of {args.burst} (wall time and Server-Timing)",
                file=sys.stderr,
            )
            targets = {m.name: (servers[m.config].url, bodies[m.name]) for m in MEASUREMENTS}
            sampled = sample_interleaved(targets, token, args.samples, args.burst)
            for name, taken in sampled.items():
                samples[name] = sequential_summary(taken)
            for config, server in servers.items():
                limiter_failures[config] = _limiter_failures(server.log_path)

    per_measurement = aggregate(rounds)
    for name, summary in samples.items():
        per_measurement[name]["sequential"] = summary
    sequential_ms = {name: summary["wall_ms_p10"] for name, summary in samples.items()}
    rps = {name: [r["load"]["rps"] for r in runs] for name, runs in rounds.items()}
    cpu = {name: [r["cpu_ms_per_request"] for r in runs] for name, runs in rounds.items()}
    comparisons = {c.name: compare(c, rps, cpu, sequential_ms) for c in COMPARISONS}
    errors = sum(entry["errors"] for entry in per_measurement.values())
    report: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {
            **machine_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "operation": OPERATION,
            "variables": VARIABLES,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "sequential_samples": args.samples,
            "sequential_burst": args.burst,
            "order": [m.name for m in MEASUREMENTS],
            "load_tool": "wrk" if wrk_available() else "python",
            "pinned": pin,
            "server_base_env": server_settings(db_path),
            "server_overrides": CONFIGS,
            "on_a_copy_of_the_db_with_OrdersPage_registered": sorted(REGISTERED_CONFIGS),
            "measurements": {
                m.name: {
                    "config": m.config,
                    "operation": m.operation,
                    "sent_as": "documentId" if m.persisted else "text",
                }
                for m in MEASUREMENTS
            },
        },
        "checks": {
            "responses": checks,
            "pq_push": pushed,
            "limiter_unavailable_log_lines": limiter_failures,
            "load_errors": errors,
        },
        "measurements": per_measurement,
        "comparisons": comparisons,
        "server_timing": {
            "share_targets_below": SHARE_TARGETS,
            "share_targets_met": share_checks(samples),
        },
    }
    print()
    print(render_table(per_measurement, comparisons))
    print()
    print("Sequential requests, interleaved: Server-Timing means (share of total):")
    print(render_shares(per_measurement))
    print(
        f"\nmachine: {report['machine']['cpu']}, {report['machine']['cores']} cores, load average "
        f"{machine_before['load_average']} -> {report['machine']['load_average_after']}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    if any(limiter_failures.values()):
        print(f"WARNING: the limiter failed open (timeouts): {limiter_failures}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
