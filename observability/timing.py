"""A tiny `Server-Timing` header collector (W3C Server Timing)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

# A metric name must be an RFC 9110 token; anything else is replaced.
_NON_TOKEN = re.compile(r"[^!#$%&'*+.^_`|~0-9A-Za-z-]")


def _format_ms(ms: float) -> str:
    text = f"{ms:.2f}".rstrip("0").rstrip(".")
    return text or "0"


class ServerTiming:
    """Collects named durations of one request and formats the `Server-Timing` header.

    Example:
        timing = ServerTiming()
        timing.add("gate", 0.12)
        with timing.measure("exec"):
            ...
        timing.header()  # 'gate;dur=0.12, exec;dur=3.4'
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, float] = {}

    def add(self, name: str, ms: float) -> None:
        """Add `ms` milliseconds under `name` (repeated names are summed, first order kept)."""
        token = _NON_TOKEN.sub("_", name) or "_"
        self._entries[token] = self._entries.get(token, 0.0) + max(ms, 0.0)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Time the block with a monotonic clock and `add` it under `name`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - start) * 1000.0)

    def items(self) -> list[tuple[str, float]]:
        """Return the collected (name, milliseconds) pairs in insertion order."""
        return list(self._entries.items())

    def header(self) -> str:
        """Return the header value, e.g. `gate;dur=0.12, exec;dur=3.4` ("" when empty)."""
        return ", ".join(f"{name};dur={_format_ms(ms)}" for name, ms in self._entries.items())
