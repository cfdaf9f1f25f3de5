"""ViewerProfile on the full default stack vs a bare Starlette endpoint, 2 workers each.

``python -m bench.ratio [--duration 10] [--rounds 2] [--concurrency 32] [--database URL]``

Starts ``python -m server serve`` with two workers (rate limiter on with huge buckets, the
default stack otherwise) and ``bench.bare`` with two workers, then loads them in interleaved
rounds with the same client (wrk when installed) and prints each one's requests/s and the
ratio. The issue's target: the server at least a tenth of the bare endpoint. Both servers
are stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.load import LoadResult, combine, run_load
from bench.run import (
    OPERATIONS_DIR,
    ROOT,
    Server,
    _free_port,
    ensure_database,
    mint_token,
    read_operation,
    request_body,
    running,
    server_settings,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ratio")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--operation", default="ViewerProfile")
    parser.add_argument("--db", type=Path, default=ROOT / "var" / "bench" / "tollgate.db")
    parser.add_argument("--database", default=None, metavar="URL")
    args = parser.parse_args(argv)
    database: Path | str = args.database or args.db.resolve()
    ensure_database(database)
    token = mint_token(database)
    body = request_body(args.operation, read_operation(args.operation, OPERATIONS_DIR))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="tollgate-ratio-") as logs:
        port_a, port_bare = _free_port(), _free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        env = {**base, **server_settings(database), "TOLLGATE_WORKERS": "2"}
        servers = {
            "server": Server(
                "server", port_a, [py, "-m", "server", "serve", "--port", str(port_a)], env,
                Path(logs) / "server.log",
            ),
            "bare": Server(
                "bare", port_bare, [py, "-m", "bench.bare", "--port", str(port_bare),
                "--workers", "2"], base, Path(logs) / "bare.log",
            ),
        }  # fmt: skip
        with running(servers):
            results: dict[str, list[LoadResult]] = {key: [] for key in servers}
            for _ in range(args.rounds):
                for key, server in servers.items():
                    run_load(server.url, body, headers, duration=1, concurrency=args.concurrency)
                    load = run_load(
                        server.url, body, headers, duration=args.duration,
                        concurrency=args.concurrency,
                    )  # fmt: skip
                    results[key].append(load)
                    print(f"    {key}: {load.rps:.1f} req/s, p99 {load.p99_ms:.1f} ms, "
                          f"errors {load.errors + load.non_2xx}", file=sys.stderr)  # fmt: skip
    combined = {key: combine(loads) for key, loads in results.items()}
    ratio = combined["server"].rps / combined["bare"].rps if combined["bare"].rps else 0.0
    print(
        f"{args.operation} (2 workers, full stack): {combined['server'].rps:.1f} req/s; "
        f"bare Starlette (2 workers): {combined['bare'].rps:.1f} req/s; ratio {ratio:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
