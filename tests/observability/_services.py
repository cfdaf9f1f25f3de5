"""Reachability of real services: skip loudly, or fail under CI=true."""

from __future__ import annotations

import os
import socket

import pytest


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or fail when CI=true) unless a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        reason = f"{name} at {host}:{port} is unreachable ({exc}); NOT TESTED"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
