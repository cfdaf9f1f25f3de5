"""A real server process for the live tests (uvicorn on 127.0.0.1, a free port)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 (a free port) in a thread; yields its base URL and
    stops the server when the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Server:
    """A real `python -m server serve` process on its own port, stopped by `stop()`.

    Only what the test configures reaches it: no ``TOLLGATE_*`` variable leaks in from the
    environment. ``tls`` (an object with ``cert``, ``key`` and ``client_context()``) serves
    HTTPS; ``args`` are extra ``serve`` arguments.
    """

    def __init__(
        self,
        env: dict[str, str],
        tmp: Path,
        args: tuple[str, ...] = (),
        tls: Any = None,
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify: ssl.SSLContext | bool = tls.client_context() if tls else True
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        self.env = {
            **inherited,
            **env,
            "TOLLGATE_HOST": "127.0.0.1",
            "TOLLGATE_PORT": str(self.port),
            "TOLLGATE_LOG_LEVEL": "WARNING",
        }
        self.log_path = tmp / f"server-{self.port}.log"
        self.log = self.log_path.open("w")
        command = [PY, "-m", "server", "serve", "--port", str(self.port)]
        if tls:
            command += ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]
        self.process = subprocess.Popen(
            [*command, *args], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-2000:]}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=10)

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [PY, "-m", "server", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


@contextlib.contextmanager
def two_workers_on_postgres(tmp: Path, env: dict[str, str]) -> Iterator[Server]:
    """``serve --workers 2`` on a fresh seeded PostgreSQL database and the shared Redis (the
    configuration users deploy), with ``env`` on top; stopped and dropped afterwards."""
    from tests.server.conftest import seeded_database
    from tests.services import REDIS_URL, require_redis

    require_redis()
    database = seeded_database("postgres", tmp)
    database_url = next(database)
    server = Server(
        {
            "TOLLGATE_DATABASE_URL": database_url,
            "TOLLGATE_REDIS_URL": REDIS_URL,
            "TOLLGATE_WORKERS": "2",
            "TOLLGATE_REDIS_TIMEOUT_MS": "500",
            **env,
        },
        tmp,
        args=("--workers", "2"),
    )
    try:
        yield server
    finally:
        server.stop()
        database.close()
