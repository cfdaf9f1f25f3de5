"""The ASGI entry point for uvicorn (``server.asgi:create``, a factory)."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from server.app import create_app
from server.settings import Settings

# Young-generation collections run every GC_THRESHOLD container allocations (CPython's
# default is 700): a request builds a few thousand dicts, lists and tuples that die with it.
GC_THRESHOLD = 5000


def create() -> Starlette:
    """Build the app from the environment (each worker process calls this once).

    Then the garbage collector is tuned for a server: what exists now (modules, the schema,
    compiled statements, the app) lives as long as the process, so it is collected once and
    frozen out of every later full collection (which scanned all of it, some 150,000
    objects, every few hundred requests), and young collections run less often.
    """
    app = create_app(Settings())
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    return app
