"""Reachability of the real services the tests use: skip loudly, or fail under CI=true."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_ADMIN_URL = os.environ.get(
    "TOLLGATE_TEST_PG_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TOLLGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires it: {reason}", pytrace=False)
    pytest.skip(f"NOT TESTED: {reason}")


def require(name: str, host: str, port: int) -> None:
    """Skip (or fail when CI=true) unless a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        unavailable(f"{name} at {host}:{port} is unreachable ({exc})")


def require_postgres() -> None:
    require("PostgreSQL", PG_HOST, PG_PORT)


def require_redis() -> None:
    require("Redis", REDIS_HOST, REDIS_PORT)
