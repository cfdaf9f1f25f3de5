"""Sampling profiles of a server under load (py-spy), summarised by package and function.

py-spy is not a project dependency: ``.venv/bin/pip install py-spy`` to use
``python -m bench.run --profile``. Samples of threads that only wait (aiosqlite's worker
threads blocked on their queue, the event loop blocked in epoll) are dropped, so the
shares are of the time the process was busy.
"""

from __future__ import annotations

import collections
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?):(?P<line>\d+)\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, duration: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``duration`` seconds into ``out`` (collapsed stacks)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return subprocess.Popen(
        [exe, "record", "-p", str(pid), "-d", str(max(1, round(duration))), "-r", str(rate),
         "-f", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _idle_leaves() -> set[tuple[str, str, int]]:
    """(function, file suffix, line) of frames where a thread is only waiting."""
    idle: set[tuple[str, str, int]] = set()
    try:
        from aiosqlite import core

        lines, first = inspect.getsourcelines(core._connection_worker_thread)
        for offset, text in enumerate(lines):
            if "tx.get(" in text:
                idle.add(("_connection_worker_thread", "aiosqlite/core.py", first + offset))
    except (ImportError, AttributeError, OSError):
        pass
    return idle


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _parse(frame: str) -> tuple[str, str, int]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, "", 0
    return match["func"], _short(match["file"]), int(match["line"])


def summarise(raw: Path, top: int = 15) -> dict[str, Any]:
    """Shares of busy samples: self time by package and function, inclusive by function."""
    idle = _idle_leaves()
    by_package: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    busy = dropped = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_parse(frame) for frame in stack.split(";")]
        func, file, lineno = frames[-1]
        waiting = any(
            func == f and file.endswith(suffix) and lineno == n for f, suffix, n in idle
        ) or (func == "Runner.run" and file.endswith("asyncio/runners.py"))
        if waiting:
            dropped += int(count)
            continue
        samples = int(count)
        busy += samples
        by_package[file.split("/", 1)[0] if "/" in file else file or func] += samples
        by_function[f"{func} ({file})"] += samples
        for name in {f"{f} ({p})" for f, p, _ in frames}:
            inclusive[name] += samples

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return (
            [(name, round(n / busy * 100, 1)) for name, n in counter.most_common(top)]
            if busy
            else []
        )

    return {
        "busy_samples": busy,
        "idle_samples_dropped": dropped,
        "self_by_package": shares(by_package),
        "self_by_function": shares(by_function),
        "inclusive_by_function": shares(inclusive),
    }


def render(summary: dict[str, Any]) -> str:
    """A short text view of :func:`summarise`'s result."""
    lines = [
        f"busy samples: {summary['busy_samples']} (idle dropped: {summary['idle_samples_dropped']})"
    ]
    for title, key in (("self time by package", "self_by_package"),
                       ("self time by function", "self_by_function")):  # fmt: skip
        lines.append(f"  {title}:")
        lines += [f"    {share:5.1f}%  {name}" for name, share in summary[key]]
    return "\n".join(lines)
