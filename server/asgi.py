"""The ASGI entry point for uvicorn (``server.asgi:create``, a factory)."""

from __future__ import annotations

from starlette.applications import Starlette

from server.app import create_app
from server.settings import Settings


def create() -> Starlette:
    """Build the app from the environment (each worker process calls this once)."""
    return create_app(Settings())
