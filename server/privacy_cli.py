"""``python -m server privacy export|erase``: a user's data as JSON, or its erasure.

Standard output carries only the result (the export document, or the erasure's counts);
log lines go to standard error so that ``export > file.json`` stays valid JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from server.clitools import load_settings, run_db
from server.settings import Settings

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


def register(sub: Any) -> None:
    """Add the ``privacy`` command (``export`` and ``erase``) to the CLI's subparsers."""
    privacy = sub.add_parser(
        "privacy",
        help="export or erase everything held about a user",
        description="Export (as JSON) or erase everything held about one user (docs/privacy.md).",
    )
    actions = privacy.add_subparsers(dest="privacy_command", required=True)
    export = actions.add_parser(
        "export",
        help="write a user's data as JSON",
        description="Write everything held about a user as JSON (stdout or --out).",
    )
    erase = actions.add_parser(
        "erase",
        help="anonymise a user's data in one transaction",
        description="Anonymise a user's data in one transaction; prints the counts as JSON.",
    )
    for command in (export, erase):
        command.add_argument("--tenant", required=True, help="tenant slug or id")
        command.add_argument("--user", required=True, help="user id (UUID or global id)")
    export.add_argument("--out", help="write to this file (mode 0600) instead of stdout")
    export.add_argument("--requested-by", default="cli", help="who asked (logged)")
    export.set_defaults(fn=cmd_privacy_export)
    erase.add_argument(
        "--requested-by", required=True, help="who asked (logged; e.g. a ticket or operator)"
    )
    erase.set_defaults(fn=cmd_privacy_erase)


Action = Callable[[Any, uuid.UUID, uuid.UUID], Awaitable[Any]]


def _prepare(settings: Settings) -> None:
    from observability import configure_logging

    configure_logging(level=settings.log_level, json=settings.log_json, stream=sys.stderr)


async def _target(engine: Any, tenant: str, user: str) -> tuple[uuid.UUID, uuid.UUID] | str:
    """The (tenant id, user id) named on the command line, or why not."""
    from resolvers.privacy import parse_user_id, resolve_tenant

    try:
        user_id = parse_user_id(user)
    except ValueError as exc:
        return str(exc)
    tenant_id = await resolve_tenant(engine, tenant)
    if tenant_id is None:
        return f"no tenant {tenant!r}"
    return tenant_id, user_id


def _write_private(path: str, text: str) -> None:
    # The export is personal data: never readable by other local users, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _for_user(args: argparse.Namespace, action: Action) -> dict[str, Any] | str:
    """Run ``action(engine, tenant id, user id)`` for ``--tenant``/``--user``; a str says why not."""
    from database.engine import make_engine

    settings = load_settings()
    _prepare(settings)

    async def run() -> dict[str, Any] | str:
        engine = make_engine(settings.database_url)
        try:
            target = await _target(engine, args.tenant, args.user)
            if isinstance(target, str):
                return target
            found = await action(engine, *target)
            return f"no user {args.user!r} in tenant {args.tenant!r}" if found is None else found
        finally:
            await engine.dispose()

    return run_db(settings, run)


def cmd_privacy_export(args: argparse.Namespace) -> int:
    """Export everything held about ``--user`` of ``--tenant`` as JSON (stdout or ``--out``)."""
    from resolvers.privacy import dumps, export_user

    async def export(engine: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Any:
        return await export_user(
            engine, tenant_id, user_id, requested_by=args.requested_by, via="cli"
        )

    result = _for_user(args, export)
    if isinstance(result, str):
        print(result, file=sys.stderr)
        return EXIT_NOT_FOUND
    text = dumps(result, indent=True) + "\n"
    if args.out:
        _write_private(args.out, text)
        print(f"wrote {Path(args.out)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _drop_cached_answers(tenant_id: uuid.UUID) -> str:
    """Empty the tenant's shared response cache (docs/caching.md); say what was done.

    Only the Redis cache is reachable from here: in-process caches of running servers keep
    the erased values until their entries expire (at most the hints' maxAge, 60 s).
    """
    settings = Settings()
    if not settings.response_cache or not settings.redis_url:
        return "not shared: in-process entries expire within 60 s"
    import redis.asyncio as aioredis

    from guards.responsecache import ALL, RedisResponseStore

    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        store = RedisResponseStore(client, prefix=settings.response_cache_prefix)
        await store.invalidate(tenant_id.hex, {ALL})
    except Exception as exc:  # the erasure has committed; say what is left to do
        return f"not invalidated ({type(exc).__name__}): entries expire within 60 s"
    finally:
        await client.aclose()
    return "invalidated"


def cmd_privacy_erase(args: argparse.Namespace) -> int:
    """Anonymise ``--user`` of ``--tenant``; prints the counts as JSON (all 0 on a repeat)."""
    from resolvers.privacy import erase_user

    if not args.requested_by.strip():
        print("--requested-by must name who asked", file=sys.stderr)
        return EXIT_USAGE

    async def erase(engine: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Any:
        report = await erase_user(
            engine, tenant_id, user_id, requested_by=args.requested_by, via="cli"
        )
        if report is None:
            return None
        return {
            "tenant": str(tenant_id),
            "userId": str(user_id),
            "erased": report.changed,
            "counts": report.as_dict(),
            "responseCache": await _drop_cached_answers(tenant_id),
        }

    result = _for_user(args, erase)
    if isinstance(result, str):
        print(result, file=sys.stderr)
        return EXIT_NOT_FOUND
    print(json.dumps(result, indent=2))
    return 0
