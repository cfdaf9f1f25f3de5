"""Counts SQL statements per request (a contextvar bumped by an engine event)."""

from __future__ import annotations

import contextvars
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from database.engine import reader_of

_counter: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "sql_statements", default=None
)


def _before_execute(*_args: Any, **_kwargs: Any) -> None:
    box = _counter.get()
    if box is not None:
        box[0] += 1


def install(engine: AsyncEngine) -> None:
    """Count every statement the engine and its raw-driver reader send (cheap: one contextvar
    look-up each)."""
    event.listen(engine.sync_engine, "before_cursor_execute", _before_execute)
    reader = reader_of(engine)
    if reader is not None:
        reader.listen(_before_execute)


def start() -> list[int]:
    """Begin counting for the current request; read ``box[0]`` at the end."""
    box = [0]
    _counter.set(box)
    return box
