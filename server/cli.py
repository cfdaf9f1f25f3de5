"""The ``tollgate`` command: serve, migrate, seed, token, sdl, cost, pq, schema check, privacy.

One function per subcommand (``cmd_*``), each registered by ``build_parser``; expected
failures raise ``clitools.CliError`` and print one line (exit 2). Exit 1 means "refused"
(``cost``, ``pq``) or "breaking" (``schema check``). ``python -m server`` runs the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import cache
from typing import Any

from server import privacy_cli, webhooks_cli
from server.clitools import (
    EXIT_OK,
    EXIT_REFUSED,
    CliError,
    Parser,
    Progress,
    load_settings,
    read_text,
    require_database,
    run_command,
    run_db,
    sqlite_path,
)
from server.settings import ROOT, Settings

PROG = "tollgate"


def _settings() -> Settings:
    return load_settings()


# --------------------------------------------------------------------------- database


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the database to the newest migration (creates a SQLite file if needed)."""
    from database.migrate import upgrade

    settings = _settings()
    path = sqlite_path(settings.database_url)
    created = path is not None and not path.exists()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(settings.database_url)
    except Exception as exc:
        if created and path is not None:
            path.unlink(missing_ok=True)  # never leave a file we failed to fill
        from server.clitools import database_error

        error = database_error(exc, settings.database_url)
        if error is None:
            raise
        raise error from None
    print("migrated to head", file=sys.stderr)
    return EXIT_OK


def cmd_seed(args: argparse.Namespace) -> int:
    """Load the demo tenants and data into an empty, migrated database."""
    from database.engine import make_engine
    from database.seed import seed

    settings = _settings()

    async def run() -> Any:
        engine = make_engine(settings.database_url)
        try:
            return await seed(engine)
        finally:
            await engine.dispose()

    summary = run_db(settings, run)
    print(
        "seeded: " + str(summary) if summary else "database not empty; seed skipped",
        file=sys.stderr,
    )
    return EXIT_OK


async def mint_demo_token(
    settings: Settings,
    tenant: str,
    role: str,
    user: str | None = None,
    scopes: Sequence[str] | None = None,
    ttl: int = 3600,
) -> str:
    """Mint a token for a demo user (or ``user``) of ``tenant`` with ``role``.

    Raises:
        CliError: no such tenant or user.
    """
    from sqlalchemy import select

    from auth import Role
    from auth.tokens import mint_token
    from database.engine import make_engine, set_tenant
    from database.models import User
    from database.seed import demo_user, tenant_by_slug

    user_id: uuid.UUID | None = None
    if user:
        try:
            user_id = uuid.UUID(user)
        except ValueError:
            raise CliError(f"--user {user!r} is not a UUID", "pass a user's id") from None
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            tenant_row = await tenant_by_slug(conn, tenant)
            if tenant_row is None:
                raise CliError(f"no tenant {tenant!r}", "run `tollgate seed` first")
            if user_id is not None:
                await set_tenant(conn, tenant_row.id)  # row-level security on PostgreSQL
                row = (
                    await conn.execute(
                        select(User.__table__).where(
                            User.__table__.c.tenant_id == tenant_row.id,
                            User.__table__.c.id == user_id,
                        )
                    )
                ).first()
            else:
                row = await demo_user(conn, tenant, role.upper())
            if row is None:
                who = f"user {user}" if user else f"{role} user"
                raise CliError(f"no {who} in tenant {tenant!r}", "check --tenant and --user")
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
    """Print a signed JWT for a demo user (HS256 with TOLLGATE_JWT_SECRET or the demo secret)."""
    settings = _settings()
    if settings.effective_jwt_secret is None:
        raise CliError(
            "token signs with an HS256 secret and none is configured",
            "set TOLLGATE_JWT_SECRET (production tokens come from your identity provider)",
        )
    if args.ttl <= 0:
        raise CliError(f"--ttl must be positive, got {args.ttl}", "pass seconds, e.g. --ttl 3600")
    scopes = args.scope.split() if args.scope else None

    async def run() -> str:
        try:
            return await mint_demo_token(
                settings, args.tenant, args.role, args.user, scopes, args.ttl
            )
        except ValueError as exc:  # a malformed scope
            raise CliError(str(exc), "scopes are space-separated words like read:orders") from None

    print(run_db(settings, run))
    return EXIT_OK


