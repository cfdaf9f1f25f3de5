"""The command-line interface: serve, migrate, seed, token, sdl, cost, pq, schema check."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from server import privacy_cli
from server.settings import ROOT, Settings


def _settings() -> Settings:
    return Settings()


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def cmd_migrate(args: argparse.Namespace) -> int:
    from database.migrate import upgrade

    settings = _settings()
    _ensure_sqlite_dir(settings.database_url)
    upgrade(settings.database_url)
    print("migrated to head", file=sys.stderr)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from database.engine import make_engine
    from database.seed import seed

    settings = _settings()

    async def run() -> Any:
        engine = make_engine(settings.database_url)
        try:
            return await seed(engine)
        finally:
            await engine.dispose()

    summary = asyncio.run(run())
    print(
        "seeded: " + str(summary) if summary else "database not empty; seed skipped",
        file=sys.stderr,
    )
    return 0


async def mint_demo_token(
    settings: Settings,
    tenant: str,
    role: str,
    user: str | None = None,
    scopes: Sequence[str] | None = None,
    ttl: int = 3600,
) -> str:
    """Mint a token for a demo user (or ``user``) of ``tenant`` with ``role``."""
    from sqlalchemy import select

    from auth import Role
    from auth.tokens import mint_token
    from database.engine import make_engine, set_tenant
    from database.models import User
    from database.seed import demo_user, tenant_by_slug

    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            tenant_row = await tenant_by_slug(conn, tenant)
            if tenant_row is None:
                raise SystemExit(f"no tenant {tenant!r}; run `python -m server seed` first")
            if user:
                await set_tenant(conn, tenant_row.id)  # row-level security on PostgreSQL
                row = (
                    await conn.execute(
                        select(User.__table__).where(
                            User.__table__.c.tenant_id == tenant_row.id,
                            User.__table__.c.id == __import__("uuid").UUID(user),
                        )
                    )
                ).first()
            else:
                row = await demo_user(conn, tenant, role.upper())
            if row is None:
                raise SystemExit(f"no {role} user in tenant {tenant!r}")
    finally:
        await engine.dispose()
    return mint_token(
        settings.jwt(),
        subject=str(row.id),
        tenant_id=tenant_row.id,
        role=Role(row.role),
        scopes=list(scopes) if scopes else None,
        ttl_seconds=ttl,
    )


def cmd_token(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.effective_jwt_secret is None:
        print("token needs TOLLGATE_JWT_SECRET (HS256) to sign with", file=sys.stderr)
        return 2
    scopes = args.scope.split() if args.scope else None
    token = asyncio.run(
        mint_demo_token(settings, args.tenant, args.role, args.user, scopes, args.ttl)
    )
    print(token)
    return 0


def cmd_sdl(args: argparse.Namespace) -> int:
    from schema import build_schema

    print(build_schema().as_str())
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    from graphql import build_schema as build_sdl

    from guards.cost import price_document
    from guards.limits import Limits
    from schema import build_schema

    text = Path(args.file).read_text(encoding="utf-8")
    variables = json.loads(args.variables) if args.variables else None
    report = price_document(
        build_sdl(build_schema().as_str()),
        text,
        variables=variables,
        operation_name=args.operation,
        limits=Limits.from_mapping(_settings().limits),
    )
    print(json.dumps(report, indent=2, default=str))
    return 1 if report.get("errors") else 0


def cmd_pq(args: argparse.Namespace) -> int:
    """Registry operations against the configured database (the source of truth)."""
    from persisted_queries import load_manifest
    from server.app import create_app

    settings = _settings()

    async def run() -> dict[str, Any]:
        app = create_app(settings)
        registry = app.state.registry
        try:
            entries = load_manifest(args.manifest) if getattr(args, "manifest", None) else []
            client = args.client
            if args.pq_command == "push":
                report = await registry.register(client, entries, dry_run=args.dry_run)
                return {
                    "dryRun": args.dry_run,
                    "added": list(report.added),
                    "unchanged": list(report.unchanged),
                    "refused": [{"id": i, "reason": r} for i, r in report.refused],
                    "reactivated": list(getattr(report, "reactivated", [])),
                    "repriced": [
                        {"id": i, "old": o, "new": n} for i, o, n in getattr(report, "repriced", [])
                    ],
                }
            if args.pq_command == "list":
                documents = await registry.list(client)
                return {
                    "operations": [
                        {
                            "id": d.document_id,
                            "name": d.operation_name,
                            "clientName": d.client_name,
                            "cost": d.cost,
                        }
                        for d in documents
                    ]
                }
            if args.pq_command == "diff":
                diff = await registry.diff(client, entries)
                return {
                    "added": list(diff.added),
                    "removed": list(diff.removed),
                    "changedCost": [{"id": i, "old": o, "new": n} for i, o, n in diff.changed_cost],
                }
            retired = await registry.retire(
                client, args.ids or None, manifest=entries or None, dry_run=args.dry_run
            )
            return {"dryRun": args.dry_run, "retired": list(retired)}
        finally:
            await app.state.engine.dispose()

    result = asyncio.run(run())
    print(json.dumps(result, indent=2))
    return 1 if result.get("refused") else 0


def cmd_schema_check(args: argparse.Namespace) -> int:
    """Classify schema changes; exit 1 when anything is breaking, 2 on unreadable input."""
    from graphql import GraphQLError

    from server.schema_check import compare_sdl, served_sdl

    try:
        old = Path(args.old).read_text(encoding="utf-8")
        new = Path(args.new).read_text(encoding="utf-8") if args.new else served_sdl()
        report = compare_sdl(old, new)
    except (OSError, GraphQLError, TypeError) as error:
        print(f"schema check: {error}", file=sys.stderr)
        return 2
    new_name = args.new or "served schema"
    if args.json:
        print(json.dumps(report.to_dict(args.old, new_name), indent=2))
    else:
        print(report.render(args.old, new_name))
    return report.exit_code


def tls_context(config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's SSL context with TLS 1.2 as the floor, whatever OpenSSL's defaults are."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    port = args.port or settings.port
    workers = args.workers or settings.workers
    if args.ssl_certfile:
        os.environ["TOLLGATE_SSL_CERTFILE"] = args.ssl_certfile
    os.environ["TOLLGATE_WORKERS"] = str(workers)  # each worker knows it is not alone
    if workers > 1 and settings.metrics and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several workers: prometheus-client's multiprocess mode, so /metrics sums them all.
        from observability.metrics import wipe_multiprocess_dir

        metrics_dir = str(ROOT / "var" / f"metrics-{os.getpid()}")
        wipe_multiprocess_dir(metrics_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    certfile = args.ssl_certfile or settings.ssl_certfile
    if workers > 1 and settings.database_url.startswith("sqlite") and not settings.redis_url:
        print(
            "note: several workers without TOLLGATE_REDIS_URL keep separate rate-limit "
            "buckets per worker",
            file=sys.stderr,
        )
    uvicorn.run(
        "server.asgi:create",
        factory=True,
        host=args.host or settings.host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        # X-Forwarded-* only from configured proxies: never uvicorn's default (loopback).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies),
        ssl_certfile=certfile,
        ssl_keyfile=args.ssl_keyfile or settings.ssl_keyfile,
        ssl_context_factory=tls_context if certfile else None,
        timeout_graceful_shutdown=30,
        app_dir=str(ROOT),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="Tollgate")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API (uvicorn)")
    serve.add_argument("--port", type=int)
    serve.add_argument("--host")
    serve.add_argument("--workers", type=int)
    serve.add_argument("--ssl-certfile")
    serve.add_argument("--ssl-keyfile")
    serve.set_defaults(fn=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    sub.add_parser("seed", help="load the demo data into an empty database").set_defaults(
        fn=cmd_seed
    )
    token = sub.add_parser("token", help="print a JWT for a demo user")
    token.add_argument("--tenant", default="acme")
    token.add_argument("--role", default="customer", choices=["customer", "staff", "admin"])
    token.add_argument("--user", help="a user id instead of the role's demo user")
    token.add_argument("--scope", help="space-separated scopes instead of the role's defaults")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(fn=cmd_token)
    sub.add_parser("sdl", help="print the served SDL").set_defaults(fn=cmd_sdl)
    cost = sub.add_parser("cost", help="price a document offline")
    cost.add_argument("file")
    cost.add_argument("--variables")
    cost.add_argument("--operation")
    cost.set_defaults(fn=cmd_cost)
    pq = sub.add_parser("pq", help="persisted queries: push, list, diff, retire")
    pq_sub = pq.add_subparsers(dest="pq_command", required=True)
    for name, needs_manifest in (
        ("push", True),
        ("list", False),
        ("diff", True),
        ("retire", False),
    ):
        command = pq_sub.add_parser(name)
        if needs_manifest:
            command.add_argument(
                "manifest", help="Apollo manifest, {id: text} JSON, or a folder of .graphql files"
            )
        elif name == "retire":
            command.add_argument(
                "--manifest", help="retire every active document not in this manifest"
            )
            command.add_argument("--ids", nargs="*", help="ids to retire")
        command.add_argument("--client", help="client name of the list (default: the default list)")
        if name in ("push", "retire"):
            command.add_argument(
                "--dry-run", action="store_true", help="report without changing anything"
            )
        command.set_defaults(fn=cmd_pq)
    schema = sub.add_parser("schema", help="schema change management")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    check = schema_sub.add_parser(
        "check", help="classify changes from OLD to the served SDL (or NEW); exit 1 if breaking"
    )
    check.add_argument("old", help="the previous SDL, e.g. the published contract")
    check.add_argument("--new", help="the new SDL (default: the schema this server serves)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(fn=cmd_schema_check)
    privacy_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.fn(args)
    return result
