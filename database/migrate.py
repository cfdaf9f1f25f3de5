"""Alembic migrations run programmatically (no alembic.ini), plus the PostgreSQL app role."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from database.engine import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
DEFAULT_APP_ROLE = "tollgate_app"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

T = TypeVar("T")

# Alembic's ``context`` and ``op`` are process-wide proxies, so two migrations running in
# threads of one process would trample each other; other processes are serialised by an
# advisory lock in env.py.
_ALEMBIC_LOCK = threading.Lock()


def _config(url: str, app_role: str) -> Config:
    if not ROLE_NAME.fullmatch(app_role):
        raise ValueError(f"invalid role name {app_role!r}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    # Passed as attributes, not main options, so '%' in passwords is not interpolated.
    cfg.attributes["url"] = url
    cfg.attributes["app_role"] = app_role
    return cfg


def _outside_event_loop(fn: Callable[[], T]) -> T:
    # env.py drives the async driver with asyncio.run(), which refuses to run inside a
    # running loop; from async code (tests, lifespans) run it on a worker thread instead.
    def locked() -> T:
        with _ALEMBIC_LOCK:
            return fn()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return locked()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alembic") as executor:
        return executor.submit(locked).result()


def upgrade(url: str, revision: str = "head", *, app_role: str = DEFAULT_APP_ROLE) -> None:
    """Upgrade the database at ``url`` to ``revision`` (blocking).

    On PostgreSQL this also enables row-level security and ensures the login role
    ``app_role`` exists (see :func:`app_url`). Safe to call from several processes at once
    on PostgreSQL. Called from a running event loop, it blocks that loop until done.
    """
    cfg = _config(url, app_role)
    _outside_event_loop(lambda: command.upgrade(cfg, revision))


def downgrade(url: str, revision: str, *, app_role: str = DEFAULT_APP_ROLE) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` drops every table)."""
    cfg = _config(url, app_role)
    _outside_event_loop(lambda: command.downgrade(cfg, revision))


def current(url: str) -> str | None:
    """Return the database's current revision, or ``None`` when it was never migrated."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async def run() -> str | None:
        engine = create_async_engine(normalize_url(url), poolclass=pool.NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(read)
        finally:
            await engine.dispose()

    return _outside_event_loop(lambda: asyncio.run(run()))


def head() -> str:
    """Return the newest revision of the migration scripts."""
    script = ScriptDirectory.from_config(_config("", DEFAULT_APP_ROLE))
    revision = script.get_current_head()
    if revision is None:
        raise RuntimeError("no migration scripts found")
    return revision


def app_url(owner_url: str, role: str = DEFAULT_APP_ROLE, password: str | None = None) -> str:
    """Return ``owner_url`` connecting as the row-level-security-bound ``role`` instead.

    The migration creates ``role`` without a password, so this works where pg_hba.conf
    trusts local connections (as in development and CI). Elsewhere, give the role a
    password out of band (``ALTER ROLE tollgate_app PASSWORD '...'``) and pass it here.
    """
    if not ROLE_NAME.fullmatch(role):
        raise ValueError(f"invalid role name {role!r}")
    owner = make_url(owner_url)
    url = URL.create(
        owner.drivername,
        username=role,
        password=password,
        host=owner.host,
        port=owner.port,
        database=owner.database,
        query=owner.query,
    )
    return url.render_as_string(hide_password=False)