def cmd_sdl(args: argparse.Namespace) -> int:
    """Print the schema this server serves, as SDL."""
    from schema import build_schema

    print(build_schema().as_str())
    return EXIT_OK


# --------------------------------------------------------------------------- cost


@cache
def _offline_pipeline(limits_json: str) -> Any:
    """The server's own GraphQLPipeline (no database, no rate limiter), built once."""
    from guards.limits import Limits
    from schema import build_schema
    from server.pipeline import GraphQLPipeline

    strawberry_schema = build_schema()
    return GraphQLPipeline(
        schema=strawberry_schema._schema,
        sdl=strawberry_schema.as_str(),
        limits=Limits.from_mapping(json.loads(limits_json)),
        limiter=None,
        fail_open=True,
        fast_executor=False,
    )


def parse_json_option(option: str, raw: str | None) -> Any:
    """The JSON value of ``option``; invalid JSON is a :class:`CliError`."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(
            f"{option} is not valid JSON ({exc})",
            f"""quote keys and strings, e.g. {option} '{{"first": 5}}'""",
        ) from None


def _refusal(errors: list[dict[str, Any]]) -> str:
    first: dict[str, Any] = errors[0] if errors else {"message": "refused"}
    code = (first.get("extensions") or {}).get("code")
    return f"{first['message']}" + (f" ({code})" if code else "")


def _check_pages(pipeline: Any, prepared: Any, coerced: dict[str, Any]) -> None:
    """Refuse page sizes as the resolvers will: ``resolvers.queries.page_args`` per field."""
    from graphql import (
        FieldNode,
        FragmentDefinitionNode,
        FragmentSpreadNode,
        InlineFragmentNode,
        get_named_type,
    )
    from graphql.execution.values import VariableValues, get_argument_values

    from resolvers.errors import ApiError
    from resolvers.queries import page_args

    fragments = {
        d.name.value: d
        for d in prepared.document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    context: Any = argparse.Namespace(max_page_size=pipeline.limits.max_page_size)
    root = pipeline.schema.get_root_type(prepared.operation.operation)
    variables = VariableValues({}, coerced)

    def walk(parent: Any, selection_set: Any, seen: frozenset[str]) -> None:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                definition = getattr(parent, "fields", {}).get(selection.name.value)
                if definition is None:
                    continue
                if "first" in definition.args and "after" in definition.args:
                    values = get_argument_values(definition, selection, variables)
                    try:
                        page_args(context, values.get("first"), None)
                    except ApiError as error:
                        raise CliError(
                            f"{error} ({error.code})", "the server refuses this too"
                        ) from None
                walk(get_named_type(definition.type), selection.selection_set, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = pipeline.schema.get_type(condition.name.value) if condition else parent
                walk(target, selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    target = pipeline.schema.get_type(fragment.type_condition.name.value)
                    walk(target, fragment.selection_set, seen | {name})

    walk(root, prepared.operation.selection_set, frozenset())


def price_offline(
    settings: Settings, text: str, variables: Any, operation_name: str | None
) -> tuple[dict[str, Any], int]:
    """Price ``text`` through the server's own steps; return the report and the exit code.

    The steps are the server's: request parameters (``server.protocol``), then the
    pipeline's ``prepare`` (gate, parse, validate, plan), ``coerce_variables`` and
    ``price``, then the resolvers' page-size rule. Bad variables are a :class:`CliError`
    (exit 2, the server's message); a document the server refuses is reported (exit 1).
    """
    from server.pipeline import OperationRefused
    from server.protocol import HTTPFailure, params_from_body

    body = {"query": text, "operationName": operation_name, "variables": variables}
    try:
        # The standard library's encoder: orjson stops at 254 levels of nesting, which the
        # server's own parser accepts (and refuses with its own message when too deep).
        raw = json.dumps(body).encode()
    except (ValueError, RecursionError):
        raise CliError("--variables nest too deeply", "the server refuses this too") from None
    try:
        params = params_from_body(raw, "application/json", batching=False, max_batch=1)[0]
    except HTTPFailure as failure:
        raise CliError(f"{failure} ({failure.code})", "the server refuses this too") from None
    pipeline = _offline_pipeline(json.dumps(settings.limits, sort_keys=True))
    report: dict[str, Any] = {
        "operationName": operation_name,
        "operationType": None,
        "cost": None,
        "nodes": None,
        "breakdown": [],
        "errors": [],
        "measured": [],
    }
    try:
        prepared = pipeline.prepare(text, operation_name, may_introspect=True)
    except OperationRefused as refused:
        report["errors"] = refused.errors
        return report, EXIT_REFUSED
    report["operationName"] = prepared.operation_name
    report["operationType"] = prepared.operation_type
    # The server's order (server/operation.py): priced on the variables as sent, then coerced.
    sent = params.variables or {}
    estimate = prepared.plan.evaluate(sent)
    report["cost"] = estimate.requested
    report["nodes"] = estimate.nodes
    report["breakdown"] = [asdict(item) for item in estimate.breakdown()]
    try:
        _, measured = pipeline.price(prepared, sent)
    except OperationRefused as refused:
        if refused.code == "BAD_USER_INPUT":
            raise CliError(
                _refusal(refused.errors), "the server refuses these variables too"
            ) from None
        report["errors"] = refused.errors
        report["measured"] = [m.to_graphql() for m in prepared.measured]
        return report, EXIT_REFUSED
    report["measured"] = [m.to_graphql() for m in (*prepared.measured, *measured)]
    try:
        coerced = pipeline.coerce_variables(prepared, params.variables)
    except OperationRefused as refused:
        raise CliError(_refusal(refused.errors), "the server refuses these variables too") from None
    _check_pages(pipeline, prepared, coerced)
    return report, EXIT_OK


def cmd_cost(args: argparse.Namespace) -> int:
    """Price a document offline, exactly as the server would (no database needed)."""
    text = read_text(args.file, "document file")
    variables = parse_json_option("--variables", args.variables)
    report, status = price_offline(_settings(), text, variables, args.operation)
    print(json.dumps(report, indent=2, default=str))
    return status


# --------------------------------------------------------------------------- pq


def _with_commas(text: str) -> str:
    return re.sub(r"(?<![\w.,])\d{4,}(?!\w|[.,]\d)", lambda m: f"{int(m[0]):,}", text)


def _names(entries: Sequence[Any]) -> dict[str, str]:
    return {e.id: e.operation_name or _short(e.id) for e in entries}


def _short(document_id: str) -> str:
    return document_id if len(document_id) <= 16 else document_id[:12] + "…"


def _count_line(counts: Sequence[tuple[int, str]], *, always: Sequence[str] = ()) -> str:
    parts = [f"{n:,} {label}" for n, label in counts if n or label in always]
    return ", ".join(parts) if parts else "nothing"


def _detail_lines(title: str, items: Sequence[str], limit: int = 20) -> list[str]:
    lines = [f"  {title} {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"  … and {len(items) - limit:,} more (--json lists all)")
    return lines


def _load_entries(args: argparse.Namespace) -> list[Any]:
    from persisted_queries import ManifestError, load_manifest

    manifest = getattr(args, "manifest", None)
    if not manifest:
        return []
    try:
        return load_manifest(manifest)
    except ManifestError as exc:
        raise CliError(str(exc), "see docs/persisted-queries.md for the accepted formats") from None


def _run_registry(
    args: argparse.Namespace,
    action: Callable[[Any, list[Any], Progress], Any],
    total: int | None = None,
) -> Any:
    """Run ``action(registry, entries, progress)`` against the configured database."""
    from persisted_queries import Registry, SQLStore
    from server.app import create_app
    from server.registry import analyser

    settings = _settings()
    entries = _load_entries(args)

    async def run() -> Any:
        app = create_app(settings)
        analyse = analyser(app.state.pipeline)
        with Progress(f"{args.pq_command}", total if total is not None else len(entries)) as bar:

            def counted(text: str) -> Any:
                bar.advance()
                return analyse(text)

            registry = Registry(
                SQLStore(app.state.engine), mode=settings.effective_pq_mode, analyse=counted
            )
            try:
                return await action(registry, entries, bar)
            finally:
                bar.done = bar.total
                await app.state.engine.dispose()

    return run_db(settings, run)


def _emit(args: argparse.Namespace, data: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(lines))


def cmd_pq_push(args: argparse.Namespace) -> int:
    """Analyse, price and register a manifest's documents (exit 1 if any is refused)."""

    async def push(registry: Any, entries: list[Any], _: Progress) -> Any:
        return entries, await registry.register(args.client, entries, dry_run=args.dry_run)

    entries, report = _run_registry(args, push)
    names = _names(entries)
    data = {
        "dryRun": args.dry_run,
        "added": list(report.added),
        "unchanged": list(report.unchanged),
        "refused": [{"id": i, "reason": r} for i, r in report.refused],
        "reactivated": list(report.reactivated),
        "repriced": [{"id": i, "old": o, "new": n} for i, o, n in report.repriced],
    }
    counts = _count_line(
        [
            (len(report.added), "added"),
            (len(report.reactivated), "reactivated"),
            (len(report.repriced), "repriced"),
            (len(report.unchanged), "unchanged"),
            (len(report.refused), "refused"),
        ],
        always=("added", "unchanged"),
    )
    refusals = [f"{names.get(i, _short(i))}: {_with_commas(r)}" for i, r in report.refused]
    head = ("dry run, nothing written: " if args.dry_run else "") + counts
    if len(refusals) == 1:
        head += f": {refusals[0]}"
    lines = [head]
    if len(refusals) > 1:
        lines += _detail_lines("refused", refusals)
    lines += _detail_lines(
        "repriced", [f"{names.get(i, _short(i))}: {o:,} -> {n:,}" for i, o, n in report.repriced]
    )
    _emit(args, data, lines)
    return EXIT_REFUSED if report.refused else EXIT_OK


def cmd_pq_diff(args: argparse.Namespace) -> int:
    """Compare a manifest with the active list: what push would add, reprice or refuse."""

    async def diff(registry: Any, entries: list[Any], _: Progress) -> Any:
        return entries, await registry.diff(args.client, entries)

    entries, result = _run_registry(args, diff)
    names = _names(entries)
    changed_text = [
        (i, "the id is already registered with another text; ids are immutable")
        for i in result.conflicts
    ]
    refused = list(result.refused) + changed_text
    data = {
        "added": list(result.added),
        "removed": list(result.removed),
        "changedCost": [{"id": i, "old": o, "new": n} for i, o, n in result.changed_cost],
        "changedText": list(result.conflicts),
        "refused": [{"id": i, "reason": r} for i, r in refused],
    }
    lines = [
        _count_line(
            [
                (len(result.added), "to add"),
                (len(result.changed_cost), "to reprice"),
                (len(result.conflicts), "with changed text"),
                (len(result.refused), "refused"),
                (len(result.removed), "active but not in the manifest"),
            ]
        )
        + (" (push would refuse some)" if refused else "")
    ]
    lines += _detail_lines(
        "refused", [f"{names.get(i, _short(i))}: {_with_commas(r)}" for i, r in result.refused]
    )
    lines += _detail_lines(
        "changed text", [f"{names.get(i, _short(i))} ({i})" for i in result.conflicts]
    )
    lines += _detail_lines(
        "reprice",
        [f"{names.get(i, _short(i))}: {o:,} -> {n:,}" for i, o, n in result.changed_cost],
    )
    lines += _detail_lines("add", [names.get(i, _short(i)) for i in result.added])
    lines += _detail_lines("not in the manifest", list(result.removed))
    _emit(args, data, lines)
    return EXIT_REFUSED if refused else EXIT_OK


def cmd_pq_list(args: argparse.Namespace) -> int:
    """List the active documents of a client's list (every client's by default)."""

    async def listing(registry: Any, entries: list[Any], _: Progress) -> Any:
        return await registry.list(args.client)

    documents = _run_registry(args, listing, total=0)
    data = {
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
    lines = [f"{len(documents):,} active documents"] + [
        f"  {d.client_name:<12} {d.operation_name or '-':<28} {d.cost:>8,}  {d.document_id}"
        for d in documents
    ]
    _emit(args, data, lines)
    return EXIT_OK


def cmd_pq_retire(args: argparse.Namespace) -> int:
    """Retire documents by id, or every active document not in --manifest."""
    if args.ids is not None and args.manifest:
        raise CliError("pq retire takes --ids or --manifest, not both", "choose one")
    if not args.ids and not args.manifest:
        raise CliError(
            "pq retire needs the documents to retire",
            "pass --ids ID [ID ...], or --manifest FILE to retire every document not in it "
            "(try --dry-run first)",
        )

    async def retire(registry: Any, entries: list[Any], _: Progress) -> Any:
        return await registry.retire(
            args.client,
            args.ids or None,
            manifest=entries if args.manifest else None,
            dry_run=args.dry_run,
        )

    retired = list(_run_registry(args, retire, total=0))
    verb = "would retire" if args.dry_run else "retired"
    why = f" (active, not in {args.manifest})" if args.manifest else ""
    lines = [f"{verb} {len(retired):,} documents{why}", *_detail_lines(verb, retired)]
    _emit(args, {"dryRun": args.dry_run, "retired": retired}, lines)
    return EXIT_OK


# --------------------------------------------------------------------------- schema, serve


def cmd_schema_check(args: argparse.Namespace) -> int:
    """Classify schema changes; exit 1 when anything is breaking, 2 on unreadable input."""
    from graphql import GraphQLError

    from server.schema_check import compare_sdl, served_sdl

    old = read_text(args.old, "SDL file")
    new = read_text(args.new, "SDL file") if args.new else served_sdl()
    try:
        report = compare_sdl(old, new)
    except (GraphQLError, TypeError) as error:
        raise CliError(f"schema check: {error}", "pass valid SDL files") from None
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


def _check_listen(host: str, port: int) -> None:
    """Refuse at once, in one line, an address another process already holds."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CliError(f"cannot resolve --host {host!r}: {exc}", "pass an address") from None
    family, kind, proto, _, address = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as exc:
        raise CliError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "stop the other server or pass --port",
        ) from None
    finally:
        probe.close()


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API with uvicorn (GraphiQL at /graphql outside production)."""
    import uvicorn

    settings = _settings()
    port = args.port or settings.port
    workers = args.workers or settings.workers
    host = args.host or settings.host
    require_database(settings.database_url)
    _check_listen(host, port)
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
    options: dict[str, Any] = dict(
        factory=True,
        host=host,
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
    )
    if workers == 1:
        uvicorn.run("server.asgi:create", app_dir=str(ROOT), **options)
        return EXIT_OK
    from server.workers import serve_workers

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    serve_workers(uvicorn.Config("server.asgi:create", **options))
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _command(sub: Any, name: str, fn: Callable[[argparse.Namespace], int], help: str) -> Any:
    """Add subcommand ``name`` running ``fn``; its docstring is the long description."""
    parser = sub.add_parser(name, help=help, description=(fn.__doc__ or help).strip())
    parser.set_defaults(fn=fn)
    return parser


def _add_pq(sub: Any) -> None:
    pq = sub.add_parser(
        "pq",
        help="persisted queries: push, list, diff, retire",
        description="Manage the persisted-query lists in the configured database.",
    )
    pq_sub = pq.add_subparsers(dest="pq_command", required=True, metavar="ACTION")
    manifest_help = "Apollo manifest, {id: text} JSON map, or a folder of .graphql files"
    push = _command(pq_sub, "push", cmd_pq_push, "register a manifest's documents")
    diff = _command(pq_sub, "diff", cmd_pq_diff, "what push would change or refuse (exit 1)")
    listing = _command(pq_sub, "list", cmd_pq_list, "list the active documents")
    retire = _command(pq_sub, "retire", cmd_pq_retire, "retire documents (by id or manifest)")
    for command in (push, diff):
        command.add_argument("manifest", help=manifest_help)
    retire.add_argument(
        "--manifest",
        help="retire EVERY active document of the list that is not in this manifest",
    )
    retire.add_argument("--ids", nargs="+", metavar="ID", help="the ids to retire")
    listing.add_argument("--client", help="only this client's list (default: every list)")
    for command in (push, diff, retire):
        command.add_argument(
            "--client",
            help="the client's list (apollographql-client-name); default: the shared list",
        )
    for command in (push, diff, listing, retire):
        command.add_argument(
            "--json", action="store_true", help="print the full report as JSON instead of a summary"
        )
    for command in (push, retire):
        command.add_argument(
            "--dry-run", action="store_true", help="report what would change without writing"
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``tollgate`` argument parser: one ``cmd_*`` function per subcommand."""
    parser = Parser(
        prog=PROG,
        description="Tollgate: a GraphQL orders API where every query is priced and charged.",
        epilog="Settings come from TOLLGATE_* environment variables (docs/operations.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = _command(sub, "serve", cmd_serve, "serve the API (uvicorn)")
    serve.add_argument("--port", type=int, help="port to listen on (default TOLLGATE_PORT, 8000)")
    serve.add_argument("--host", help="address to bind (default TOLLGATE_HOST, 127.0.0.1)")
    serve.add_argument("--workers", type=int, help="worker processes (default TOLLGATE_WORKERS)")
    serve.add_argument("--ssl-certfile", help="PEM certificate chain: serve HTTPS (TLS 1.2+)")
    serve.add_argument("--ssl-keyfile", help="PEM private key of --ssl-certfile")
    _command(sub, "migrate", cmd_migrate, "apply database migrations")
    _command(sub, "seed", cmd_seed, "load the demo data into an empty database")
    token = _command(sub, "token", cmd_token, "print a JWT for a demo user")
    token.add_argument("--tenant", default="acme", help="tenant slug (default: acme)")
    token.add_argument(
        "--role",
        default="customer",
        choices=["customer", "staff", "admin"],
        help="the demo user's role (default: customer)",
    )
    token.add_argument("--user", help="a user id instead of the role's demo user")
    token.add_argument("--scope", help="space-separated scopes instead of the role's defaults")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    _command(sub, "sdl", cmd_sdl, "print the served SDL")
    cost = _command(sub, "cost", cmd_cost, "price a document offline, as the server would")
    cost.add_argument("file", help="a .graphql file holding the operation")
    cost.add_argument("--variables", help="""the variables as a JSON object, e.g. '{"first": 5}'""")
    cost.add_argument("--operation", help="which operation of the file to price, by name")
    _add_pq(sub)
    schema = sub.add_parser(
        "schema",
        help="schema change management",
        description="Schema change management: classify changes against a published SDL.",
    )
    schema_sub = schema.add_subparsers(dest="schema_command", required=True, metavar="ACTION")
    check = _command(
        schema_sub,
        "check",
        cmd_schema_check,
        "classify changes from OLD to the served SDL (or NEW); exit 1 if breaking",
    )
    check.add_argument("old", help="the previous SDL, e.g. the published contract")
    check.add_argument("--new", help="the new SDL (default: the schema this server serves)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    privacy_cli.register(sub)
    webhooks_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tollgate`` and ``python -m server``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CliError as error:
        print(error.line(), file=sys.stderr)
        return 2
    result: int = run_command(args.fn, args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
