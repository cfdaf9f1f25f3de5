"""What every ``tollgate`` subcommand shares: one-line errors, settings, the database, progress.

A subcommand is one function ``cmd_x(args) -> int``. It raises :class:`CliError` for an
expected failure (bad input, missing file, bad setting, unreachable or unmigrated database);
:func:`run_command` prints it as one line, ``tollgate: error: <what>; <what to do>``, and
returns :data:`EXIT_USAGE`. :data:`EXIT_REFUSED` (1) is kept for "refused" and "breaking".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

from server.settings import Settings

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
MAX_MESSAGE = 300

T = TypeVar("T")


class CliError(Exception):
    """An expected failure: ``message`` says what went wrong, ``hint`` what to do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        text = one_line(self.message)
        return f"tollgate: error: {text}" + (f"; {self.hint}" if self.hint else "")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line, cut at ``limit`` characters (never echo unbounded input)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2 like every other expected error."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("tollgate").strip()
        raise CliError(f"{where}: {message}" if where else message, f"see `{self.prog} --help`")


def load_settings() -> Settings:
    """The settings from the environment; a bad ``TOLLGATE_*`` value is a :class:`CliError`."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        settings = Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None
    except SettingsError as exc:  # a TOLLGATE_* value that should be JSON is not
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"TOLLGATE_{found[1].upper()}" if found else "a TOLLGATE_* variable"
        raise CliError(
            f"{name} is not valid JSON", "fix the variable's JSON (see docs/operations.md)"
        ) from None
    check_limits(settings)
    return settings


def settings_error(exc: Any) -> CliError:
    """One line for a pydantic ``ValidationError`` of :class:`Settings`."""
    problems = []
    for error in exc.errors()[:3]:
        name = "_".join(str(part) for part in error.get("loc", ()) if isinstance(part, str))
        where = f"TOLLGATE_{name.upper()}" if name else "settings"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return CliError("; ".join(problems), "fix the variable (see docs/operations.md)")


def check_limits(settings: Settings) -> None:
    """Parse ``TOLLGATE_LIMITS`` now, so a bad value is one line rather than a traceback."""
    from guards.limits import Limits

    try:
        Limits.from_mapping(settings.limits)
    except (TypeError, ValueError) as exc:
        raise CliError(
            f"TOLLGATE_LIMITS: {exc}", "fix the JSON object (see docs/limits.md)"
        ) from None


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("sqlite"):
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def safe_url(url: str) -> str:
    """``url`` with its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "TOLLGATE_DATABASE_URL"


def require_database(url: str) -> None:
    """Refuse a SQLite database file that does not exist (connecting would create it empty)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise CliError(
            f"no database at {path}",
            "run `tollgate migrate` (and `tollgate seed` for the demo data) first, "
            "or set TOLLGATE_DATABASE_URL",
        )


def database_error(exc: BaseException, url: str) -> CliError | None:
    """A :class:`CliError` for a database that is unreachable or not migrated, else None."""
    from sqlalchemy.exc import DBAPIError

    text = str(getattr(exc, "orig", None) or exc)
    lowered = text.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return CliError(
            f"the database at {safe_url(url)} is not migrated ({one_line(text, 80)})",
            "run `tollgate migrate` first",
        )
    name = type(exc).__name__
    if isinstance(exc, DBAPIError | OSError | TimeoutError) or name in {
        "InvalidCatalogNameError",
        "InvalidPasswordError",
        "InvalidAuthorizationSpecificationError",
        "CannotConnectNowError",
    }:
        reason = one_line(text or name, 120)
        return CliError(
            f"cannot use the database at {safe_url(url)}: {reason}",
            "check TOLLGATE_DATABASE_URL and that the database server is running",
        )
    return None


def run_db(settings: Settings, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` on a fresh event loop; database failures become :class:`CliError`."""
    require_database(settings.database_url)
    try:
        return asyncio.run(work())
    except CliError:
        raise
    except Exception as exc:
        error = database_error(exc, settings.database_url)
        if error is None:
            raise
        raise error from None


def read_text(path: str, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a missing or unreadable file is a :class:`CliError`."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"no such {what}: {path}", "check the path") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text", "pass a .graphql text file") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", "check the path") from None


def run_command(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one subcommand; expected failures print one line and return :data:`EXIT_USAGE`."""
    from pydantic import ValidationError

    try:
        return fn(args)
    except CliError as error:
        print(error.line(), file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:  # Settings() built by a subcommand itself
        print(settings_error(exc).line(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tollgate: interrupted", file=sys.stderr)
        return 130


class Progress:
    """A one-line progress bar on standard error, drawn only on a terminal for long runs.

    Example:
        with Progress("pushing", total=len(entries)) as progress:
            for entry in entries:
                ...
                progress.advance()
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        minimum: int = 50,
        force: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        shown = force if force is not None else _is_tty(self.stream)
        self.enabled = shown and total >= minimum
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def advance(self, count: int = 1) -> None:
        self.done += count
        self._draw()

    def _draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        share = min(1.0, self.done / self.total) if self.total else 1.0
        width = 30
        filled = int(share * width)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done:,}/{self.total:,}")
        self.stream.flush()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False
