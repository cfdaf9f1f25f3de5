"""Load generators: ``wrk`` with a Lua script, or an asyncio keep-alive client as a fallback.

Both send the same POST (JSON body, bearer token) over ``concurrency`` keep-alive
connections for ``duration`` seconds and report requests per second and latency percentiles.
Either runs in its own process, pinned to its own core when ``cpu`` is given, so the load
generator does not steal the server's core.

The fallback runs as ``python -m bench.load --url URL --body-file F --header 'K: V' ...``
and prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

_RESULT_PREFIX = "BENCH_RESULT "

# wrk calls done() once at the end; latency is in microseconds.
# A body holding VARY is sent with it replaced by a request counter (fixed width, so the
# length does not change): every request then carries a document the server has not seen.
# Each load run counts from its own block of VARY_BLOCK values (``vary_start``), so a
# measured run does not resend what its warm-up, an earlier round or another connection
# already sent (the server caches documents by text).
VARY = "@@VARY@@"
VARY_BLOCK = 10**6
_vary_blocks = itertools.count(1)


def vary_start() -> int:
    """The first counter value of a new load run: a block no earlier run of this process used."""
    return (next(_vary_blocks) * VARY_BLOCK) % 10**8


def vary(body: bytes, counter: int) -> bytes:
    """``body`` with its VARY marker (if any) replaced by ``counter`` (8 digits)."""
    return body.replace(VARY.encode(), b"%08d" % (counter % 10**8))


_LUA_TEMPLATE = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
{vary}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{prefix}{{"requests":%d,"duration_s":%.6f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,'
    .. '"mean_ms":%.3f,"max_ms":%.3f,"errors":%d,"non_2xx":%d}}\\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.mean / 1e3, latency.max / 1e3,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(slots=True)
class LoadResult:
    """What one load run measured."""

    tool: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int
    non_2xx: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def combine(loads: Sequence[LoadResult]) -> LoadResult:
    """Several runs as one: requests and time summed, latencies weighted by requests."""
    if len(loads) == 1:
        return loads[0]
    requests = sum(load.requests for load in loads)
    duration = sum(load.duration_s for load in loads)

    def weighted(attribute: str) -> float:
        if not requests:
            return 0.0
        total = sum(getattr(load, attribute) * load.requests for load in loads)
        return round(total / requests, 3)

    return LoadResult(
        tool=loads[0].tool,
        requests=requests,
        duration_s=round(duration, 6),
        rps=round(requests / duration, 1) if duration else 0.0,
        p50_ms=weighted("p50_ms"),
        p90_ms=weighted("p90_ms"),
        p99_ms=weighted("p99_ms"),
        mean_ms=weighted("mean_ms"),
        max_ms=max(load.max_ms for load in loads),
        errors=sum(load.errors for load in loads),
        non_2xx=sum(load.non_2xx for load in loads),
    )


def wrk_available() -> bool:
    """Whether the ``wrk`` binary is on PATH."""
    return shutil.which("wrk") is not None


def _pinned(command: list[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def _parse(output: str, tool: str) -> LoadResult:
    for line in output.splitlines():
        if line.startswith(_RESULT_PREFIX):
            raw = json.loads(line[len(_RESULT_PREFIX) :])
            duration = float(raw["duration_s"]) or 1e-9
            return LoadResult(
                tool=tool,
                requests=int(raw["requests"]),
                duration_s=round(duration, 3),
                rps=round(int(raw["requests"]) / duration, 1),
                p50_ms=float(raw["p50_ms"]),
                p90_ms=float(raw["p90_ms"]),
                p99_ms=float(raw["p99_ms"]),
                mean_ms=float(raw["mean_ms"]),
                max_ms=float(raw["max_ms"]),
                errors=int(raw["errors"]),
                non_2xx=int(raw["non_2xx"]),
            )
    raise RuntimeError(f"{tool} printed no result:\n{output[-2000:]}")


def lua_script(body: bytes, headers: Mapping[str, str]) -> str:
    """The wrk script that POSTs ``body`` with ``headers`` and prints a JSON result line."""
    text = body.decode("utf-8")
    if "]==]" in text:
        raise ValueError("body contains the Lua long-string terminator ]==]")
    lines = [
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()
    ]
    vary = ""
    if VARY in text:
        vary = (
            f"local sent = {vary_start()}\n"
            "request = function()\n"
            "  sent = sent + 1\n"
            f'  local body = wrk.body:gsub("{VARY}", string.format("%08d", sent % 100000000))\n'
            "  return wrk.format(nil, nil, nil, body)\n"
            "end"
        )
    return _LUA_TEMPLATE.format(
        body=text, headers="\n".join(lines), vary=vary, prefix=_RESULT_PREFIX
    )


def run_wrk(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    duration: float,
    concurrency: int,
    cpu: int | None = None,
    threads: int = 1,
) -> LoadResult:
    """Run wrk against ``url`` for ``duration`` seconds with ``concurrency`` connections."""
    with tempfile.TemporaryDirectory(prefix="tollgate-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(lua_script(body, headers), encoding="utf-8")
        command = _pinned(
            [
                "wrk",
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            cpu,
        )
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return _parse(done.stdout, "wrk")


def run_python(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    duration: float,
    concurrency: int,
    cpu: int | None = None,
) -> LoadResult:
    """Run the asyncio load generator in its own process (when wrk is missing)."""
    with tempfile.TemporaryDirectory(prefix="tollgate-load-") as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        command = [
            sys.executable,
            "-m",
            "bench.load",
            "--url",
            url,
            "--body-file",
            str(body_file),
            "--duration",
            str(duration),
            "--concurrency",
            str(concurrency),
            "--vary-start",
            str(vary_start()),
        ]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        done = subprocess.run(
            _pinned(command, cpu),
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-2000:]}")
    return _parse(done.stdout, "python")


def run_load(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    duration: float,
    concurrency: int,
    cpu: int | None = None,
) -> LoadResult:
    """wrk when installed, else the asyncio fallback."""
    runner = run_wrk if wrk_available() else run_python
    return runner(url, body, headers, duration=duration, concurrency=concurrency, cpu=cpu)


# --------------------------------------------------------------------------- asyncio fallback

_TIMEOUT_S = 10.0
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CONNECTION_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


async def _worker(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    latencies: list[float],
    failures: list[int],
    sent: int = 0,
) -> None:
    """Send ``request`` until ``deadline``; a VARY marker is replaced by ``sent``, counting up."""
    reader, writer = await asyncio.open_connection(host, port)
    varies = VARY.encode() in request
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            sent += 1
            writer.write(vary(request, sent) if varies else request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TIMEOUT_S)
            match = _CONTENT_LENGTH.search(head)
            if match is None:  # the servers under test always send Content-Length
                raise RuntimeError("response without Content-Length")
            await asyncio.wait_for(reader.readexactly(int(match.group(1))), _TIMEOUT_S)
            latencies.append(time.perf_counter() - started)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                failures.append(1)
    finally:
        writer.close()


async def _generate(
    url: str,
    body: bytes,
    headers: Sequence[str],
    duration: float,
    concurrency: int,
    vary_from: int,
) -> str:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    latencies: list[float] = []
    failures: list[int] = []
    share = VARY_BLOCK // max(1, concurrency)
    started = time.perf_counter()
    deadline = started + duration
    outcomes = await asyncio.gather(
        *(
            # each connection counts in its own share of the run's block
            _worker(host, port, request, deadline, latencies, failures, vary_from + i * share)
            for i in range(concurrency)
        ),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    errors = sum(1 for outcome in outcomes if isinstance(outcome, BaseException))
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return _RESULT_PREFIX + json.dumps(
        {
            "requests": len(latencies),
            "duration_s": elapsed,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "mean_ms": sum(ordered) / len(ordered) * 1000,
            "max_ms": ordered[-1] * 1000,
            "errors": errors,
            "non_2xx": len(failures),
        }
    )


class ClientError(Exception):
    """A request that got no complete response (refused, reset, closed, timed out)."""


class _Connection:
    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, False


class KeepAliveClient:
    """POSTs over at most ``connections`` HTTP/1.1 keep-alive connections, one request at a
    time on each: a few tens of microseconds of client CPU per request where httpx takes a
    millisecond, so on a small machine the client does not become the bottleneck it measures.

    Responses must carry Content-Length (every server here does). A request that finds its
    reused connection closed by the server (keep-alive timeout) before any byte of the answer
    is sent again once on a new connection, as HTTP clients do.
    """

    def __init__(self, url: str, connections: int, timeout_s: float = _TIMEOUT_S) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.timeout_s = timeout_s
        # First in, first out: requests go round the connections, hence round the workers
        # that accepted them, as behind a load balancer.
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)  # a slot: connected on first use
        self._open: set[_Connection] = set()

    async def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """(status, body) of one POST to the client's URL."""
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n"
        ).encode() + body
        connection = await self._idle.get()
        try:
            for attempt in (0, 1):
                if connection is None or connection.writer.is_closing():
                    connection = await self._connect()
                reused = connection.used
                try:
                    status, answer, keep = await asyncio.wait_for(
                        self._exchange(connection, request), self.timeout_s
                    )
                except TimeoutError as exc:  # an OSError too: caught first
                    self._drop(connection)
                    connection = None
                    raise ClientError("TimeoutError") from exc
                except (OSError, asyncio.IncompleteReadError) as exc:
                    self._drop(connection)
                    connection = None
                    partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                    if attempt == 0 and reused and not partial:
                        continue  # closed while idle: send again on a new connection
                    raise ClientError(type(exc).__name__) from exc
                except (ClientError, asyncio.LimitOverrunError) as exc:
                    self._drop(connection)
                    connection = None
                    raise ClientError(str(exc) or type(exc).__name__) from exc
                if not keep:
                    self._drop(connection)
                    connection = None
                return status, answer
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._idle.put_nowait(connection)

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise ClientError(type(exc).__name__) from exc
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    async def _exchange(self, connection: _Connection, request: bytes) -> tuple[int, bytes, bool]:
        connection.writer.write(request)
        head = await connection.reader.readuntil(b"\r\n\r\n")
        connection.used = True
        match = _CONTENT_LENGTH.search(head)
        if match is None or not head.startswith(b"HTTP/1."):
            raise ClientError("response without Content-Length")
        answer = await connection.reader.readexactly(int(match.group(1)))
        keep = _CONNECTION_CLOSE.search(head) is None
        return int(head[9:12]), answer, keep

    def _drop(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.writer.close()

    async def aclose(self) -> None:
        for connection in list(self._open):
            self._drop(connection)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the asyncio load generator's own process."""
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--vary-start", type=int, default=VARY_BLOCK)
    args = parser.parse_args(argv)
    body = Path(args.body_file).read_bytes()
    print(
        asyncio.run(
            _generate(args.url, body, args.header, args.duration, args.concurrency, args.vary_start)
        )
    )


if __name__ == "__main__":
    main()
