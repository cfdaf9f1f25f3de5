"""Several uvicorn workers, each accepting on a listening socket of its own (SO_REUSEPORT).

uvicorn's supervisor binds one socket and every worker accepts from it. Each new connection
wakes every idle worker and the first to call ``accept`` takes it, which is nearly always the
same one: 32 keep-alive connections opened one after the other on ``serve --workers 2``
landed 31/1, 28/4 and 27/5, and under load one worker ran its core flat while the other
idled (``tests/live/test_workers.py``). Behind a load balancer's pool of keep-alive
connections that is half the machine lost.

Here the supervisor's socket is bound with SO_REUSEPORT and never listens: it holds the
address (a second server on the port fails at once) and receives no connection. Each worker
binds its own SO_REUSEPORT socket to the same address when it starts, and the kernel spreads
new connections over the listening sockets by a hash of their addresses, as nginx's
``reuseport`` does. A worker that exits closes its socket and leaves the group; its
replacement joins with a new one. Where the platform has no SO_REUSEPORT, the shared socket
of uvicorn is used as before.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors import Multiprocess

logger = logging.getLogger("uvicorn.error")


def _bound(family: int, host: str, port: int, kind: type[socket.socket]) -> socket.socket:
    sock = kind(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def worker_socket(family: int, host: str, port: int) -> socket.socket:
    """The listening socket of one worker (made in the worker, as its arguments are unpickled)."""
    return _bound(family, host, port, socket.socket)


class AddressHolder(socket.socket):
    """The supervisor's socket: bound, never listening; pickled, it becomes a new
    :func:`worker_socket` on the same address in the process that unpickles it."""

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]
        return (worker_socket, (self.family, host, port))


def serve_workers(config: Config) -> None:
    """Run ``config.workers`` worker processes under uvicorn's supervisor, each on its own
    listening socket where the platform allows it."""
    if config.uds is not None or config.fd is not None or not hasattr(socket, "SO_REUSEPORT"):
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    ipv6 = ":" in config.host
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    try:
        holder = _bound(family, config.host, config.port, AddressHolder)
    except OSError as exc:
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)
    address = "%s://[%s]:%d" if ipv6 else "%s://%s:%d"
    logger.info(
        f"Uvicorn running on {address} (Press CTRL+C to quit; a listening socket per worker)",
        "https" if config.is_ssl else "http",
        config.host,
        holder.getsockname()[1],
    )
    try:
        Multiprocess(config, sockets=[holder]).run()
    finally:
        holder.close()
